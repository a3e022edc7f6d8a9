"""The two loops of the NumPy front end that NumPy cannot fuse, compiled with numba.

Around the FFT, plain NumPy needs a copy to centre-pad and de-interleave the channels, a pass to
window, one to square and one to transpose the spectrum for a sparse product: ~1.3× the FFT's
own time. These two kernels do the same work in one pass each (~1.1×, benchmarks/features.py).
numba is in the core install (setup.py); it is imported only by :class:`audioshards.spectrogram.LogMel`, so the
trainer does not pay for it, and ``cache=True`` compiles once per installation, not per worker.
"""
from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True, boundscheck=False)
def window_frames(
    audio: np.ndarray, window: np.ndarray, first_frame: int, hop: int, offset: int, out: np.ndarray
) -> None:
    """out[f, c, :] = window · audio[s : s + n_fft, c] with s = (first_frame + f)·hop − offset.

    audio is [samples, channels] float32, out [frames, channels, n_fft] float64: de-interleaving,
    the cast and the window happen in one pass. Samples outside the audio are zero, which is
    librosa's centre padding when offset = n_fft // 2.
    """
    samples, channels = audio.shape
    frames, _, n_fft = out.shape
    for frame in range(frames):
        start = (first_frame + frame) * hop - offset
        if start >= 0 and start + n_fft <= samples:  # every frame but the edges: a loop LLVM vectorises
            for channel in range(channels):
                for i in range(n_fft):
                    out[frame, channel, i] = audio[start + i, channel] * window[i]
        else:
            for channel in range(channels):
                for i in range(n_fft):
                    inside = 0 <= start + i < samples
                    out[frame, channel, i] = audio[start + i, channel] * window[i] if inside else 0.0


@numba.njit(cache=True, nogil=True, boundscheck=False)
def mel_power(
    spectrum: np.ndarray, first_bins: np.ndarray, widths: np.ndarray, weights: np.ndarray,
    out: np.ndarray, first_column: int,
) -> None:
    """out[m, first_column + j] = Σ_i weights[m, i] · |spectrum[first_bins[m] + i, j]|², i < widths[m].

    spectrum is [bins, columns] complex128 (bins-major, so the inner loop runs along contiguous
    columns); each mel triangle reads only its own few bins (~8 of 2049). Sums are float64 and
    stored in out's float32: every term is ≥ 0, so nothing cancels and float32 loses < 1e-6 dB.
    """
    columns = spectrum.shape[1]
    total = np.empty(columns)
    for band in range(first_bins.shape[0]):
        total[:] = 0.0
        for i in range(widths[band]):
            weight = weights[band, i]
            row = first_bins[band] + i
            for column in range(columns):
                value = spectrum[row, column]
                total[column] += weight * (value.real * value.real + value.imag * value.imag)
        for column in range(columns):
            out[band, first_column + column] = total[column]

"""The one owner of the spectrogram numbers (docs/design.md) and the NumPy log-mel front end.

The pipeline, the trainer's raw-audio front end and the tests all take their numbers from
:class:`SpectrogramConfig`; a shard directory records ``SpectrogramConfig.to_dict()`` in its
manifest and readers refuse a directory whose dictionary differs.

Speed: ``librosa.feature.melspectrogram`` multiplies the full 2049-bin power spectrum by a dense
2049×256 filterbank, yet each mel triangle is non-zero on a few neighbouring bins only (~2 k of
the 524 k weights), and none above 12 kHz or below 60 Hz. :class:`LogMel` windows the frames of
a block in one pass, runs the FFT, and sums each triangle over its own bins
(:mod:`audioshards.stft_kernels`), so the FFT is most of its time: 1.1–1.4× the cost of the FFT alone
and ~2.3× faster than librosa, whose own FFT is the same float64 FFT (benchmarks/features.py; the
measurements are in docs/performance.md).

Precision: the frames are windowed and transformed in float64, as librosa does (it multiplies
float32 frames by a float64 window). A float32 FFT leaves rounding noise ~145 dB below a frame's
strongest bin, which moves bands 120 dB below it (the leakage of a full-scale 16-bit tone) by more
than 0.01 dB; float64 keeps every band within 0.01 dB of librosa (tests/audioshards/test_spectrogram.py).
After the FFT nothing cancels (powers and their weighted sums are ≥ 0), so the mel sums are
stored in float32 and the logarithm is taken in float32: both move a value by < 1e-5 dB.
"""
from __future__ import annotations

import dataclasses
import functools
import threading
from typing import Any

import numpy as np

from audioshards import flags

FORMAT_VERSION = 1  # of the shard format; bump when a reader could misread old shards


@dataclasses.dataclass(frozen=True)
class SpectrogramConfig:
    """Audio and log-mel parameters fixed by the model card."""

    sample_rate: int = 48_000
    channels: int = 2
    clip_seconds: float = 10.0
    n_fft: int = 4096
    win_length: int = 4096  # periodic Hann window
    hop_length: int = 2048
    center: bool = True  # zero-pad n_fft // 2 on each side, as librosa does
    n_mels: int = 256
    fmin: float = 60.0
    fmax: float = 12_000.0
    mel_scale: str = "slaney"  # librosa's default filterbank: Slaney scale, Slaney area norm
    amin: float = 1e-10  # dB floor: 10·log10(max(power, amin)); no top_db clipping
    dtype: str = "float16"  # as stored in shards

    @property
    def clip_samples(self) -> int:
        return int(round(self.sample_rate * self.clip_seconds))

    @property
    def frames(self) -> int:
        if self.center:
            return 1 + self.clip_samples // self.hop_length
        return 1 + (self.clip_samples - self.n_fft) // self.hop_length

    @property
    def shape(self) -> tuple[int, int, int]:
        """Stored example shape: [mel, frames, channels] (height, width, channels)."""
        return (self.n_mels, self.frames, self.channels)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "SpectrogramConfig":
        return flags.from_dict(cls, values, what="spectrogram")

    def differences(self, other: "SpectrogramConfig") -> list[str]:
        """Human-readable list of settings that differ, for refusal messages."""
        mine, theirs = self.to_dict(), other.to_dict()
        return [f"{key}: {mine[key]!r} != {theirs[key]!r}" for key in mine if mine[key] != theirs[key]]


DEFAULT_CONFIG = SpectrogramConfig()


MEL_SCALES = ("slaney", "htk")
_SLANEY_MEL_HZ = 200.0 / 3  # Hz per mel below the knee
_SLANEY_KNEE_HZ = 1000.0
_SLANEY_KNEE_MEL = _SLANEY_KNEE_HZ / _SLANEY_MEL_HZ
_SLANEY_LOG_STEP = np.log(6.4) / 27.0  # log-Hz per mel above the knee


def hz_to_mel(hz: np.ndarray | float, scale: str = "slaney") -> np.ndarray:
    """Hz → mel: Slaney's scale (linear to 1 kHz, logarithmic above) or HTK's (2595·log10(1 + f/700))."""
    hz = np.asarray(hz, np.float64)
    if scale == "htk":
        return 2595.0 * np.log10(1.0 + hz / 700.0)
    with np.errstate(divide="ignore"):  # log(0) in the branch np.where does not take
        return np.where(hz >= _SLANEY_KNEE_HZ, _SLANEY_KNEE_MEL + np.log(hz / _SLANEY_KNEE_HZ) / _SLANEY_LOG_STEP,
                        hz / _SLANEY_MEL_HZ)


def mel_to_hz(mel: np.ndarray | float, scale: str = "slaney") -> np.ndarray:
    """The inverse of :func:`hz_to_mel`."""
    mel = np.asarray(mel, np.float64)
    if scale == "htk":
        return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)
    return np.where(mel >= _SLANEY_KNEE_MEL, _SLANEY_KNEE_HZ * np.exp(_SLANEY_LOG_STEP * (mel - _SLANEY_KNEE_MEL)),
                    _SLANEY_MEL_HZ * mel)


def mel_filterbank(config: SpectrogramConfig = DEFAULT_CONFIG) -> np.ndarray:
    """The mel filterbank, [n_mels, n_fft // 2 + 1] float32: triangles between n_mels + 2 edges
    equally spaced in mel, each scaled to unit area (Slaney's norm).

    These are librosa's ``filters.mel(..., norm="slaney")`` numbers, bit for bit
    (tests/audioshards/test_spectrogram.py compares them). They are computed here, not taken from
    librosa, so that the Beam job does not install librosa, which requires scikit-learn, SciPy,
    soundfile and more (docs/development.md#dependencies).
    """
    if config.mel_scale not in MEL_SCALES:
        raise ValueError(f"mel_scale must be one of {', '.join(MEL_SCALES)}, not {config.mel_scale!r}")
    edges_mel = np.linspace(hz_to_mel(config.fmin, config.mel_scale), hz_to_mel(config.fmax, config.mel_scale),
                            config.n_mels + 2)
    edges = mel_to_hz(edges_mel, config.mel_scale)
    bins = np.fft.rfftfreq(config.n_fft, 1.0 / config.sample_rate)
    widths = np.diff(edges)
    offsets = edges[:, None] - bins[None, :]
    rising, falling = -offsets[:-2] / widths[:-1, None], offsets[2:] / widths[1:, None]
    weights = np.maximum(0, np.minimum(rising, falling)).astype(np.float32)
    # In place, as librosa does: a float64 product rounded back to float32.
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return weights


def nonzero_band(filterbank: np.ndarray) -> tuple[int, int]:
    """[first, last + 1) FFT bins where any mel filter is non-zero."""
    used = np.flatnonzero(np.any(filterbank != 0, axis=0))
    return int(used[0]), int(used[-1]) + 1


def analysis_window(config: SpectrogramConfig = DEFAULT_CONFIG) -> np.ndarray:
    """Periodic Hann of win_length (as scipy's ``get_window("hann", fftbins=True)``), centred in
    n_fft, float64: the NumPy and TensorFlow front ends share it."""
    window = np.hanning(config.win_length + 1)[:-1]
    pad = (config.n_fft - config.win_length) // 2
    return np.pad(window, (pad, config.n_fft - config.win_length - pad))


def mel_triangles(filterbank: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each mel band's run of bins from its first to its last non-zero weight.

    Returns first bin [n_mels] int64, width [n_mels] int64 and the weights [n_mels, max width]
    float64 (zero past each width). An all-zero band gets width 0 and so the dB floor, as in librosa.
    """
    n_mels = filterbank.shape[0]
    first_bins = np.zeros(n_mels, np.int64)
    widths = np.zeros(n_mels, np.int64)
    for band, row in enumerate(filterbank):
        used = np.flatnonzero(row)
        if used.size:
            first_bins[band], widths[band] = used[0], used[-1] + 1 - used[0]
    weights = np.zeros((n_mels, max(1, int(widths.max()))), np.float64)
    for band in range(n_mels):
        weights[band, : widths[band]] = filterbank[band, first_bins[band] : first_bins[band] + widths[band]]
    return first_bins, widths, weights


class LogMel:
    """Log-mel front end: windowed frames → float64 FFT → each mel triangle's own bins → dB."""

    #: Frames per FFT call: the windowed block of a stereo clip (16 × 2 × 4096 float64) and its
    #: spectrum are 1 MB each and stay in a 2 MB L2 cache; larger blocks spill and run ~15 % slower.
    block_frames = 16

    def __init__(self, config: SpectrogramConfig = DEFAULT_CONFIG) -> None:
        from audioshards import stft_kernels  # imported here: numba costs the trainer half a second

        self.config = config
        self._kernels = stft_kernels
        self.window = analysis_window(config)
        self.first_bins, self.widths, self.weights = mel_triangles(mel_filterbank(config).astype(np.float64))
        self._scratch = threading.local()

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        """audio [samples, channels] float → log-mel dB [n_mels, frames, channels] float32."""
        config = self.config
        if audio.ndim != 2:
            raise ValueError(f"audio must be [samples, channels], got shape {audio.shape}")
        audio = np.ascontiguousarray(audio, dtype=np.float32)
        samples, channels = audio.shape
        offset = config.n_fft // 2 if config.center else 0
        frames = 1 + (samples + 2 * offset - config.n_fft) // config.hop_length
        if frames < 1:
            raise ValueError(f"audio of {samples} samples is shorter than one FFT frame ({config.n_fft})")
        windowed, spectrum = self._buffers(channels)
        mel = np.empty((config.n_mels, frames * channels), np.float32)  # columns: (frame, channel)
        for first in range(0, frames, self.block_frames):
            count = min(frames - first, self.block_frames)
            block = windowed[:count]
            self._kernels.window_frames(audio, self.window, first, config.hop_length, offset, block)
            columns = spectrum[:, : count * channels]
            # Written transposed: the mel kernel then reads each bin's columns contiguously.
            np.fft.rfft(block.reshape(-1, config.n_fft), axis=-1, out=columns.T)
            self._kernels.mel_power(columns, self.first_bins, self.widths, self.weights, mel, first * channels)
        np.maximum(mel, config.amin, out=mel)
        np.log10(mel, out=mel)
        mel *= 10.0
        return mel.reshape(config.n_mels, frames, channels)

    def _buffers(self, channels: int) -> tuple[np.ndarray, np.ndarray]:
        """Per-thread scratch (Beam may run several bundles in one process), reused across calls:
        fresh pages cost more than the arithmetic here."""
        buffers = getattr(self._scratch, "buffers", None)
        if buffers is None or buffers[0].shape[1] != channels:
            n_fft = self.config.n_fft
            buffers = self._scratch.buffers = (
                np.empty((self.block_frames, channels, n_fft), np.float64),
                np.empty((n_fft // 2 + 1, self.block_frames * channels), np.complex128),
            )
        return buffers


@functools.lru_cache(maxsize=4)
def _front_end(config: SpectrogramConfig) -> LogMel:
    return LogMel(config)


def log_mel(audio: np.ndarray, config: SpectrogramConfig = DEFAULT_CONFIG) -> np.ndarray:
    """The feature function: [samples, channels] audio → [n_mels, frames, channels] dB, float32."""
    return _front_end(config)(audio)

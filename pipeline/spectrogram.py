"""The one owner of the spectrogram numbers (DESIGN §1) and the NumPy log-mel front end.

The pipeline, the trainer's raw-audio front end and the tests all take their numbers from
:class:`SpectrogramConfig`; a shard directory records ``SpectrogramConfig.to_dict()`` in its
manifest and readers refuse a directory whose dictionary differs.

Speed: ``librosa.feature.melspectrogram`` multiplies the full 2049-bin power spectrum by a dense
2049×256 filterbank. Above 12 kHz (and below 60 Hz) every filter weight is zero, so
:class:`LogMel` keeps only the band of FFT bins where the filterbank is non-zero and multiplies a
``[bins_in_band, 256]`` matrix instead; the FFT itself (``scipy.fft.rfft``) is then the bulk of the
cost. The filterbank is kept sparse (each triangle spans a few bins), which makes the product
~5× cheaper again.

Precision: the frames are windowed and transformed in float64, as librosa does (it multiplies
float32 frames by a float64 window). A float32 FFT leaves rounding noise ~145 dB below a frame's
strongest bin, which moves bands 120 dB below it (the leakage of a full-scale 16-bit tone) by more
than 0.01 dB; float64 costs ~1.5 ms per clip and keeps every band within 0.01 dB of librosa
(tests/pipeline/test_spectrogram.py).
"""
from __future__ import annotations

import dataclasses
import functools
import threading
from typing import Any

import numpy as np
import scipy.fft
import scipy.sparse
import scipy.signal

FORMAT_VERSION = 1  # of the shard format (DESIGN §2); bump when a reader could misread old shards


@dataclasses.dataclass(frozen=True)
class SpectrogramConfig:
    """Audio and log-mel parameters fixed by the model card (DESIGN §1)."""

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
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown spectrogram settings {unknown}; known: {sorted(known)}")
        return cls(**values)

    def differences(self, other: "SpectrogramConfig") -> list[str]:
        """Human-readable list of settings that differ, for refusal messages."""
        mine, theirs = self.to_dict(), other.to_dict()
        return [f"{key}: {mine[key]!r} != {theirs[key]!r}" for key in mine if mine[key] != theirs[key]]


DEFAULT_CONFIG = SpectrogramConfig()


def mel_filterbank(config: SpectrogramConfig = DEFAULT_CONFIG) -> np.ndarray:
    """librosa's mel filterbank, [n_mels, n_fft // 2 + 1] float32."""
    import librosa  # imported lazily: it costs a second and only this function needs it

    return librosa.filters.mel(
        sr=config.sample_rate,
        n_fft=config.n_fft,
        n_mels=config.n_mels,
        fmin=config.fmin,
        fmax=config.fmax,
        htk=config.mel_scale == "htk",
        norm="slaney",
        dtype=np.float32,
    )


def nonzero_band(filterbank: np.ndarray) -> tuple[int, int]:
    """[first, last + 1) FFT bins where any mel filter is non-zero."""
    used = np.flatnonzero(np.any(filterbank != 0, axis=0))
    return int(used[0]), int(used[-1]) + 1


class LogMel:
    """Log-mel front end: FFT of windowed frames, then the sparse mel matrix of its band."""

    #: Frames per FFT call: small enough that the windowed block and its spectrum stay in cache
    #: (one call over all 470 frames of a stereo clip faults in ~16 MB of fresh pages).
    block_frames = 64

    def __init__(self, config: SpectrogramConfig = DEFAULT_CONFIG) -> None:
        self.config = config
        filterbank = mel_filterbank(config).astype(np.float64)
        self.band = nonzero_band(filterbank)
        # Each triangle covers a few bins, so ~2 k of the 256 × ~1 k weights in the band are
        # non-zero: a sparse product is ~5× cheaper than the dense one.
        self.band_filterbank = scipy.sparse.csr_matrix(filterbank[:, self.band[0] : self.band[1]])
        window = scipy.signal.get_window("hann", config.win_length, fftbins=True)
        pad = (config.n_fft - config.win_length) // 2
        self.window = np.pad(window, (pad, config.n_fft - config.win_length - pad))
        self._scratch = threading.local()

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        """audio [samples, channels] float → log-mel dB [n_mels, frames, channels] float32."""
        config = self.config
        if audio.ndim != 2:
            raise ValueError(f"audio must be [samples, channels], got shape {audio.shape}")
        channels = audio.shape[1]
        signal = np.asarray(audio, dtype=np.float32).T  # [channels, samples]; windowing casts up
        if config.center:
            half = config.n_fft // 2
            signal = np.pad(signal, ((0, 0), (half, half)))
        frames = np.lib.stride_tricks.sliding_window_view(signal, config.n_fft, axis=-1)
        frames = frames[:, :: config.hop_length].reshape(-1, config.n_fft)  # [channels·frames, n_fft]
        count = frames.shape[0]
        low, high = self.band
        power = np.empty((count, high - low), np.float64)
        windowed = self._buffer()
        for start in range(0, count, self.block_frames):
            stop = min(count, start + self.block_frames)
            block = windowed[: stop - start]
            np.multiply(frames[start:stop], self.window, out=block)
            spectrum = scipy.fft.rfft(block, axis=-1, overwrite_x=True)[:, low:high]
            np.square(spectrum.real, out=power[start:stop])
            power[start:stop] += np.square(spectrum.imag)
        mel = self.band_filterbank @ power.T  # [n_mels, channels·frames], float64
        np.maximum(mel, config.amin, out=mel)
        np.log10(mel, out=mel)
        mel *= 10.0
        return np.ascontiguousarray(mel.reshape(config.n_mels, channels, -1).transpose(0, 2, 1), np.float32)

    def _buffer(self) -> np.ndarray:
        """A float64 scratch block per thread (Beam may run several bundles in one process)."""
        buffer = getattr(self._scratch, "array", None)
        if buffer is None:
            buffer = self._scratch.array = np.empty((self.block_frames, self.config.n_fft), np.float64)
        return buffer


@functools.lru_cache(maxsize=4)
def _front_end(config: SpectrogramConfig) -> LogMel:
    return LogMel(config)


def log_mel(audio: np.ndarray, config: SpectrogramConfig = DEFAULT_CONFIG) -> np.ndarray:
    """The feature function: [samples, channels] audio → [n_mels, frames, channels] dB, float32."""
    return _front_end(config)(audio)

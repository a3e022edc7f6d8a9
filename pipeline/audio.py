"""Decoding with ffmpeg and shaping audio into 10 s clips (DESIGN §1).

ffmpeg (through ffmpeg-python, which builds an argument list: no shell is involved) converts
whatever it reads to float32, 48 kHz, stereo: mono sources are duplicated to both channels,
sources with more than two channels are down-mixed by ffmpeg's default matrix.

Clip shaping, decided here and recorded in the manifest (``ClipSettings.to_dict``):
- a source longer than one clip is cut into consecutive clips; a trailing remainder of at least
  ``min_remainder_s`` is looped to a full clip, a shorter one dropped;
- a source shorter than one clip is looped (repeated end to start), or zero-padded with
  ``short_sources="pad"``;
- a source with no samples is an ``empty`` failure, one whose peak is below ``silence_peak``
  (about -100 dBFS) a ``silent`` failure: looping silence would only teach the model the dB floor.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from pipeline.spectrogram import SpectrogramConfig


class DecodeError(RuntimeError):
    """ffmpeg could not read the file; the message is ffmpeg's last lines."""


class UnusableAudio(ValueError):
    """Audio that decoded but cannot make a clip; ``reason`` is a failure class of DESIGN §2."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclasses.dataclass(frozen=True)
class ClipSettings:
    min_remainder_s: float = 2.0
    short_sources: str = "loop"  # or "pad"
    silence_peak: float = 1e-5

    def __post_init__(self) -> None:
        if self.short_sources not in ("loop", "pad"):
            raise ValueError(f"short_sources must be 'loop' or 'pad', not {self.short_sources!r}")
        if self.min_remainder_s < 0:
            raise ValueError("min_remainder_s must be >= 0")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def decode(
    path: str,
    config: SpectrogramConfig,
    *,
    start_s: float | None = None,
    duration_s: float | None = None,
) -> np.ndarray:
    """Decode ``path`` (optionally just [start, start + duration)) to [samples, channels] float32."""
    import ffmpeg

    input_options: dict[str, Any] = {}
    if start_s:
        input_options["ss"] = f"{start_s:.6f}"
    if duration_s is not None:
        input_options["t"] = f"{duration_s:.6f}"
    stream = ffmpeg.input(path, **input_options).output(
        "pipe:", format="f32le", acodec="pcm_f32le", ac=config.channels, ar=config.sample_rate
    )
    try:
        out, _ = stream.global_args("-nostdin", "-hide_banner", "-loglevel", "error").run(
            capture_stdout=True, capture_stderr=True
        )
    except ffmpeg.Error as error:
        detail = (error.stderr or b"").decode("utf-8", "replace").strip().splitlines()
        raise DecodeError("; ".join(detail[-3:]) or "ffmpeg failed") from None
    return np.frombuffer(out, dtype="<f4").reshape(-1, config.channels)


def make_clips(audio: np.ndarray, config: SpectrogramConfig, settings: ClipSettings) -> list[np.ndarray]:
    """Cut or loop [samples, channels] audio into clips of exactly ``config.clip_samples``."""
    if audio.shape[0] == 0:
        raise UnusableAudio("empty", "the source decoded to no audio")
    if float(np.max(np.abs(audio))) < settings.silence_peak:
        raise UnusableAudio("silent", f"the source is silent (peak below {settings.silence_peak:g})")
    size = config.clip_samples
    if audio.shape[0] < size:
        return [_fill(audio, size, settings.short_sources)]
    full, remainder = divmod(audio.shape[0], size)
    clips = [audio[i * size : (i + 1) * size] for i in range(full)]
    if remainder >= settings.min_remainder_s * config.sample_rate and remainder > 0:
        clips.append(_fill(audio[full * size :], size, settings.short_sources))
    return clips


def _fill(audio: np.ndarray, size: int, mode: str) -> np.ndarray:
    if mode == "pad":
        return np.pad(audio, ((0, size - audio.shape[0]), (0, 0)))
    repeats = -(-size // audio.shape[0])
    return np.tile(audio, (repeats, 1))[:size]

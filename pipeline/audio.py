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

from pipeline.flags import setting
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
    min_remainder_s: float = setting(2.0, "shortest trailing remainder of a long source kept (looped) as a clip, "
                                          "seconds", flag="--min-remainder", metavar="S")
    short_sources: str = setting("loop", "how sources shorter than 10 s are filled", choices=("loop", "pad"))
    silence_peak: float = 1e-5

    def __post_init__(self) -> None:
        if self.short_sources not in ("loop", "pad"):
            raise ValueError(f"short_sources must be 'loop' or 'pad', not {self.short_sources!r}")
        if self.min_remainder_s < 0:
            raise ValueError("min_remainder_s must be >= 0")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class DecodeRequest:
    """A file, or [start, start + duration) of it."""

    path: str
    start_s: float | None = None
    duration_s: float | None = None

    def input_options(self) -> dict[str, str]:
        options = {}
        if self.start_s:
            options["ss"] = f"{self.start_s:.6f}"  # before -i: a fast, sample-accurate seek
        if self.duration_s is not None:
            options["t"] = f"{self.duration_s:.6f}"
        return options


def _output_options(config: SpectrogramConfig) -> dict[str, Any]:
    return {"format": "f32le", "acodec": "pcm_f32le", "ac": config.channels, "ar": config.sample_rate}


def _run(stream: Any) -> bytes:
    import ffmpeg

    try:
        out, _ = stream.global_args("-nostdin", "-hide_banner", "-loglevel", "error").run(
            capture_stdout=True, capture_stderr=True
        )
    except ffmpeg.Error as error:
        detail = (error.stderr or b"").decode("utf-8", "replace").strip().splitlines()
        raise DecodeError("; ".join(detail[-3:]) or "ffmpeg failed") from None
    return out


def decode(request: DecodeRequest, config: SpectrogramConfig) -> np.ndarray:
    """Decode one file (or a range of it) to [samples, channels] float32."""
    import ffmpeg

    out = _run(ffmpeg.input(request.path, **request.input_options()).output("pipe:", **_output_options(config)))
    return np.frombuffer(out, dtype="<f4").reshape(-1, config.channels)


def decode_many(requests: list[DecodeRequest], config: SpectrogramConfig) -> list[np.ndarray | DecodeError]:
    """Decode several files with one ffmpeg process, each result an array or its DecodeError.

    Starting ffmpeg costs ~90 ms here, several times the decoding of a 10 s clip, so one process
    decodes a whole batch: one input and one raw output file per request. If the batch fails (one
    unreadable file fails the whole command), every request is decoded on its own, so each error
    belongs to its own file.
    """
    import tempfile

    import ffmpeg

    if len(requests) == 1:
        return [_decode_or_error(requests[0], config)]
    with tempfile.TemporaryDirectory(prefix="mygo-decode-") as scratch:
        outputs = [
            ffmpeg.input(request.path, **request.input_options()).audio.output(
                f"{scratch}/{index}.raw", **_output_options(config)
            )
            for index, request in enumerate(requests)
        ]
        try:
            _run(ffmpeg.merge_outputs(*outputs))
        except DecodeError:
            return [_decode_or_error(request, config) for request in requests]
        return [
            np.fromfile(f"{scratch}/{index}.raw", dtype="<f4").reshape(-1, config.channels)
            for index in range(len(requests))
        ]


def _decode_or_error(request: DecodeRequest, config: SpectrogramConfig) -> np.ndarray | DecodeError:
    try:
        return decode(request, config)
    except DecodeError as error:
        return error


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

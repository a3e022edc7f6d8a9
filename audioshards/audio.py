"""Decoding with ffmpeg and shaping audio into 10 s clips.

ffmpeg (through ffmpeg-python, which builds an argument list: no shell is involved) converts
whatever it reads to float32, 48 kHz, stereo: mono sources are duplicated to both channels,
sources with more than two channels are down-mixed by ffmpeg's default matrix.

Clip shaping, decided here and recorded in the manifest (``ClipSettings.to_dict``):
- a source longer than one clip is cut into consecutive clips; a trailing remainder of at least
  ``min_remainder_s`` is looped to a full clip, a shorter one dropped;
- a source shorter than one clip is looped (repeated end to start), or zero-padded with
  ``short_sources="pad"``;
- a source with no samples is an ``empty`` failure, one whose peak is below ``silence_peak``
  (about -100 dBFS) a ``silent`` failure: looping silence would only teach the model the dB floor;
- a source longer than ``max_seconds`` (default 600 s, sixty times AudioSet's 10 s) is a
  ``too_long`` failure (:class:`SourceTooLong` from the decoder, or UnusableAudio from
  make_clips), never a source cut short: decoding never holds more than ``max_seconds`` (+1 s to
  tell "longer") of one file in memory (600 s of 48 kHz stereo float32 are 220 MiB), whatever
  the CSV's end time or the file's length.

Every ffmpeg of the pipeline (here and in :mod:`pipeline.fetch`) runs through
:func:`run_ffmpeg`, with what the input may be restricted to what audio files need: local files
are read through the ``file`` protocol only, named ``file:/absolute/path`` (a bare name such as
``http:host:80.wav`` or ``concat:a|b`` would be a URL), and by the demuxers of
:data:`AUDIO_DEMUXERS` only (ffmpeg picks the demuxer from the content: an HLS playlist named
``x.wav`` would otherwise read the files it lists). Each run has a wall-clock limit: past it,
ffmpeg gets SIGTERM, then SIGKILL after :data:`KILL_GRACE_S` (a FIFO named ``x.wav`` blocks
ffmpeg in ``open``, where SIGTERM does not reach it), and the result is a transient ``timeout``.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import signal
import subprocess
from typing import Any

import numpy as np

from audioshards.flags import setting
from audioshards.spectrogram import SpectrogramConfig

#: Extensions treated as audio when listing a directory (anything ffmpeg reads can be added).
AUDIO_EXTENSIONS = frozenset(
    ".wav .flac .ogg .oga .opus .mp3 .m4a .mp4 .aac .webm .mka .mkv .aif .aiff .au .wma .wv .caf".split()
)

logger = logging.getLogger(__name__)

#: Demuxers that read audio files (and the audio of the usual video containers). Not hls, dash,
#: concat, image2, sdp, rtp/rtsp or anything else that opens further files or URLs. ffmpeg
#: matches a demuxer by any of its names ("mov,mp4,m4a,3gp,3g2,mj2" by "mp4").
AUDIO_DEMUXERS = ("wav,w64,rf64,flac,ogg,mp3,aac,mov,mp4,m4a,matroska,webm,aiff,caf,asf,au,ac3,eac3,wv,ape,"
                  "tta,amr,dts,truehd,mpc,mpc8,avi,flv,mpeg,mpegts")
#: Protocols of a local decode: the file named, nothing else.
LOCAL_PROTOCOLS = "file"
#: Default wall-clock limit of one ffmpeg process that decodes (a batch of up to 16 files).
DECODE_TIMEOUT_S = 300.0
#: Seconds between SIGTERM and SIGKILL: ffmpeg stops within milliseconds of a SIGTERM unless it is
#: blocked in open() (a FIFO), which no grace period ends.
KILL_GRACE_S = 1.0
#: Default cap of a source's length, seconds (ClipSettings.max_seconds).
DEFAULT_MAX_SECONDS = 600.0
#: Decoding reads this much beyond the cap, so that "longer than the cap" can be told.
OVERRUN_S = 1.0
#: A cut of exactly ``max_seconds`` may come out a few samples longer (resampling, packet edges).
TOO_LONG_TOLERANCE_S = 0.01


class DecodeError(RuntimeError):
    """ffmpeg could not read the file; the message is ffmpeg's last lines. ``reason`` and
    ``permanent`` say how to record it."""

    reason = "decode_error"
    permanent = True


class SourceTooLong(DecodeError):
    """The file (or the range asked for) holds more than ``max_seconds`` of audio: refused rather
    than cut at the cap, so nothing is ever shortened silently."""

    reason = "too_long"
    permanent = True


class FfmpegTimeout(DecodeError):
    """ffmpeg ran past its wall-clock limit and was stopped: transient (a stalled server, a
    loaded machine, a FIFO), so the next run tries again."""

    reason = "timeout"
    permanent = False


def local_input(path: str) -> str:
    """How ffmpeg must be given a local file: ``file:`` and an absolute path, so that no file
    name (``http:host:80.wav``, ``pipe:1``, ``concat:a|b``, ``-i``) is read as a URL or option."""
    return "file:" + os.path.abspath(path)


def local_input_options() -> dict[str, str]:
    """Input options of every local decode: the file protocol and audio demuxers only."""
    return {"protocol_whitelist": LOCAL_PROTOCOLS, "format_whitelist": AUDIO_DEMUXERS}


def run_ffmpeg(args: list[str], timeout_s: float, *, env: dict[str, str] | None = None) -> bytes:
    """Runs ``ffmpeg args`` (no shell), returns its stdout; raises DecodeError with ffmpeg's last
    error lines, or FfmpegTimeout when it ran longer than ``timeout_s`` (then it was sent SIGTERM
    and, ``KILL_GRACE_S`` later, SIGKILL)."""
    command = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", *args]
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env=env)
    try:
        out, err = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGTERM)
        try:
            process.communicate(timeout=KILL_GRACE_S)
        except subprocess.TimeoutExpired:
            logger.warning("ffmpeg (pid %d) ignored SIGTERM for %.0f s: killed", process.pid, KILL_GRACE_S)
            process.kill()
            process.communicate()
        raise FfmpegTimeout(f"ffmpeg ran longer than {timeout_s:g} s and was stopped (timeout)") from None
    except BaseException:
        process.kill()
        process.communicate()
        raise
    if process.returncode != 0:
        detail = err.decode("utf-8", "replace").strip().splitlines()
        raise DecodeError("; ".join(detail[-3:]) or f"ffmpeg failed with exit code {process.returncode}")
    return out


class UnusableAudio(ValueError):
    """Audio that decoded but cannot make a clip; ``reason`` is a failure class (docs/design.md, Shards)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclasses.dataclass(frozen=True)
class ClipSettings:
    min_remainder_s: float = setting(2.0, "shortest trailing remainder of a long source kept (looped) as a clip, "
                                          "seconds", flag="--min-remainder", metavar="S")
    short_sources: str = setting("loop", "how sources shorter than 10 s are filled", choices=("loop", "pad"))
    silence_peak: float = 1e-5
    max_seconds: float = setting(DEFAULT_MAX_SECONDS, "longest segment or source taken, seconds: a CSV range or a "
                                                      "file longer than this is a too_long failure, and no decode "
                                                      "holds more of one file", metavar="S")

    def __post_init__(self) -> None:
        if self.short_sources not in ("loop", "pad"):
            raise ValueError(f"short_sources must be 'loop' or 'pad', not {self.short_sources!r}")
        if self.min_remainder_s < 0:
            raise ValueError("min_remainder_s must be >= 0")
        if not 0 < self.max_seconds < float("inf"):
            raise ValueError(f"--max-seconds must be a positive number of seconds, not {self.max_seconds}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class DecodeRequest:
    """A file, or [start, start + duration) of it."""

    path: str
    start_s: float | None = None
    duration_s: float | None = None

    def input_options(self, max_seconds: float = DEFAULT_MAX_SECONDS) -> dict[str, str]:
        """ffmpeg's input options; a duration beyond the cap (a CSV may say 1e300) reads just enough
        past the cap to be told too long."""
        options = local_input_options()
        if self.start_s:
            options["ss"] = f"{self.start_s:.6f}"  # before -i: a fast, sample-accurate seek
        if self.duration_s is not None:
            options["t"] = f"{min(self.duration_s, max_seconds + OVERRUN_S):.6f}"
        return options


def _output_options(config: SpectrogramConfig, max_seconds: float) -> dict[str, Any]:
    return {"format": "f32le", "acodec": "pcm_f32le", "ac": config.channels, "ar": config.sample_rate,
            "t": f"{max_seconds + OVERRUN_S:.6f}"}  # bounded memory whatever the file or the CSV says


def _input(request: DecodeRequest, max_seconds: float) -> Any:
    import ffmpeg

    return ffmpeg.input(local_input(request.path), **request.input_options(max_seconds))


def decode(request: DecodeRequest, config: SpectrogramConfig, *, max_seconds: float = DEFAULT_MAX_SECONDS,
           timeout_s: float = DECODE_TIMEOUT_S) -> np.ndarray:
    """Decode one file (or a range of it) to [samples, channels] float32. ffmpeg stops after
    ``max_seconds`` + ``OVERRUN_S``; more than ``max_seconds`` raises SourceTooLong."""
    out = run_ffmpeg(_input(request, max_seconds).output("pipe:", **_output_options(config, max_seconds)).get_args(), timeout_s)
    return _checked(np.frombuffer(out, dtype="<f4").reshape(-1, config.channels), config, max_seconds)


def _checked(audio: np.ndarray, config: SpectrogramConfig, max_seconds: float) -> np.ndarray:
    if audio.shape[0] > (max_seconds + TOO_LONG_TOLERANCE_S) * config.sample_rate:
        raise SourceTooLong(f"the source is longer than {max_seconds:g} s (--max-seconds)")
    return audio


def decode_many(requests: list[DecodeRequest], config: SpectrogramConfig, *,
                max_seconds: float = DEFAULT_MAX_SECONDS,
                timeout_s: float = DECODE_TIMEOUT_S) -> list[np.ndarray | DecodeError]:
    """Decode several files with one ffmpeg process, each result an array or its DecodeError.

    Starting ffmpeg costs ~90 ms here, several times the decoding of a 10 s clip, so one process
    decodes a whole batch: one input and one raw output file per request. If the batch fails (one
    unreadable file fails the whole command, one FIFO makes it time out), every request is decoded
    on its own, so each error belongs to its own file.
    """
    import tempfile

    import ffmpeg

    if len(requests) == 1:
        return [_decode_or_error(requests[0], config, max_seconds, timeout_s)]
    with tempfile.TemporaryDirectory(prefix="mygo-decode-") as scratch:
        outputs = [
            _input(request, max_seconds).audio.output(f"{scratch}/{index}.raw", **_output_options(config, max_seconds))
            for index, request in enumerate(requests)
        ]
        try:
            run_ffmpeg(ffmpeg.merge_outputs(*outputs).get_args(), timeout_s)
        except DecodeError:
            return [_decode_or_error(request, config, max_seconds, timeout_s) for request in requests]
        results: list[np.ndarray | DecodeError] = []
        for index in range(len(requests)):
            try:
                results.append(_checked(np.fromfile(f"{scratch}/{index}.raw", dtype="<f4").reshape(-1, config.channels),
                                        config, max_seconds))
            except SourceTooLong as error:
                results.append(error)
        return results


def _decode_or_error(request: DecodeRequest, config: SpectrogramConfig, max_seconds: float,
                     timeout_s: float) -> np.ndarray | DecodeError:
    try:
        return decode(request, config, max_seconds=max_seconds, timeout_s=timeout_s)
    except DecodeError as error:
        return error


def make_clips(audio: np.ndarray, config: SpectrogramConfig, settings: ClipSettings) -> list[np.ndarray]:
    """Cut or loop [samples, channels] audio into clips of exactly ``config.clip_samples``."""
    if audio.shape[0] == 0:
        raise UnusableAudio("empty", "the source decoded to no audio")
    if audio.shape[0] > (settings.max_seconds + TOO_LONG_TOLERANCE_S) * config.sample_rate:
        raise UnusableAudio("too_long", f"the source is longer than {settings.max_seconds:g} s (--max-seconds)")
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

"""Synthetic audio for the tests: sample instants, sines and chirps, white noise, 16-bit dither,
and tone or silence files written by the real ffmpeg.

Each test keeps its own recipe (which tones, which seed, which file format), written with these
helpers, so what a test feeds the code under test is visible where it asserts on it. The arrays
are float64 until a recipe casts them; the same calls with the same ``rng`` give the same samples.

Two other generators stay as they are, for reasons of their own: ``tests/audio_corpus.py`` builds
the pipeline's served corpus (formats, codecs, broken files behind a mirror), and
``corpora/signals.py`` is the offline corpus builder's. That module does not fit here: it works at
48 kHz only and writes FLAC through soundfile, where the tests need other rates, channel counts
and containers from ffmpeg itself (what the decoder meets in the field); its randomness is keyed by
hashed names for reproducible corpora, where a test wants a plain seeded generator; and the tests
of ``audioshards`` and ``training`` should not depend on a development tool outside the
distribution.
"""
from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence

import numpy as np

#: The shards' sample rate (``audioshards.spectrogram.DEFAULT_CONFIG.sample_rate``).
RATE = 48_000
#: One least significant bit of 16-bit audio, the standard deviation of :func:`dithered`'s noise.
LSB_16 = 1 / 32_768


def times(seconds: float, rate: int = RATE) -> np.ndarray:
    """The sample instants of ``seconds`` of audio at ``rate``: ``arange(int(seconds * rate)) / rate``."""
    return np.arange(int(seconds * rate)) / rate


def sine(t: np.ndarray, frequency: float | np.ndarray, amplitude: float = 1.0) -> np.ndarray:
    """``amplitude * sin(2π · frequency · t)``. ``frequency`` may be an array shaped like ``t``:
    ``sine(t, 100 + 500 * t)`` is a linear chirp."""
    return amplitude * np.sin(2 * np.pi * frequency * t)


def noise(rng: np.random.Generator, shape: int | Sequence[int], amplitude: float = 1.0) -> np.ndarray:
    """Gaussian white noise of standard deviation ``amplitude``, drawn from ``rng``."""
    return amplitude * rng.standard_normal(shape)


def white_noise(samples: int, channels: int, seed: int) -> np.ndarray:
    """float32 ``[samples, channels]`` of unit white noise from ``np.random.default_rng(seed)``."""
    return noise(np.random.default_rng(seed), (samples, channels)).astype(np.float32)


def dithered(left: np.ndarray, right: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """float32 stereo ``[samples, 2]`` of the two channels plus 16-bit dither from ``rng`` (drawn
    after whatever the caller drew for the channels)."""
    return (np.stack([left, right], axis=1) + rng.standard_normal((len(left), 2)) * LSB_16).astype(np.float32)


def _lavfi(path: str | os.PathLike, source: str, *output_args: str) -> str:
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i", source,
                    *output_args, str(path)], check=True)
    return str(path)


def write_tone(path: str | os.PathLike, seconds: float, *, frequency: float = 1_000, rate: int = RATE,
               channels: int | None = None, codec_args: Sequence[str] = ()) -> str:
    """A sine of ``frequency`` Hz written by ffmpeg (container and codec from the file name, or
    ``codec_args``); mono unless ``channels`` asks ffmpeg for more (``-ac``). Returns the path."""
    layout = ("-ac", str(channels)) if channels is not None else ()
    return _lavfi(path, f"sine=frequency={frequency}:sample_rate={rate}:duration={seconds}", *layout, *codec_args)


def write_silence(path: str | os.PathLike, seconds: float, *, rate: int = RATE) -> str:
    """``seconds`` of digital silence, mono, written by ffmpeg. Returns the path."""
    return _lavfi(path, f"anullsrc=r={rate}:cl=mono", "-t", str(seconds))

"""Waveform helpers shared by the corpus builders: seeded randomness, reading, fitting, mixing,
a synthetic room, writing FLAC, and the AudioSet-style ids.

Every waveform is float32 ``[samples, channels]`` at 48 kHz (the shards' rate, so nothing is
resampled twice). Randomness never comes from global state: each piece of a corpus draws from a
generator keyed by the corpus seed and the piece's own name, so a clip is the same whichever
worker makes it and in whatever order.
"""
from __future__ import annotations

import base64
import functools
import hashlib
import io
import math
import random
from typing import Any

import numpy as np

SAMPLE_RATE = 48000


# ------------------------------------------------------------------------------------------
# Seeds and ids
# ------------------------------------------------------------------------------------------


def _digest(*keys: Any) -> bytes:
    return hashlib.sha256("\x1f".join(map(str, keys)).encode()).digest()


def rng(*keys: Any) -> random.Random:
    """A ``random.Random`` determined by ``keys`` alone (e.g. seed, corpus, clip index)."""
    return random.Random(int.from_bytes(_digest(*keys)[:16], "big"))


def np_rng(*keys: Any) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(int.from_bytes(_digest(*keys)[:16], "big")))


def ytid(*keys: Any) -> str:
    """An AudioSet-form id (11 characters of ``A-Za-z0-9_-``) derived from ``keys``."""
    return base64.urlsafe_b64encode(_digest("ytid", *keys)).decode()[:11]


# ------------------------------------------------------------------------------------------
# Reading and resampling
# ------------------------------------------------------------------------------------------


def resample(audio: np.ndarray, rate: int) -> np.ndarray:
    """Resample ``[n, c]`` from ``rate`` to 48 kHz with a polyphase filter (deterministic)."""
    if rate == SAMPLE_RATE:
        return audio.astype(np.float32, copy=False)
    from scipy.signal import resample_poly

    divisor = math.gcd(rate, SAMPLE_RATE)
    return resample_poly(audio, SAMPLE_RATE // divisor, rate // divisor, axis=0).astype(np.float32)


def decode_bytes(data: bytes) -> np.ndarray:
    import soundfile

    audio, rate = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=True)
    return resample(audio, rate)


@functools.lru_cache(maxsize=256)
def read(path: str) -> np.ndarray:
    """A file of a Debian package as float32 ``[n, c]`` at 48 kHz (cached per process: sources
    are reused by many clips). The array is read-only: copy before editing in place."""
    import soundfile

    audio, rate = soundfile.read(path, dtype="float32", always_2d=True)
    audio = resample(audio, rate)
    audio.setflags(write=False)
    return audio


# ------------------------------------------------------------------------------------------
# Shaping and mixing
# ------------------------------------------------------------------------------------------


def seconds(n: float) -> int:
    return int(round(n * SAMPLE_RATE))


def stereo(audio: np.ndarray) -> np.ndarray:
    if audio.shape[1] == 2:
        return audio
    if audio.shape[1] == 1:
        return np.repeat(audio, 2, axis=1)
    return audio[:, :2]


def mono(audio: np.ndarray) -> np.ndarray:
    return audio.mean(axis=1, keepdims=True) if audio.shape[1] > 1 else audio


def fade(audio: np.ndarray, fade_s: float = 0.01) -> np.ndarray:
    """Short raised-cosine fades at both ends (no clicks where a piece is cut)."""
    n = min(seconds(fade_s), len(audio) // 2)
    if n == 0:
        return audio
    audio = audio.copy()
    ramp = (0.5 - 0.5 * np.cos(np.linspace(0, np.pi, n, dtype=np.float32)))[:, None]
    audio[:n] *= ramp
    audio[-n:] *= ramp[::-1]
    return audio


def excerpt(audio: np.ndarray, length: int, rand: random.Random) -> np.ndarray:
    """A random ``length``-sample window of ``audio`` (looped when shorter)."""
    if len(audio) <= length:
        return loop(audio, length)
    start = rand.randrange(len(audio) - length + 1)
    return audio[start:start + length]


def loop(audio: np.ndarray, length: int, crossfade_s: float = 0.05) -> np.ndarray:
    """Repeat ``audio`` to ``length`` samples, crossfading at each seam (for ambiences)."""
    if len(audio) >= length:
        return audio[:length]
    overlap = min(seconds(crossfade_s), len(audio) // 4)
    step = len(audio) - overlap
    out = np.zeros((length + len(audio), audio.shape[1]), np.float32)
    ramp = np.linspace(0, 1, overlap, dtype=np.float32)[:, None] if overlap else None
    piece = audio.copy()
    if overlap:
        piece[:overlap] *= ramp
        piece[-overlap:] *= ramp[::-1]
    for start in range(0, length, step):
        out[start:start + len(piece)] += piece
    if overlap:  # the very first fade-in is not a seam: restore it
        out[:overlap] = audio[:overlap]
    return out[:length]


def place(track: np.ndarray, audio: np.ndarray, start: int) -> None:
    """Add ``audio`` into ``track`` at sample ``start`` (cut at the end of the track)."""
    end = min(len(track), start + len(audio))
    if end > start:
        track[start:end] += stereo(audio)[: end - start] if track.shape[1] == 2 else mono(audio)[: end - start]


def rms_db(audio: np.ndarray) -> float:
    power = float(np.mean(np.square(audio, dtype=np.float64)))
    return 10 * math.log10(max(power, 1e-12))


def gain_to(audio: np.ndarray, target_db: float) -> np.ndarray:
    """Scale to an RMS level in dBFS (silence stays silent)."""
    level = rms_db(audio)
    if level < -100:
        return audio
    return (audio * np.float32(10 ** ((target_db - level) / 20))).astype(np.float32)


def finish(audio: np.ndarray, target_db: float, peak: float = 0.97) -> np.ndarray:
    """Final level: RMS ``target_db``, then scaled down if a peak would clip."""
    audio = gain_to(audio, target_db)
    top = float(np.max(np.abs(audio))) if audio.size else 0.0
    if top > peak:
        audio = audio * np.float32(peak / top)
    return audio.astype(np.float32)


def room(audio: np.ndarray, rand: random.Random, rt60_s: tuple[float, float] = (0.2, 0.9),
         wet: tuple[float, float] = (0.1, 0.4)) -> np.ndarray:
    """Reverberate with a synthetic room: exponentially decaying noise, decorrelated per channel,
    slightly darker as it decays. Returns the same length as the input."""
    from scipy.signal import fftconvolve

    rt60 = rand.uniform(*rt60_s)
    mix = rand.uniform(*wet)
    noise = np_rng("room", rand.random())
    length = seconds(min(rt60, 1.2))
    t = np.arange(length, dtype=np.float32) / SAMPLE_RATE
    envelope = np.exp(-6.91 * t / rt60).astype(np.float32)
    audio = stereo(audio)
    out = np.empty_like(audio)
    for channel in range(2):
        response = noise.standard_normal(length).astype(np.float32) * envelope
        response = np.convolve(response, np.ones(4, np.float32) / 4, mode="same")  # a little darker
        response /= np.sqrt(np.sum(response ** 2)) + 1e-9
        wet_signal = fftconvolve(audio[:, channel], response)[: len(audio)]
        out[:, channel] = (1 - mix) * audio[:, channel] + mix * wet_signal
    return out.astype(np.float32)


def colored_noise(length: int, exponent: float, noise: np.random.Generator, channels: int = 2) -> np.ndarray:
    """Noise with power spectrum ∝ 1/f**exponent (0 white, 1 pink, 2 brown), unit RMS."""
    spectrum = noise.standard_normal((length // 2 + 1, channels)) + 1j * noise.standard_normal(
        (length // 2 + 1, channels))
    frequency = np.fft.rfftfreq(length, 1 / SAMPLE_RATE)
    frequency[0] = frequency[1]
    spectrum *= (frequency ** (-exponent / 2))[:, None]
    audio = np.fft.irfft(spectrum, n=length, axis=0)
    audio /= np.sqrt(np.mean(audio ** 2)) + 1e-12
    return audio.astype(np.float32)


# ------------------------------------------------------------------------------------------
# Writing
# ------------------------------------------------------------------------------------------


def write_flac(path: str, audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """16-bit FLAC. ``audio`` is at 48 kHz; a lower ``sample_rate`` resamples first."""
    import soundfile

    if sample_rate != SAMPLE_RATE:
        from scipy.signal import resample_poly

        divisor = math.gcd(sample_rate, SAMPLE_RATE)
        audio = resample_poly(audio, sample_rate // divisor, SAMPLE_RATE // divisor, axis=0)
    soundfile.write(path, np.clip(audio, -1.0, 1.0), sample_rate, subtype="PCM_16", format="FLAC")


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()

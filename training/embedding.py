"""Embeddings of new audio from an exported model: ``load(path)(audio, sample_rate) → embeddings``.

::

    from training.embedding import load
    embed = load("EXPORT_DIR")              # what ``python -m training export`` wrote
    embeddings = embed(audio, 44_100)      # [windows, width]: one per 10 s window
    embeddings, starts_s = embed.embed(audio, 44_100)

``audio`` is a float waveform of any length at any sample rate, mono ``[samples]`` or
``[samples, channels]`` with 1 or 2 channels (mono is duplicated to both channels, as the pipeline
does). The SavedModel (:mod:`training.saved_model`) takes 48 kHz audio and returns one embedding per
10 s window (the pipeline's clip rules); this module resamples to the model's rate first.

Decisions:
- Resampling is the SoX resampler at high quality (``soxr.resample(..., quality="HQ")``), what
  ``librosa.resample`` does by default (``res_type="soxr_hq"``) and bit for bit the same samples
  (tests/training/test_embedding.py compares them). Called directly, not through librosa: librosa
  compiles its numba helpers when it is first imported in an installation (~11 s on a 2-core x86
  VM), which made the first embedding of every fresh install or container that slow.
  SciPy's ``resample_poly`` was tried first and refused: its default Kaiser filter (β = 5) lets
  through images of about -50 dB just above the source's Nyquist frequency (a 6.1 kHz tone at
  16 kHz came back with a 9.9 kHz image), and the model's front end, in dB with a floor at
  -100 dB, sees them: 49 dB in a mel band the same sound sampled at 48 kHz leaves empty, against
  0.4 dB with soxr (tests/training/test_embedding.py compares 16 kHz and 48 kHz).
- The model's sample rate and window length are read from ``mygo.json`` beside the SavedModel (the
  export writes it); without it, the pipeline's defaults are assumed.
- :meth:`Embedder.embed_windows` embeds many windows of exactly one clip length in one call (they
  are laid end to end, which the model's window rule splits back apart exactly): the HEAR wrapper
  (:mod:`training.hear`) uses it for its timestamp embeddings.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from audioshards.spectrogram import DEFAULT_CONFIG


def resample(audio: np.ndarray, rate: int, target: int) -> np.ndarray:
    """``audio`` (time on axis 0, channels on axis 1 if any) from ``rate`` to ``target`` Hz, float32,
    n · target / rate samples rounded to the nearest."""
    audio = np.asarray(audio, dtype=np.float32)
    if rate == target:
        return audio
    import soxr

    out = soxr.resample(audio, rate, target, quality="HQ")
    length = (audio.shape[0] * target + rate // 2) // rate
    if out.shape[0] < length:  # soxr rounds its length its own way: pad with silence, as librosa does
        out = np.pad(out, [(0, length - out.shape[0])] + [(0, 0)] * (out.ndim - 1))
    return out[:length].astype(np.float32, copy=False)


def _rate(sample_rate: float) -> int:
    if sample_rate <= 0 or sample_rate != int(sample_rate):
        raise ValueError(f"sample rate {sample_rate!r}: a positive whole number of Hz expected")
    return int(sample_rate)


def as_samples_by_channels(audio: Any) -> np.ndarray:
    """``[samples]`` or ``[samples, 1 or 2]`` float32; the usual mistake, channels first, is named."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[:, None]
    if audio.ndim != 2 or audio.shape[1] not in (1, 2):
        hint = " (channels first? pass audio.T)" if audio.ndim == 2 and audio.shape[0] in (1, 2) else ""
        raise ValueError(f"audio of shape {audio.shape}: [samples] or [samples, 1 or 2 channels] expected{hint}")
    if audio.shape[0] == 0:
        raise ValueError("audio has no samples")
    return audio


class Embedder:
    """An exported SavedModel behind a function of (audio, sample rate)."""

    def __init__(self, path: str) -> None:
        self.path = str(path)
        self.model = tf.saved_model.load(self.path)
        self._signature = self.model.signatures["serving_default"]
        description = Path(self.path, "mygo.json")
        spectrogram = {}
        if description.exists():
            spectrogram = json.loads(description.read_text()).get("encoder", {}).get("spectrogram", {})
        #: The model's input rate (Hz) and window length (s): its embeddings are one per window.
        self.sample_rate = int(spectrogram.get("sample_rate", DEFAULT_CONFIG.sample_rate))
        self.window_seconds = float(spectrogram.get("clip_seconds", DEFAULT_CONFIG.clip_seconds))
        self.window_samples = int(round(self.sample_rate * self.window_seconds))
        width = self._signature.structured_outputs["embedding"].shape[-1]
        if width is None:  # not in the signature: ask the model
            width = self.embed_windows(np.zeros((1, self.window_samples, 1), np.float32)).shape[1]
        self.embedding_size = int(width)

    def embed(self, audio: Any, sample_rate: float) -> tuple[np.ndarray, np.ndarray]:
        """(embeddings [windows, width] float32, window start times [windows] in seconds)."""
        audio = resample(as_samples_by_channels(audio), _rate(sample_rate), self.sample_rate)
        out = self._signature(audio=tf.constant(audio))
        return out["embedding"].numpy(), out["window_start_s"].numpy()

    def __call__(self, audio: Any, sample_rate: float) -> np.ndarray:
        """Embeddings [windows, width] of ``audio`` (any rate, mono or stereo), one per 10 s window."""
        return self.embed(audio, sample_rate)[0]

    def embed_windows(self, windows: np.ndarray, batch: int = 8) -> np.ndarray:
        """Windows [n, window_samples, channels] at the model's rate → [n, width], ``batch`` per call."""
        windows = np.asarray(windows, dtype=np.float32)
        if windows.ndim != 3 or windows.shape[1] != self.window_samples:
            raise ValueError(f"windows of shape {windows.shape}: [n, {self.window_samples}, channels] expected")
        parts = []
        for start in range(0, windows.shape[0], batch):
            chunk = windows[start:start + batch]
            laid_end_to_end = chunk.reshape(-1, chunk.shape[2])  # the model cuts it back into these windows
            parts.append(self._signature(audio=tf.constant(laid_end_to_end))["embedding"].numpy())
        return np.concatenate(parts) if parts else np.zeros((0, self.embedding_size), np.float32)


def load(path: str) -> Embedder:
    """The SavedModel at ``path`` (``python -m training export --out PATH``) as an :class:`Embedder`:
    ``load(path)(audio, sample_rate)`` → embeddings [windows, width]."""
    return Embedder(path)

"""The HEAR 2021 common API over an exported model, so HEAR's evaluation kit can run it.

::

    from training import hear
    model = hear.load_model("EXPORT_DIR")            # python -m training export --out EXPORT_DIR
    scene = hear.get_scene_embeddings(audio, model)   # audio [n_sounds, n_samples] at model.sample_rate
    embeddings, timestamps_ms = hear.get_timestamp_embeddings(audio, model)

``model`` has ``sample_rate`` (48 000), ``scene_embedding_size`` and ``timestamp_embedding_size``
(the encoder's width). Audio is mono at ``model.sample_rate`` (HEAR resamples for us; for other
rates use :mod:`training.embedding`, which resamples); outputs are ``tf.Tensor`` float32, as HEAR
asks of TensorFlow models.

How the embeddings are made:
- Scene: the SavedModel's own windows (consecutive 10 s windows; a sound shorter than 10 s is
  looped to 10 s, as the pipeline does), averaged.
- Timestamps: the SavedModel gives one embedding per whole 10 s window, with no per-frame or
  per-patch output, so timestamp embeddings are computed from windows of audio with a hop: the
  embedding at ``t`` ms is that of the 10 s window centred on ``t`` (zeros beyond the sound's
  ends), for ``t = 0, hop, 2·hop, …`` up to the sound's duration. The hop is ``timestamp_hop_ms``
  of :func:`load_model` (50 ms by default). Each timestamp costs one 10 s window through the
  model, so a finer hop costs proportionally more, and each embedding summarises 10 s of context
  around its timestamp, not the instant itself.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from training.embedding import Embedder

DEFAULT_HOP_MS = 50.0


class HearModel:
    """What :func:`load_model` returns: the embedder and the attributes HEAR reads."""

    def __init__(self, embedder: Embedder, timestamp_hop_ms: float = DEFAULT_HOP_MS, batch_windows: int = 8) -> None:
        if timestamp_hop_ms <= 0:
            raise ValueError(f"timestamp_hop_ms {timestamp_hop_ms!r}: a positive number of milliseconds expected")
        self.embedder = embedder
        self.sample_rate = embedder.sample_rate
        self.scene_embedding_size = embedder.embedding_size
        self.timestamp_embedding_size = embedder.embedding_size
        self.timestamp_hop_ms = float(timestamp_hop_ms)
        self.batch_windows = batch_windows


def load_model(model_file_path: str = "", *, timestamp_hop_ms: float = DEFAULT_HOP_MS, batch_windows: int = 8) -> HearModel:
    """The SavedModel directory ``model_file_path`` (there are no bundled weights: it is required)."""
    if not model_file_path:
        raise ValueError("model_file_path: the directory `python -m training export --out` wrote is required")
    return HearModel(Embedder(model_file_path), timestamp_hop_ms, batch_windows)


def _sounds(audio: Any, model: HearModel) -> np.ndarray:
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 2 or audio.shape[1] == 0:
        raise ValueError(f"audio of shape {audio.shape}: [n_sounds, n_samples] (mono, {model.sample_rate} Hz) expected")
    return audio


def get_scene_embeddings(audio: Any, model: HearModel) -> tf.Tensor:
    """audio [n_sounds, n_samples] → [n_sounds, scene_embedding_size]: the mean of each sound's windows."""
    sounds = _sounds(audio, model)
    scenes = [model.embedder(sound, model.sample_rate).mean(axis=0) for sound in sounds]
    return tf.constant(np.stack(scenes) if scenes else np.zeros((0, model.scene_embedding_size)), tf.float32)


def timestamps_ms(n_samples: int, model: HearModel) -> np.ndarray:
    """Centres of the timestamp windows, in ms: 0, hop, 2·hop, … up to the sound's duration."""
    hop = model.timestamp_hop_ms * model.sample_rate / 1000.0  # in samples, maybe fractional
    count = int(np.floor((n_samples - 1) / hop + 1e-9)) + 1
    return np.arange(count) * model.timestamp_hop_ms


def get_timestamp_embeddings(audio: Any, model: HearModel) -> tuple[tf.Tensor, tf.Tensor]:
    """audio [n_sounds, n_samples] → (embeddings [n_sounds, n_timestamps, timestamp_embedding_size],
    timestamps [n_sounds, n_timestamps] in ms), each embedding that of the 10 s window centred on
    its timestamp."""
    sounds = _sounds(audio, model)
    times = timestamps_ms(sounds.shape[1], model)
    size, half = model.embedder.window_samples, model.embedder.window_samples // 2
    centres = np.round(times * model.sample_rate / 1000.0).astype(np.int64)
    out = np.zeros((sounds.shape[0], times.size, model.timestamp_embedding_size), np.float32)
    for number, sound in enumerate(sounds):
        padded = np.pad(sound, (half, size - half))
        for first in range(0, times.size, model.batch_windows):
            starts = centres[first:first + model.batch_windows]  # the window of centre c is padded[c : c + size]
            windows = np.stack([padded[start:start + size] for start in starts])[:, :, None]
            out[number, first:first + len(starts)] = model.embedder.embed_windows(windows, batch=len(starts))
    stamps = np.broadcast_to(times.astype(np.float32), (sounds.shape[0], times.size))
    return tf.constant(out), tf.constant(stamps)

"""Audio in, embeddings out: a self-contained SavedModel of a trained encoder.

``python -m training export --run RUN_DIR --out EXPORT_DIR`` writes a SavedModel whose
signatures take a float32 waveform at 48 kHz of any length and return one embedding per 10 s
window:

- ``serving_default``: ``audio`` [samples, channels] (1 or 2 channels: mono is duplicated);
- ``embed_mono``: ``audio`` [samples].

Outputs: ``embedding`` [windows, width] and ``window_start_s`` [windows]. Windows follow the
pipeline's clip rules (consecutive 10 s windows; a trailing remainder of at least 2 s, or a
source shorter than 10 s, looped). The log-mel front end (float64 FFT, librosa's filterbank
baked in as a constant), the normalisation with the training data's per-band statistics and
the encoder are all inside, so the model loads with plain ``tf.saved_model.load`` on a machine
where this project is not installed::

    model = tf.saved_model.load("EXPORT_DIR")
    out = model.signatures["serving_default"](audio=tf.constant(waveform))  # [samples, 2]
    out["embedding"]
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import tensorflow as tf

from audioshards.audio import ClipSettings
from audioshards.spectrogram import SpectrogramConfig
from training.frontend import LogMelFrontEnd, as_stereo, clip_windows

log = logging.getLogger(__name__)


class AudioEmbedder(tf.Module):
    """Raw audio → log-mel → normalised → encoder representation, per 10 s window."""

    def __init__(self, encoder, band_mean, band_std, config: SpectrogramConfig, settings: ClipSettings) -> None:
        super().__init__(name="audio_embedder")
        # The Keras model is kept out of tracking (saving it would also trace Keras's own default
        # signature, which needs a static frame count); its variables are tracked instead.
        self._encode = lambda windows: encoder(windows)
        self.encoder_variables = list(encoder.variables)
        self.output_width = encoder.output_width
        self.front_end = LogMelFrontEnd(config)
        self.band_mean = tf.constant(band_mean, tf.float32)[:, None, None]
        self.band_std = tf.constant(band_std, tf.float32)[:, None, None]
        self.config, self.settings = config, settings

    def windows(self, audio: tf.Tensor) -> tf.Tensor:
        """[samples, channels] or [samples] → normalised log-mel windows [W, mel, frames, 2]."""
        stereo = tf.ensure_shape(as_stereo(audio), [None, self.config.channels])
        clips = clip_windows(stereo, self.config, self.settings)
        return (self.front_end(clips) - self.band_mean) / self.band_std

    def _embed(self, audio: tf.Tensor) -> dict[str, tf.Tensor]:
        embedding = self._encode(self.windows(audio))
        starts = tf.range(tf.shape(embedding)[0], dtype=tf.float32) * self.config.clip_seconds
        return {"embedding": tf.cast(embedding, tf.float32), "window_start_s": starts}

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32, name="audio")])
    def embed(self, audio):
        return self._embed(audio)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="audio")])
    def embed_mono(self, audio):
        return self._embed(audio)


def embedder_from_run(run: str) -> AudioEmbedder:
    """The run's exported encoder (RUN_DIR/encoder) wrapped with the front end it was trained on."""
    from training.export import load_encoder, normalisation

    encoder, metadata = load_encoder(f"{run.rstrip('/')}/encoder")
    mean, std = normalisation(metadata)
    return AudioEmbedder(encoder, mean, std, SpectrogramConfig.from_dict(metadata["spectrogram"]), ClipSettings())


def export_saved_model(run: str, out: str) -> str:
    """Write the SavedModel of ``run`` to ``out`` and a ``mygo.json`` describing it."""
    embedder = embedder_from_run(run)
    tf.saved_model.save(
        embedder, out, signatures={"serving_default": embedder.embed, "embed_mono": embedder.embed_mono}
    )
    metadata = json.loads((Path(run) / "encoder" / "encoder.json").read_text())
    description = {
        "input": "float32 waveform at 48000 Hz: [samples, 1 or 2 channels] (serving_default) or [samples] "
        "(embed_mono), any length",
        "output": {"embedding": "[windows, width]", "window_start_s": "[windows]"},
        "windows": embedder.settings.to_dict(),
        "encoder": metadata,
    }
    Path(out, "mygo.json").write_text(json.dumps(description, indent=1) + "\n")
    log.info("exported %s → %s (embedding width %d)", run, out, embedder.output_width)
    return out

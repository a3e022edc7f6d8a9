"""The exported encoder: weights plus everything needed to use them, in ``RUN_DIR/encoder/``.

- ``encoder.weights.h5``: Keras weights of :class:`training.vit.model.Encoder` (no projector: the
  representation, not the loss's embedding, is what downstream tasks use);
- ``encoder.json``: the model config, the spectrogram config the encoder expects, the
  per-band normalisation statistics, the view frame counts it was trained on, the step.

The directory is written under a temporary name and renamed, so a reader (the probe, while a run
is still training) never sees half an export. ``load_encoder`` rebuilds the encoder from it.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from typing import Any

import numpy as np

from audioshards import storage
from training.config import Config, ModelConfig

WEIGHTS = "encoder.weights.h5"
METADATA = "encoder.json"


def export_encoder(encoder, config: Config, spectrogram: dict[str, Any], band_mean, band_std, step: int,
                   directory: str) -> str:
    """Write the encoder to `directory` (replacing an older export atomically enough: rename)."""
    directory = directory.rstrip("/")
    if storage.is_remote(directory):  # object store: stage locally, then copy file by file (no directory rename there)
        import tensorflow as tf

        with tempfile.TemporaryDirectory() as local:
            export_encoder(encoder, config, spectrogram, band_mean, band_std, step, f"{local}/encoder")
            tf.io.gfile.makedirs(directory)
            for name in (WEIGHTS, METADATA):
                tf.io.gfile.copy(f"{local}/encoder/{name}", f"{directory}/{name}", overwrite=True)
        return directory
    parent = os.path.dirname(directory) or "."
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".encoder-", dir=parent)
    try:
        encoder.save_weights(os.path.join(staging, WEIGHTS))
        metadata = {
            "step": int(step),
            "model": config.to_dict()["model"],
            "spectrogram": spectrogram,
            "normalisation": {"band_mean": [float(v) for v in band_mean], "band_std": [float(v) for v in band_std],
                              "min_band_std": config.views.min_band_std},
            "views": {"global_frames": config.views.global_frames, "local_frames": config.views.local_frames},
            "representation_width": encoder.output_width,
        }
        storage.write_text_atomic(os.path.join(staging, METADATA), json.dumps(metadata, indent=1))
        old = f"{directory}.old"
        if os.path.exists(directory):
            shutil.rmtree(old, ignore_errors=True)
            os.replace(directory, old)
        os.replace(staging, directory)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return directory


def load_encoder(directory: str):
    """(encoder with weights, metadata dict) from an export directory."""
    from training.vit.model import build_models

    if storage.is_remote(directory):  # object store: Keras reads weights from local files only
        import tensorflow as tf

        local = tempfile.mkdtemp(prefix="encoder-")
        for name in (WEIGHTS, METADATA):
            tf.io.gfile.copy(f"{directory.rstrip('/')}/{name}", f"{local}/{name}", overwrite=True)
        directory = local
    with open(os.path.join(directory, METADATA)) as handle:
        metadata = json.load(handle)
    model_config = ModelConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in metadata["model"].items()})
    encoder, _ = build_models(model_config, mels=metadata["spectrogram"]["n_mels"],
                              channels=metadata["spectrogram"]["channels"])
    encoder.load_weights(os.path.join(directory, WEIGHTS))
    return encoder, metadata


def load_checkpoint_encoder(run_dir: str, step: int):
    """The encoder of ``run_dir`` as it was at checkpoint ``step`` (architecture from its export).

    Lets a probe follow a run's progress (the export holds only the latest weights). Only the
    encoder is restored from the checkpoint; its projector and optimiser state are not needed."""
    import tensorflow as tf

    from training.vit.model import build_models

    run_dir = run_dir.rstrip("/")
    path = f"{run_dir}/checkpoints/ckpt-{step}"
    if not tf.io.gfile.exists(f"{path}.index"):
        kept = sorted(int(name[5:-6]) for name in tf.io.gfile.listdir(f"{run_dir}/checkpoints")
                      if name.startswith("ckpt-") and name.endswith(".index")) \
            if tf.io.gfile.isdir(f"{run_dir}/checkpoints") else []
        raise FileNotFoundError(f"{run_dir} has no checkpoint of step {step}; it keeps steps {kept or 'none'} "
                                f"(--keep-checkpoints sets how many a run keeps)")
    _, metadata = load_encoder(f"{run_dir}/encoder")
    model_config = ModelConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in metadata["model"].items()})
    encoder, _ = build_models(model_config, mels=metadata["spectrogram"]["n_mels"],
                              channels=metadata["spectrogram"]["channels"])
    # The checkpoint names the encoder's own layers, but its transformer blocks (a Python list, which
    # Keras 3 does not report to tf.train.Checkpoint) only as the optimiser's variables, in the order
    # the trainer gave them: the encoder's trainable variables first (train.build_state).
    optimizer = tf.Module()
    optimizer.params = [v.value if isinstance(getattr(v, "value", None), tf.Variable) else v
                        for v in encoder.trainable_variables]
    tf.train.Checkpoint(encoder=encoder, optimizer=optimizer).restore(path).expect_partial() \
        .assert_existing_objects_matched()
    return encoder


def normalisation(metadata: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """The (mean, floored std) the encoder was trained with."""
    values = metadata["normalisation"]
    return (np.asarray(values["band_mean"], np.float32),
            np.maximum(np.asarray(values["band_std"], np.float32), np.float32(values["min_band_std"])))

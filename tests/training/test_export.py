"""training.export: the exported encoder (weights + encoder.json), its atomic replacement, and
reading it back, from the export or from a checkpoint of the run."""
import json
import os

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf

from audioshards.spectrogram import DEFAULT_CONFIG
from training import export, optimizer
from training.config import Config
from training.vit.model import build_models

# Not the defaults: load_encoder must rebuild this architecture from encoder.json, not from the flags' defaults.
CONFIG = Config().replace(**{"model.depth": 1, "model.width": 32, "model.heads": 2, "model.mlp_dim": 48,
                             "model.projector_hidden": 40, "model.projector_dim": 24, "model.pool": "cls",
                             "views.global_frames": 56, "views.local_frames": 26})
SPECTROGRAM = DEFAULT_CONFIG.to_dict()
MELS = SPECTROGRAM["n_mels"]
BAND_MEAN = np.linspace(-60.0, -20.0, MELS)
BAND_STD = np.linspace(0.5, 12.0, MELS)  # the first bands below min_band_std (1 dB)


def models(seed: int):
    keras.utils.set_random_seed(seed)
    return build_models(CONFIG.model, mels=MELS, channels=SPECTROGRAM["channels"])


def views(seed: int = 0) -> tf.Tensor:
    return tf.random.stateless_normal([2, MELS, 36, 2], seed=[seed, 1])


@pytest.fixture(scope="module")
def encoder():
    return models(seed=1)[0]


def test_an_export_is_the_weights_and_a_description(encoder, tmp_path):
    directory = export.export_encoder(encoder, CONFIG, SPECTROGRAM, BAND_MEAN, BAND_STD, 42, str(tmp_path / "encoder"))
    assert directory == str(tmp_path / "encoder")
    assert sorted(os.listdir(directory)) == ["encoder.json", "encoder.weights.h5"]
    assert os.listdir(tmp_path) == ["encoder"]  # no staging directory or older copy left beside it
    metadata = json.loads((tmp_path / "encoder" / "encoder.json").read_text())
    assert metadata["step"] == 42
    assert metadata["model"] == CONFIG.to_dict()["model"] and metadata["model"]["width"] == 32
    assert metadata["spectrogram"] == SPECTROGRAM
    np.testing.assert_allclose(metadata["normalisation"]["band_mean"], BAND_MEAN)
    np.testing.assert_allclose(metadata["normalisation"]["band_std"], BAND_STD)
    assert metadata["normalisation"]["min_band_std"] == 1.0
    assert metadata["views"] == {"global_frames": 56, "local_frames": 26}
    assert metadata["representation_width"] == 32  # pool "cls": the [CLS] output alone
    # The encoder only: the projector (the loss's embedding) is not part of an export.
    with h5py.File(tmp_path / "encoder" / "encoder.weights.h5") as weights:
        names = []
        weights.visit(names.append)
    assert names and not any("projector" in name or "dense3" in name for name in names)


def test_load_encoder_rebuilds_the_architecture_and_gives_the_same_representation(encoder, tmp_path):
    export.export_encoder(encoder, CONFIG, SPECTROGRAM, BAND_MEAN, BAND_STD, 7, str(tmp_path / "encoder"))
    loaded, metadata = export.load_encoder(str(tmp_path / "encoder"))
    assert loaded.config == CONFIG.model  # tuples and all, from encoder.json
    assert len(loaded.blocks) == 1 and loaded.output_width == 32
    assert metadata["step"] == 7
    x = views()
    np.testing.assert_allclose(loaded(x).numpy(), encoder(x).numpy(), rtol=1e-6, atol=1e-6)


def test_normalisation_floors_the_band_std_at_min_band_std(encoder, tmp_path):
    export.export_encoder(encoder, CONFIG, SPECTROGRAM, BAND_MEAN, BAND_STD, 0, str(tmp_path / "encoder"))
    _, metadata = export.load_encoder(str(tmp_path / "encoder"))
    mean, std = export.normalisation(metadata)
    assert mean.dtype == std.dtype == np.float32 and mean.shape == std.shape == (MELS,)
    np.testing.assert_allclose(mean, BAND_MEAN, rtol=1e-6)
    np.testing.assert_allclose(std, np.maximum(BAND_STD, 1.0), rtol=1e-6)
    assert std.min() == 1.0 and std[-1] == pytest.approx(12.0)


def test_a_new_export_replaces_the_old_one(encoder, tmp_path):
    newer = models(seed=2)[0]
    target = str(tmp_path / "encoder")
    export.export_encoder(encoder, CONFIG, SPECTROGRAM, BAND_MEAN, BAND_STD, 10, target)
    export.export_encoder(newer, CONFIG, SPECTROGRAM, BAND_MEAN, BAND_STD, 20, target + "/")  # a trailing slash too
    assert os.listdir(tmp_path) == ["encoder"]
    loaded, metadata = export.load_encoder(target)
    assert metadata["step"] == 20
    x = views()
    np.testing.assert_allclose(loaded(x).numpy(), newer(x).numpy(), rtol=1e-6, atol=1e-6)
    assert not np.allclose(loaded(x).numpy(), encoder(x).numpy(), atol=1e-3)


def test_a_failed_export_leaves_the_previous_one_whole(encoder, tmp_path):
    target = str(tmp_path / "encoder")
    export.export_encoder(encoder, CONFIG, SPECTROGRAM, BAND_MEAN, BAND_STD, 10, target)
    before = {name: (tmp_path / "encoder" / name).read_bytes() for name in os.listdir(target)}
    # The weights are written, then the description fails (a value JSON cannot hold): nothing is replaced.
    with pytest.raises(TypeError, match="not JSON serializable"):
        export.export_encoder(models(seed=2)[0], CONFIG, {**SPECTROGRAM, "bad": {1, 2}}, BAND_MEAN, BAND_STD, 20,
                              target)
    assert os.listdir(tmp_path) == ["encoder"]  # the staging directory is gone
    assert {name: (tmp_path / "encoder" / name).read_bytes() for name in os.listdir(target)} == before


def test_an_export_to_an_object_store_path_is_copied_file_by_file(encoder):
    target = "ram://export-test/run/encoder"
    export.export_encoder(encoder, CONFIG, SPECTROGRAM, BAND_MEAN, BAND_STD, 3, target)
    assert sorted(tf.io.gfile.listdir(target)) == ["encoder.json", "encoder.weights.h5"]
    loaded, metadata = export.load_encoder(target + "/")
    assert metadata["step"] == 3
    x = views()
    np.testing.assert_allclose(loaded(x).numpy(), encoder(x).numpy(), rtol=1e-6, atol=1e-6)


def save_checkpoint(run_dir, encoder, projector, step: int) -> None:
    """A checkpoint as the trainer writes it: step, encoder, projector, optimiser, loss scale."""
    checkpoint = tf.train.Checkpoint(
        step=tf.Variable(step, dtype=tf.int64), encoder=encoder, projector=projector,
        optimizer=optimizer.AdamW(encoder.trainable_variables + projector.trainable_variables, CONFIG.optim),
        loss_scale=optimizer.LossScale(enabled=False))
    tf.train.CheckpointManager(checkpoint, f"{run_dir}/checkpoints", max_to_keep=5).save(checkpoint_number=step)


def test_load_checkpoint_encoder_restores_the_encoder_of_that_step(encoder, tmp_path):
    run = str(tmp_path / "run")
    export.export_encoder(encoder, CONFIG, SPECTROGRAM, BAND_MEAN, BAND_STD, 20, f"{run}/encoder")  # the latest
    at_5, at_10 = models(seed=5), models(seed=10)
    save_checkpoint(run, *at_5, 5)
    save_checkpoint(run, *at_10, 10)
    x = views()
    for step, (expected, _) in ((5, at_5), (10, at_10)):
        restored = export.load_checkpoint_encoder(run + "/", step)
        assert restored.config == CONFIG.model
        np.testing.assert_allclose(restored(x).numpy(), expected(x).numpy(), rtol=1e-6, atol=1e-6)
    assert not np.allclose(export.load_checkpoint_encoder(run, 5)(x).numpy(), encoder(x).numpy(), atol=1e-3)


def test_load_checkpoint_encoder_names_the_steps_a_run_keeps(encoder, tmp_path):
    run = str(tmp_path / "run")
    with pytest.raises(FileNotFoundError, match=r"has no checkpoint of step 5; it keeps steps none \(--keep-checkpoints"):
        export.load_checkpoint_encoder(run, 5)
    export.export_encoder(encoder, CONFIG, SPECTROGRAM, BAND_MEAN, BAND_STD, 20, f"{run}/encoder")
    save_checkpoint(run, *models(seed=0), 10)
    save_checkpoint(run, *models(seed=0), 20)
    with pytest.raises(FileNotFoundError, match=r"run has no checkpoint of step 15; it keeps steps \[10, 20\]"):
        export.load_checkpoint_encoder(run, 15)

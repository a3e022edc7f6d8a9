"""The training loop on one host, run as `python -m training train` in subprocesses: two replicas
train and the loss falls, the run directory, resuming with other settings, a NaN loss."""
import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from audioshards import shards as shard_format
from training.config import Config
from tests.training.conftest import run_training
from tests.training.runs import FAST, checkpoints, metrics, output


@pytest.fixture(scope="module")
def two_replica_run(shard_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "two-replicas"
    result = run_training("train", "--shards", str(shard_dir), "--out", str(out), "--cpu-devices", "2",
                          "--batch", "8", "--steps", "30", "--lr", "2e-3", "--checkpoint-every", "10", *FAST)
    return out, result


def test_tiny_trains_with_two_replicas_and_its_loss_falls(two_replica_run):
    out, result = two_replica_run
    assert result.returncode == 0, output(result)[-4000:]
    assert "MirroredStrategy with 2 replica(s) (4 clips each)" in result.stdout
    rows = metrics(out)
    assert [row["step"] for row in rows] == list(range(1, 31))
    losses = np.array([row["loss"] for row in rows])
    assert np.all(np.isfinite(losses))
    # It falls, without the collapse that once made it fall fastest (tests/training/test_learning.py
    # checks that it learns).
    assert losses[-5:].mean() < 0.8 * losses[:5].mean()
    assert "ex/s" in result.stdout and rows[-1]["examples_per_s"] > 0
    assert all(row["effective_rank"] >= 1 and row["embedding_std"] > 0 for row in rows)
    assert all(row["representation_rank"] >= 1 and row["representation_std"] > 0 for row in rows)
    assert "repr std" in result.stdout


def test_run_directory_holds_config_checkpoints_tensorboard_and_encoder(two_replica_run):
    out, result = two_replica_run
    assert result.returncode == 0, output(result)[-4000:]
    config = Config.from_dict(json.loads((out / "config.json").read_text()))
    assert (config.run.cpu_devices, config.run.batch, config.run.steps) == (2, 8, 30)
    assert config.run.precision == "float32"  # "auto" is resolved before it is saved
    assert checkpoints(out) == [10, 20, 30]
    tags = set()
    for name in os.listdir(out / "tensorboard"):
        for event in tf.compat.v1.train.summary_iterator(str(out / "tensorboard" / name)):
            tags |= {value.tag for value in event.summary.value}
    assert {"loss/total", "loss/invariance", "loss/sigreg", "optimizer/learning_rate", "optimizer/grad_norm",
            "speed/examples_per_s", "collapse/embedding_std", "collapse/effective_rank",
            "collapse/representation_std", "collapse/representation_rank"} <= tags
    from training.export import load_encoder

    encoder, metadata = load_encoder(str(out / "encoder"))
    assert metadata["step"] == 30 and metadata["model"]["size"] == "tiny"
    assert len(metadata["normalisation"]["band_mean"]) == 256
    representation = encoder(tf.random.normal([2, 256, 56, 2])).numpy()
    assert representation.shape == (2, 128) and np.all(np.isfinite(representation))  # cls+mean of width 64


def test_resume_refuses_other_settings_and_accepts_more_steps(two_replica_run):
    from training.__main__ import resolve_train_config
    from training.config import UsageError

    out, _ = two_replica_run
    with pytest.raises(UsageError, match="--batch: the run was started with 8, now 16"):
        resolve_train_config({"run.out": str(out), "run.batch": 16})
    config, resumed = resolve_train_config({"run.out": str(out), "run.steps": 40, "run.cpu_devices": 1})
    assert resumed and config.run.steps == 40 and config.run.cpu_devices == 1 and config.run.batch == 8


def write_nan_shards(source, target) -> None:
    """A copy of the shard directory whose examples hold NaN (as corrupt features would)."""
    shutil.copytree(source, target)
    manifest = shard_format.read_manifest(str(target))
    shape = manifest["example"]["shape"]
    for shard in manifest["splits"]["train"]["shards"]:
        path = str(target / shard["file"])
        examples = shard_format.read_examples(path, shape)
        poisoned = []
        for example in examples:
            logmel = example.logmel.copy()
            logmel[:, :, :] = np.nan
            poisoned.append(shard_format.ClipExample(**{**example.__dict__, "logmel": logmel}).serialize())
        shard_format.write_shard(path, poisoned)


def test_nan_loss_stops_the_run_and_keeps_the_good_checkpoint(two_replica_run, shard_dir, tmp_path, train_in_process):
    out, result = two_replica_run
    assert result.returncode == 0
    run = tmp_path / "run"
    shutil.copytree(out, run)
    write_nan_shards(shard_dir, tmp_path / "nan-shards")
    before = (run / "checkpoints" / "ckpt-30.index").read_bytes(), (run / "encoder" / "encoder.weights.h5").read_bytes()
    # In this process (one device): the run stops at its first step, so a start-up of its own would cost more.
    stopped = train_in_process("--out", str(run), "--shards", str(tmp_path / "nan-shards"), "--steps", "40",
                               "--checkpoint-every", "1", "--cpu-devices", "1")
    assert stopped.returncode == 3, output(stopped)[-4000:]
    assert "step 31: the loss is nan" in stopped.stdout
    assert "Stopped without saving; the last good checkpoint is" in stopped.stdout and "ckpt-30" in stopped.stdout
    assert checkpoints(run) == [10, 20, 30]
    after = (run / "checkpoints" / "ckpt-30.index").read_bytes(), (run / "encoder" / "encoder.weights.h5").read_bytes()
    assert after == before

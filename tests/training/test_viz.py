"""Pictures: PCA, [CLS] attention over the log-mel, training curves, the probe's bars; all of them
also in the run's TensorBoard (images), the embeddings in its projector."""
import json
import shutil

import matplotlib.image
import numpy as np
import pytest

from tests.training.conftest import logging_kept
import tensorflow as tf

from training.__main__ import parse
from training.export import load_encoder
from training.viz import EMBEDDING_TENSOR, attention_picture, curves_picture, read_scalars, run

PNG = b"\x89PNG\r\n\x1a\n"


def make_run(run_dir, where):
    """A copy of the probe's run (its encoder) with TensorBoard scalars, written as the trainer writes them."""
    shutil.copytree(run_dir / "encoder", where / "encoder")
    writer = tf.summary.create_file_writer(str(where / "tensorboard"))
    with writer.as_default():
        for step in range(1, 6):
            tf.summary.scalar("loss/total", 1.0 / step, step=step)
            tf.summary.scalar("learning_rate", 1e-3 * step, step=step)
    writer.close()
    return where


@pytest.fixture
def logged_run(run_dir, tmp_path):
    return make_run(run_dir, tmp_path / "run")


def viz(*argv):
    return run(parse(["viz", *argv]))


def assert_pictures(paths):
    for path in paths:
        assert open(path, "rb").read(8) == PNG, path
        height, width, _ = matplotlib.image.imread(path).shape
        assert 300 <= height <= 2000 and 300 <= width <= 3000, (path, height, width)


def image_tags(run):
    """Tags of the image summaries in RUN/tensorboard/viz (each a PNG the size it says)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tensorboard" / "viz"), size_guidance={"tensors": 0})
    events.Reload()
    tags = set()
    for tag in events.Tags()["tensors"]:
        if events.SummaryMetadata(tag).plugin_data.plugin_name == "images":
            width, height, png = tf.make_ndarray(events.Tensors(tag)[-1].tensor_proto)
            assert png.startswith(PNG) and tf.io.decode_png(png).shape[:2] == (int(height), int(width)), tag
            tags.add(tag)
    return tags


def projector_rows(run):
    """(metadata rows after the header, rows of the checkpointed embedding)."""
    log_dir = run / "tensorboard" / "viz"
    assert "metadata.tsv" in (log_dir / "projector_config.pbtxt").read_text()
    lines = (log_dir / "metadata.tsv").read_text().splitlines()
    checkpoint = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(log_dir)))
    return lines[0].split("\t"), lines[1:], checkpoint.get_tensor(EMBEDDING_TENSOR).shape[0]


def test_scalars_are_read_back_from_the_event_files(logged_run):
    curves = read_scalars(str(logged_run))
    assert set(curves) == {"loss/total", "learning_rate"}
    assert [step for step, _ in curves["loss/total"]] == [1, 2, 3, 4, 5]
    np.testing.assert_allclose([value for _, value in curves["loss/total"]], [1.0 / s for s in range(1, 6)], rtol=1e-6)


def test_viz_of_labelled_audio_writes_every_picture_into_out_and_tensorboard(logged_run, labelled_audio, tmp_path):
    written = viz("--run", str(logged_run), "--audio", str(labelled_audio), "--out", str(tmp_path / "pictures"))
    names = sorted(p.split("/")[-1] for p in written)
    assert names == ["attention-high-0.png", "attention-low-0.png", "pca.png", "training.png"]
    assert_pictures(written)
    assert image_tags(logged_run) == {f"pictures/{name[:-4]}" for name in names}
    header, rows, embedded = projector_rows(logged_run)
    assert header == ["label", "file"] and len(rows) == embedded == 12
    assert sorted(row.split("\t")[0] for row in rows) == ["high"] * 6 + ["low"] * 6
    assert set(read_scalars(str(logged_run))) == {"loss/total", "learning_rate"}  # viz's images are no curve


def test_viz_of_shards_labels_clips_from_the_manifest_and_caps_them(logged_run, shard_dir, tmp_path):
    written = viz("--run", str(logged_run), "--shards", str(shard_dir), "--max-clips", "20", "--out", str(tmp_path))
    names = sorted(p.split("/")[-1] for p in written)
    assert names[-2:] == ["pca.png", "training.png"]
    attention = names[:-2]  # the first clip of each of the three labels (Sine wave, Noise, Chirp tone)
    assert len(attention) == 3 and all(name.startswith("attention-") for name in attention), names
    assert any(name.startswith("attention-Sine_wave-tone_") for name in attention), names
    assert_pictures(written)
    header, rows, embedded = projector_rows(logged_run)
    assert header == ["label", "labels", "clip"] and len(rows) == embedded == 20
    assert {row.split("\t")[0] for row in rows} == {"Sine wave", "Noise", "Chirp tone"}
    assert "pictures/pca" in image_tags(logged_run)


def test_viz_without_data_draws_the_curves_and_the_probe(logged_run, tmp_path):
    only = viz("--run", str(logged_run), "--out", str(tmp_path / "curves"), "--no-tensorboard")
    assert [p.split("/")[-1] for p in only] == ["training.png"]
    assert not (logged_run / "tensorboard" / "viz").exists()
    report = {"task": "shards /somewhere/shards/audioset → /somewhere/shards/audioset (eval)", "kind": "multi-label",
              "metrics": ["mAP", "AUC"],
              "results": {name: {"mAP": value, "AUC": 0.5 + value, "classes_evaluated": 3}
                          for name, value in [("lejepa", 0.3), ("lejepa@100", 0.2), ("random_init", 0.1),
                                              ("logmel_stats", 0.25)]}}
    (logged_run / "probe.json").write_text(json.dumps(report))
    both = viz("--run", str(logged_run), "--out", str(tmp_path / "with-probe"))
    assert [p.split("/")[-1] for p in both] == ["training.png", "probe.png"]
    assert_pictures(both)
    assert image_tags(logged_run) == {"pictures/training", "pictures/probe"}
    assert not (logged_run / "tensorboard" / "viz" / "metadata.tsv").exists()  # no embeddings, no projector
    accuracy = {"task": "audio x/labels.csv", "kind": "single-label", "classes": 4, "metrics": ["accuracy"],
                "results": {"lejepa": {"accuracy": 0.6, "accuracy_per_fold": [0.5, 0.7]},
                            "random_init": {"accuracy": 0.4, "accuracy_per_fold": [0.3, 0.5]}}}
    (tmp_path / "other.json").write_text(json.dumps(accuracy))
    given = viz("--run", str(logged_run), "--probe", str(tmp_path / "other.json"), "--out", str(tmp_path / "given"))
    assert_pictures(given)
    wide, narrow = (matplotlib.image.imread(path).shape[1] for path in (both[1], given[1]))
    assert wide > narrow  # two metrics of four feature sets against one metric of two


def test_shards_and_audio_together_are_refused(capsys):
    with pytest.raises(SystemExit):
        parse(["viz", "--run", "r", "--shards", "s", "--audio", "a", "--out", "o"])
    assert "not allowed with argument" in capsys.readouterr().err


def test_attention_colours_do_not_depend_on_the_maps_own_range(tmp_path):
    """A map that is uniform up to noise (0.0016-0.0022 per patch) looks nearly uniform; scaling a
    map does not change its picture; a peaked map does look different."""
    rng = np.random.default_rng(0)
    logmel = np.zeros((256, 235), np.float32)
    uniform = np.full((25, 22), 0.9 / 550)

    def drawn(attention, name):
        return matplotlib.image.imread(attention_picture(logmel, attention, str(tmp_path / f"{name}.png"), "map"))

    noisy = rng.uniform(0.0016, 0.0022, (25, 22))
    peaked = uniform.copy()
    peaked[5:10, 5:10] *= 8
    flat, noise = drawn(uniform, "uniform"), drawn(noisy, "noisy")
    assert np.abs(noise - flat).mean() < np.abs(drawn(peaked, "peaked") - flat).mean() / 4
    np.testing.assert_array_equal(drawn(noisy * 0.3, "scaled"), noise)


def test_cls_attention_is_a_distribution_over_the_patch_grid(run_dir):
    encoder, _ = load_encoder(str(run_dir / "encoder"))
    attention = encoder.cls_attention(tf.random.normal([2, 256, 235, 2])).numpy()
    assert attention.shape == (2, 25, 22)
    assert np.all(attention >= 0) and np.all(attention.sum(axis=(1, 2)) <= 1.0 + 1e-5)
    assert np.all(attention.sum(axis=(1, 2)) > 0.5)  # [CLS] keeps only part of its attention to itself


def test_no_scalars_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="no TensorBoard scalars"):
        curves_picture({}, str(tmp_path / "x.png"), "empty")


def test_a_scalar_that_never_changed_gets_no_panel(tmp_path):
    varying = {f"loss/{name}": [(1, 1.0), (2, 0.5)] for name in ("total", "invariance", "sigreg")}
    one_row = curves_picture(varying, str(tmp_path / "varying.png"), "three panels")
    with_constant = curves_picture({**varying, "optimizer/loss_scale": [(1, 1.0), (2, 1.0)]},
                                   str(tmp_path / "constant.png"), "still three panels")
    assert matplotlib.image.imread(with_constant).shape == matplotlib.image.imread(one_row).shape
    four = curves_picture({**varying, "optimizer/grad_norm": [(1, 2.0), (2, 1.0)]}, str(tmp_path / "four.png"), "four")
    assert matplotlib.image.imread(four).shape[0] > matplotlib.image.imread(one_row).shape[0]  # a second row


def test_the_curves_of_a_run_without_an_exported_encoder_yet(logged_run, tmp_path, capsys):
    from training.__main__ import main

    shutil.rmtree(logged_run / "encoder")
    with logging_kept():
        assert main(["viz", "--run", str(logged_run), "--out", str(tmp_path / "curves"), "--no-tensorboard"]) == 0
        assert main(["viz", "--run", str(logged_run), "--out", str(tmp_path / "x"), "--audio", str(tmp_path)]) == 2
    assert_pictures([str(tmp_path / "curves" / "training.png")])
    assert "no exported encoder in it" in capsys.readouterr().err

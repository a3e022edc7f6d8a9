"""Pictures: PCA, [CLS] attention over the log-mel, training curves from TensorBoard files."""
import argparse

import numpy as np
import pytest
import tensorflow as tf

from training.export import load_encoder
from training.viz import curves_picture, read_scalars, run

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def logged_run(run_dir):  # noqa: F811
    """The probe's run directory with TensorBoard scalars, written as the trainer writes them."""
    writer = tf.summary.create_file_writer(str(run_dir / "tensorboard"))
    with writer.as_default():
        for step in range(1, 6):
            tf.summary.scalar("loss/total", 1.0 / step, step=step)
            tf.summary.scalar("learning_rate", 1e-3 * step, step=step)
    writer.flush()
    return run_dir


def test_scalars_are_read_back_from_the_event_files(logged_run):
    curves = read_scalars(str(logged_run))
    assert set(curves) == {"loss/total", "learning_rate"}
    assert [step for step, _ in curves["loss/total"]] == [1, 2, 3, 4, 5]
    np.testing.assert_allclose([value for _, value in curves["loss/total"]], [1.0 / s for s in range(1, 6)], rtol=1e-6)


def test_viz_writes_every_picture(logged_run, labelled_audio, tmp_path):  # noqa: F811
    written = run(argparse.Namespace(run=str(logged_run), audio=str(labelled_audio), out=str(tmp_path)))
    names = sorted(p.split("/")[-1] for p in written)
    assert names == ["attention-high-0.png", "attention-low-0.png", "pca.png", "training.png"]
    for path in written:
        data = open(path, "rb").read()
        assert data.startswith(PNG) and len(data) > 10_000


def test_cls_attention_is_a_distribution_over_the_patch_grid(run_dir):  # noqa: F811
    encoder, _ = load_encoder(str(run_dir / "encoder"))
    attention = encoder.cls_attention(tf.random.normal([2, 256, 235, 2])).numpy()
    assert attention.shape == (2, 25, 22)
    assert np.all(attention >= 0) and np.all(attention.sum(axis=(1, 2)) <= 1.0 + 1e-5)
    assert np.all(attention.sum(axis=(1, 2)) > 0.5)  # [CLS] keeps only part of its attention to itself


def test_no_scalars_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="no TensorBoard scalars"):
        curves_picture({}, str(tmp_path / "x.png"), "empty")


def test_a_scalar_that_never_changed_gets_no_panel(tmp_path):
    import matplotlib.image

    varying = {f"loss/{name}": [(1, 1.0), (2, 0.5)] for name in ("total", "invariance", "sigreg")}
    one_row = curves_picture(varying, str(tmp_path / "varying.png"), "three panels")
    with_constant = curves_picture({**varying, "optimizer/loss_scale": [(1, 1.0), (2, 1.0)]},
                                   str(tmp_path / "constant.png"), "still three panels")
    assert matplotlib.image.imread(with_constant).shape == matplotlib.image.imread(one_row).shape
    four = curves_picture({**varying, "optimizer/grad_norm": [(1, 2.0), (2, 1.0)]}, str(tmp_path / "four.png"), "four")
    assert matplotlib.image.imread(four).shape[0] > matplotlib.image.imread(one_row).shape[0]  # a second row

"""LeJEPA loss: SIGReg against a direct NumPy computation, and its statistical behaviour.

The cross-replica property (2 replicas give the single-device gradients) is in test_train.py,
which runs it in a process with two logical CPU devices.
"""
import numpy as np
import pytest
import tensorflow as tf

from training import loss
from training.config import LossConfig

STEP = tf.constant(7, tf.int64)


def numpy_sigreg(z: np.ndarray, directions: np.ndarray, t_points=17, t_max=3.0) -> float:
    """LeJEPA's reference formula in float64, written out plainly: per view and direction,
    N · ∫ |ecf(t) − exp(−t²/2)|² · exp(−t²/2) dt over [−t_max, t_max] by the trapezoid rule on a
    symmetric grid with the same step (2·t_points − 1 points), averaged."""
    z = z.astype(np.float64)
    t = np.linspace(-t_max, t_max, 2 * t_points - 1)
    window = np.exp(-t**2 / 2)
    views, n, _ = z.shape
    values = []
    for v in range(views):
        x = z[v] @ directions.astype(np.float64)  # [N, M]
        for m in range(x.shape[1]):
            ecf = np.exp(1j * np.outer(x[:, m], t)).mean(axis=0)
            values.append(n * np.trapezoid(np.abs(ecf - window) ** 2 * window, t))
    return float(np.mean(values))


def numpy_invariance(z: np.ndarray, global_views: int) -> float:
    centre = z[:global_views].mean(0)
    return float(np.mean(np.sum((z - centre) ** 2, axis=-1)))


def test_grid_is_17_points_on_0_3_with_doubled_trapezoid_weights():
    t, w = loss.epps_pulley_grid()
    assert len(t) == 17 and t[0] == 0 and t[-1] == pytest.approx(3.0)
    dt = 3.0 / 16
    assert w[0] == pytest.approx(dt) and w[8] == pytest.approx(2 * dt * np.exp(-(t[8] ** 2) / 2), rel=1e-6)
    assert w[-1] == pytest.approx(dt * np.exp(-4.5), rel=1e-5)


@pytest.mark.parametrize("samples", ["views", "all"])
def test_sigreg_equals_the_reference_formula_in_numpy(samples):
    z = np.random.default_rng(0).normal(0.3, 1.4, size=(3, 40, 12)).astype(np.float32)
    config = LossConfig(directions=16, sigreg_samples=samples)
    directions = loss.directions(12, 16, 5, STEP).numpy()
    expected = numpy_sigreg(z if samples == "views" else z.reshape(1, 120, 12), directions)
    assert float(loss.sigreg(tf.constant(z), STEP, 5, config)) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("n", [8, 32, 256])
def test_an_isotropic_gaussian_scores_about_one_whatever_the_sample_count(n):
    # E[N·|ecf(t) − φ(t)|²] = 1 − exp(−t²) for Gaussian samples, so the statistic's mean is
    # ∫ (1 − exp(−t²)) exp(−t²/2) dt over [−3, 3] ≈ 1.06, at every N.
    z = np.random.default_rng(n).normal(size=(16, n, 32))
    value = float(loss.sigreg(tf.constant(z, tf.float32), STEP, 0, LossConfig(directions=256, sigreg_samples="views")))
    assert value == pytest.approx(1.06, rel=0.1)
    # A point mass scores about 0.4·N: collapse costs more the more samples are tested.
    point = np.repeat(z[:, :1], n, axis=1)
    assert float(loss.sigreg(tf.constant(point, tf.float32), STEP, 0, LossConfig(directions=64,
                                                                                 sigreg_samples="views"))) > 0.3 * n


def test_testing_all_views_as_one_sample_is_stronger_against_collapse():
    # Views that agree (invariance 0) on clips that all look alike: 8 views × 32 clips near one point.
    collapsed = np.random.default_rng(6).normal(size=(1, 1, 16)) + 0.01 * np.random.default_rng(7).normal(
        size=(8, 32, 16))
    per_view = float(loss.sigreg(tf.constant(collapsed, tf.float32), STEP, 0, LossConfig(sigreg_samples="views")))
    pooled = float(loss.sigreg(tf.constant(collapsed, tf.float32), STEP, 0, LossConfig(sigreg_samples="all")))
    assert pooled > 4 * per_view


def test_invariance_and_total_equal_numpy():
    z = np.random.default_rng(1).normal(size=(5, 8, 6)).astype(np.float32)
    config = LossConfig(directions=32, lambda_=0.2, invariance="sum")
    terms = loss.lejepa(tf.constant(z), 2, STEP, 0, config)
    assert float(terms["invariance"]) == pytest.approx(numpy_invariance(z, 2), rel=1e-5)
    assert float(terms["loss"]) == pytest.approx(0.8 * float(terms["invariance"]) + 0.2 * float(terms["sigreg"]),
                                                  rel=1e-6)
    same = np.repeat(z[:1], 5, axis=0)
    assert float(loss.invariance(tf.constant(same), 2)) == pytest.approx(0.0, abs=1e-6)


def test_directions_are_unit_and_depend_only_on_seed_and_step():
    a = loss.directions(32, 64, 3, STEP).numpy()
    np.testing.assert_allclose(np.linalg.norm(a, axis=0), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(a, loss.directions(32, 64, 3, STEP).numpy())
    assert not np.allclose(a, loss.directions(32, 64, 3, STEP + 1).numpy())
    assert not np.allclose(a, loss.directions(32, 64, 4, STEP).numpy())
    compiled = tf.function(lambda: loss.directions(32, 64, 3, STEP), jit_compile=True)().numpy()
    np.testing.assert_allclose(compiled, a, rtol=1e-5, atol=1e-6)
    # Spread over the sphere: the mean direction is near zero.
    assert np.abs(a.mean(axis=1)).max() < 0.1


def sig(z: np.ndarray, directions: int = 256) -> float:
    config = LossConfig(directions=directions, sigreg_samples="views")
    return float(loss.sigreg(tf.constant(z, tf.float32), STEP, 0, config))


def test_sigreg_is_small_for_standard_normal_and_large_otherwise():
    rng = np.random.default_rng(2)
    gaussian = rng.normal(size=(2, 1024, 16))
    assert sig(gaussian) < 1.5
    collapsed = np.repeat(rng.normal(size=(2, 1, 16)), 1024, axis=1)
    assert sig(collapsed) > 50
    assert sig(gaussian * 3) > 50
    assert sig(gaussian * 0.2) > 50
    assert sig(gaussian + 1.5) > 50
    # Low-rank (dimensional collapse) is caught too: random directions see the missing spread.
    low_rank = rng.normal(size=(2, 1024, 2)) @ rng.normal(size=(2, 16)) / np.sqrt(2)
    assert sig(low_rank) > 10 * sig(gaussian)


def test_sigreg_is_invariant_to_sample_order_and_finite_on_extreme_inputs():
    rng = np.random.default_rng(3)
    z = rng.normal(size=(2, 64, 8))
    shuffled = z[:, rng.permutation(64)]
    assert sig(shuffled) == pytest.approx(sig(z), rel=1e-5)
    for extreme in (np.full((2, 64, 8), 1e6), np.zeros((2, 64, 8)), rng.normal(size=(2, 64, 8)) * 1e-8):
        variable = tf.Variable(extreme, dtype=tf.float32)
        with tf.GradientTape() as tape:
            value = loss.sigreg(variable, STEP, 0, LossConfig(directions=32))
        gradient = tape.gradient(value, variable)
        assert np.isfinite(value.numpy()) and np.all(np.isfinite(gradient.numpy()))


def test_collapse_monitors():
    rng = np.random.default_rng(4)
    spread = loss.collapse_monitors(tf.constant(rng.normal(size=(2048, 16)), tf.float32))
    assert float(spread["std"]) == pytest.approx(1.0, abs=0.05)
    assert float(spread["rank"]) > 15
    collapsed = loss.collapse_monitors(tf.constant(rng.normal(size=(2048, 1)) * np.ones((1, 16)), tf.float32))
    assert float(collapsed["rank"]) < 1.1
    broken = loss.collapse_monitors(tf.constant(np.full((8, 4), np.nan), tf.float32))  # reported, not raised
    assert np.isnan(float(broken["rank"])) and np.isnan(float(broken["std"]))


def test_invariance_can_average_over_dimensions_like_the_reference_code():
    z = tf.constant(np.random.default_rng(5).normal(size=(4, 6, 8)), tf.float32)
    assert float(loss.invariance(z, 2, "mean")) == pytest.approx(float(loss.invariance(z, 2, "sum")) / 8, rel=1e-6)

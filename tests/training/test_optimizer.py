"""training.optimizer: the learning-rate schedule, AdamW with decoupled weight decay, the fp16 loss scale."""
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from training import optimizer
from training.config import ModelConfig, OptimConfig
from training.vit.model import build_models


def rates(config: OptimConfig, total_steps: int, steps=None) -> np.ndarray:
    return np.array([float(optimizer.learning_rate(s, config, total_steps))
                     for s in (range(total_steps) if steps is None else steps)])


def apply(adamw: optimizer.AdamW, gradients, learning_rate: float, finite: bool = True) -> None:
    tf.function(lambda: adamw.apply([tf.constant(g, tf.float32) for g in gradients], tf.constant(learning_rate),
                                    tf.constant(finite)))()


# --------------------------------------------------------------------------------------------
# Schedule
# --------------------------------------------------------------------------------------------


def test_learning_rate_warms_up_to_the_given_peak_then_decays_by_cosine():
    config = OptimConfig(lr=2e-3, warmup=10, min_lr=0.1)
    rates = [float(optimizer.learning_rate(s, config, total_steps=110)) for s in range(110)]
    peak = 2e-3  # --lr itself, whatever the batch
    assert rates[0] == pytest.approx(peak / 10) and rates[9] == pytest.approx(peak)
    assert rates[10] == pytest.approx(peak) and rates[60] == pytest.approx(peak * (0.1 + 0.9 * 0.5), rel=1e-4)
    assert rates[-1] == pytest.approx(peak * 0.1, rel=1e-2) and all(np.diff(rates[10:]) <= 1e-9)
    assert optimizer.warmup_steps(OptimConfig(warmup=0.1), 1000) == 100


def test_warm_up_is_linear_up_to_the_peak_lr():
    config = OptimConfig(lr=1e-3, warmup=0.25, min_lr=0.01)
    assert optimizer.warmup_steps(config, 40) == 10
    warm = rates(config, 40, range(10))
    np.testing.assert_allclose(warm, 1e-3 * np.arange(1, 11) / 10, rtol=1e-6)  # peak · (step + 1) / warm-up
    np.testing.assert_allclose(np.diff(warm), 1e-4, rtol=1e-4)  # equal increments: a straight line
    assert warm.max() == pytest.approx(1e-3) and rates(config, 40).max() == pytest.approx(1e-3)  # never above --lr


def test_cosine_reaches_the_floor_at_total_steps_and_stays_there():
    peak, floor, total, warmup = 4e-3, 0.01 * 4e-3, 60, 6
    config = OptimConfig(lr=peak, warmup=warmup, min_lr=0.01)
    assert float(optimizer.learning_rate(total, config, total)) == pytest.approx(floor, rel=1e-6)
    np.testing.assert_allclose(rates(config, total, range(total, total + 5)), floor, rtol=1e-6)  # more steps: floor
    # The last step trained (total - 1) is one cosine step above the floor, no more.
    last = float(optimizer.learning_rate(total - 1, config, total))
    assert floor < last <= floor + (peak - floor) * 0.5 * (1 - math.cos(math.pi / (total - warmup))) * 1.0001
    decay = rates(config, total, range(warmup, total))
    expected = floor + (peak - floor) * 0.5 * (1 + np.cos(np.pi * np.arange(total - warmup) / (total - warmup)))
    np.testing.assert_allclose(decay, expected, rtol=1e-5)


def test_warmup_is_a_fraction_below_1_and_a_step_count_from_1():
    assert optimizer.warmup_steps(OptimConfig(warmup=0.1), 1000) == 100
    assert optimizer.warmup_steps(OptimConfig(warmup=0.1), 15) == 2  # rounded
    assert optimizer.warmup_steps(OptimConfig(warmup=1), 1000) == 1
    assert optimizer.warmup_steps(OptimConfig(warmup=25), 1000) == 25
    no_warmup = OptimConfig(lr=1e-3, warmup=0, min_lr=0.01)
    assert float(optimizer.learning_rate(0, no_warmup, 100)) == pytest.approx(1e-3)  # the peak from the first step


def test_learning_rate_of_the_step_variable_in_a_tf_function_equals_the_eager_one():
    config = OptimConfig(lr=1e-3, warmup=10, min_lr=0.01)
    step = tf.Variable(0, dtype=tf.int64)
    compiled = tf.function(lambda: optimizer.learning_rate(step, config, 100))
    for value in (0, 5, 10, 57, 99):
        step.assign(value)
        assert float(compiled()) == pytest.approx(float(optimizer.learning_rate(value, config, 100)), rel=1e-7)


# --------------------------------------------------------------------------------------------
# AdamW
# --------------------------------------------------------------------------------------------


def test_adamw_matches_numpy_and_skips_non_finite_updates():
    config = OptimConfig(weight_decay=0.1)
    kernel = tf.Variable(np.ones((2, 2), np.float32), name="kernel")
    embedding = tf.Variable(np.ones((2, 2), np.float32), name="frequency_embedding")
    bias = tf.Variable(np.ones(2, np.float32), name="bias")
    adamw = optimizer.AdamW([kernel, embedding, bias], config)
    assert adamw.decay == [True, False, False]
    gradient = np.array([[0.5, -1.0], [2.0, 0.0]], np.float32)
    m = v = np.zeros((2, 2))
    expected_kernel, expected_embedding = np.ones((2, 2)), np.ones((2, 2))
    for t in (1, 2):
        tf.function(lambda: adamw.apply([tf.constant(gradient)] * 2 + [tf.constant(gradient[0])], tf.constant(0.01),
                                        tf.constant(True)))()
        m = 0.9 * m + 0.1 * gradient
        v = 0.999 * v + 0.001 * gradient**2
        update = (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
        expected_kernel = expected_kernel - 0.01 * (update + 0.1 * expected_kernel)
        expected_embedding = expected_embedding - 0.01 * update
    np.testing.assert_allclose(kernel.numpy(), expected_kernel, rtol=1e-5)
    np.testing.assert_allclose(embedding.numpy(), expected_embedding, rtol=1e-5)
    snapshot = [kernel.numpy(), adamw.m[0].numpy(), int(adamw.updates.numpy())]
    tf.function(lambda: adamw.apply([tf.constant(gradient * np.nan)] * 2 + [tf.constant(gradient[0])],
                                    tf.constant(0.01), tf.constant(False)))()
    np.testing.assert_array_equal(kernel.numpy(), snapshot[0])
    np.testing.assert_array_equal(adamw.m[0].numpy(), snapshot[1])
    assert int(adamw.updates.numpy()) == snapshot[2]


def test_weight_decay_is_0_05_and_decoupled_from_the_gradient():
    config = OptimConfig()
    assert config.weight_decay == 0.05
    kernel = tf.Variable(np.full((3, 2), 2.0, np.float32), name="kernel")
    bias = tf.Variable(np.full(2, 2.0, np.float32), name="bias")
    adamw = optimizer.AdamW([kernel, bias], config)
    # No gradient: Adam's step is 0, so all that moves a kernel is the decay, w ← w − lr · 0.05 · w
    # (an L2 penalty added to the gradient would instead be normalised by Adam into a step of ~lr).
    for _ in range(3):
        apply(adamw, [np.zeros((3, 2)), np.zeros(2)], 0.1)
    np.testing.assert_allclose(kernel.numpy(), 2.0 * (1 - 0.1 * 0.05) ** 3, rtol=1e-6)
    np.testing.assert_array_equal(bias.numpy(), 2.0)  # not decayed
    np.testing.assert_array_equal(adamw.m[0].numpy(), 0.0)  # the decay never enters the moments
    np.testing.assert_array_equal(adamw.v[0].numpy(), 0.0)
    # With a gradient, the decay adds lr · 0.05 · w whatever the gradient's scale.
    moved = {}
    for scale in (1.0, 1000.0):
        kernel.assign(np.full((3, 2), 2.0, np.float32))
        fresh = optimizer.AdamW([kernel], config)
        apply(fresh, [np.full((3, 2), scale)], 0.1)
        moved[scale] = 2.0 - kernel.numpy()
    np.testing.assert_allclose(moved[1.0], 0.1 * (1.0 + 0.05 * 2.0), rtol=1e-5)  # Adam's first step is ±lr
    np.testing.assert_allclose(moved[1000.0], moved[1.0], rtol=1e-5)


def test_only_kernels_decay_in_the_real_model():
    keras.utils.set_random_seed(0)
    encoder, projector = build_models(ModelConfig(size="tiny", depth=1))
    variables = encoder.trainable_variables + projector.trainable_variables
    adamw = optimizer.AdamW(variables, OptimConfig())
    decayed = {v.path for v, decay in zip(variables, adamw.decay) if decay}
    kept = {v.path for v, decay in zip(variables, adamw.decay) if not decay}
    assert all(path.endswith("/kernel") for path in decayed)
    assert {"encoder/patch_embed/kernel", "encoder/block0/attention/qkv/kernel", "encoder/block0/mlp1/kernel",
            "projector/dense3/kernel"} <= decayed
    assert not any(path.endswith(("/bias", "/gamma", "/beta")) for path in decayed)  # biases and norms
    assert {"encoder/frequency_embedding", "encoder/cls_embedding", "encoder/block0/attention/time_bias_embedding",
            "encoder/block0/attention/cls_bias_embedding"} <= kept
    assert len(adamw.params) == len(adamw.m) == len(adamw.v) == len(variables)
    assert all(m.shape == v.shape for m, v in zip(adamw.m, variables))


# --------------------------------------------------------------------------------------------
# Loss scale
# --------------------------------------------------------------------------------------------


def test_fp16_loss_scale_halves_on_overflow_and_grows_after_good_steps():
    scale = optimizer.LossScale(enabled=True, initial=1024.0, period=3)
    update = tf.function(lambda finite: scale.update(finite))
    update(tf.constant(False))
    assert float(scale.scale.numpy()) == 512.0
    for _ in range(3):
        update(tf.constant(True))
    assert float(scale.scale.numpy()) == 1024.0 and int(scale.good_steps.numpy()) == 0
    assert float(optimizer.LossScale(enabled=False).scale.numpy()) == 1.0


def test_loss_scale_never_falls_below_1_and_an_overflow_restarts_the_count():
    scale = optimizer.LossScale(enabled=True, initial=2.0, period=3)
    update = tf.function(lambda finite: scale.update(finite))
    for _ in range(3):
        update(tf.constant(False))
    assert float(scale.scale.numpy()) == 1.0
    update(tf.constant(True))
    update(tf.constant(True))
    update(tf.constant(False))  # two good steps, then an overflow: the count starts again
    assert int(scale.good_steps.numpy()) == 0
    for _ in range(2):
        update(tf.constant(True))
    assert float(scale.scale.numpy()) == 1.0  # only 2 good steps since the overflow
    disabled = optimizer.LossScale(enabled=False)
    tf.function(lambda: disabled.update(tf.constant(False)))()
    assert float(disabled.scale.numpy()) == 1.0 and int(disabled.good_steps.numpy()) == 0

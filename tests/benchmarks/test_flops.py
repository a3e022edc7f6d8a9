"""The FLOP counter reads XLA's program right: exact on known ops, and equal to the formula on a model."""
import pytest
import tensorflow as tf

from benchmarks.flops import analytic_flops, counted_flops, hlo_flops
from training.config import Config


def optimised_hlo(function, *specs) -> str:
    return tf.function(function, jit_compile=True).experimental_get_compiler_ir(*specs)(stage="optimized_hlo")


def test_dot_and_convolution_are_counted_exactly():
    def forward(a, b, image, kernel):
        # 2·4·8·16 for the matmul; 2·(1·3·3·5 outputs)·(2·2·3 taps) for the convolution.
        return tf.linalg.matmul(a, b), tf.nn.conv2d(image, kernel, strides=2, padding="VALID")

    specs = (tf.TensorSpec([4, 8]), tf.TensorSpec([8, 16]), tf.TensorSpec([1, 6, 6, 3]), tf.TensorSpec([2, 2, 3, 5]))
    assert hlo_flops(optimised_hlo(forward, *specs)) == 2 * 4 * 8 * 16 + 2 * (3 * 3 * 5) * (2 * 2 * 3)


def test_a_gradient_counts_only_what_xla_keeps():
    weights = tf.Variable(tf.ones([8, 16]))

    def gradient(a):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.linalg.matmul(a, weights))
        return loss, tape.gradient(loss, weights)  # the loss is an output: XLA keeps the forward

    # Forward a·W; backward only aᵀ·g (a needs no gradient, and XLA drops what nothing uses).
    assert hlo_flops(optimised_hlo(gradient, tf.TensorSpec([4, 8]))) == 2 * 4 * 8 * 16 + 2 * 8 * 16 * 4


def test_model_count_agrees_with_the_formula():
    # cls+mean: the projector's input is twice the width, which the formula must follow.
    config = Config().replace(**{
        "model.size": "tiny", "model.depth": 1, "model.pool": "cls+mean", "views.global_views": 1,
        "views.local_views": 1, "views.global_frames": 56, "views.local_frames": 36, "loss.directions": 32})
    counted, analytic = counted_flops(config), analytic_flops(config)
    assert counted["forward_backward"] == pytest.approx(analytic["forward_backward"], rel=0.1)
    assert counted["forward"] == pytest.approx(analytic["forward"], rel=0.1)
    assert 1.5 < counted["backward"] / counted["forward"] < 2.1  # backward ≈ 2 × forward

"""Counter-based random numbers that are identical eagerly, in a tf.function and under XLA.

TensorFlow's stateless ops (``tf.random.stateless_uniform`` even with ``alg="philox"``) give
*other* numbers under XLA than in the plain kernels, so a compiled training step would draw other
views and SIGReg directions than the same code run eagerly (and tests comparing the two would
fail for the wrong reason). Here a number is a hash of (seed, element index) in plain int64
arithmetic, which every backend evaluates identically.

A seed is a ``[2]`` int64 tensor of two 32-bit halves. ``fold_in`` derives independent seeds
(per step, per replica, per augmentation) the way JAX does.
"""
from __future__ import annotations

import math

import tensorflow as tf

_MASK = 0xFFFFFFFF


def _hash(x: tf.Tensor) -> tf.Tensor:
    """lowbias32 (C. Wellons): a bijection of 32-bit integers with good avalanche; int64 holding uint32."""
    x = tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, 16))
    x = (x * 0x7FEB352D) & _MASK
    x = tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, 15))
    x = (x * 0x846CA68B) & _MASK
    return tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, 16))


def seed(*values: int | tf.Tensor) -> tf.Tensor:
    """A seed from integers (Python or scalar tensors), e.g. ``seed(run_seed, step)``."""
    result = tf.constant([0x243F6A88, 0x85A308D3], tf.int64)
    for value in values:
        result = fold_in(result, value)
    return result


def fold_in(key: tf.Tensor, data: int | tf.Tensor) -> tf.Tensor:
    """A new seed from a seed and a (64-bit) integer."""
    return _fold_in(tf.cast(key, tf.int64), tf.cast(data, tf.int64))


# The two hashing functions are traced once per process and called as one op each. Written out
# inline, a training step's views and SIGReg directions (about 40 seeds and 30 draws) cost some
# 3 000 graph ops, which took seconds to build and to optimise before the first step.
_SEED = tf.TensorSpec([2], tf.int64)


@tf.function(input_signature=[_SEED, tf.TensorSpec([], tf.int64)], autograph=False)
def _fold_in(key: tf.Tensor, data: tf.Tensor) -> tf.Tensor:
    low, high = data & _MASK, tf.bitwise.right_shift(data, 32) & _MASK
    a = _hash(tf.bitwise.bitwise_xor(key[0], _hash((low + 0x9E3779B9) & _MASK)))
    b = _hash(tf.bitwise.bitwise_xor(key[1], _hash(tf.bitwise.bitwise_xor(high, a))))
    b = _hash(tf.bitwise.bitwise_xor(b, tf.constant(0x85EBCA6B, tf.int64)))
    return tf.stack([a, b])


@tf.function(input_signature=[_SEED, tf.TensorSpec([None], tf.int64)], autograph=False)
def _hash_indices(key: tf.Tensor, index: tf.Tensor) -> tf.Tensor:
    h = _hash(tf.bitwise.bitwise_xor(index, key[0]))
    return _hash((h + key[1]) & _MASK)


def bits(key: tf.Tensor, shape: list[int] | tf.Tensor) -> tf.Tensor:
    """Uniform 32-bit integers (in int64) of a shape (a list of ints, or a shape tensor)."""
    key = tf.cast(key, tf.int64)
    if isinstance(shape, (list, tuple)) and all(isinstance(d, int) for d in shape):
        count = math.prod(shape)
    else:
        count = tf.reduce_prod(tf.cast(shape, tf.int64))
    return tf.reshape(_hash_indices(key, tf.range(count, dtype=tf.int64)), shape)


def uniform(key: tf.Tensor, shape: list[int], low: float | tf.Tensor = 0.0, high: float | tf.Tensor = 1.0) -> tf.Tensor:
    """float32 uniform in (low, high) (never exactly low: safe to take a log of)."""
    unit = (tf.cast(tf.bitwise.right_shift(bits(key, shape), 8), tf.float32) + 0.5) * (1.0 / (1 << 24))
    return low + (high - low) * unit


def normal(key: tf.Tensor, shape: list[int]) -> tf.Tensor:
    """float32 standard normal (Box–Muller)."""
    u1 = uniform(fold_in(key, 1), shape)
    u2 = uniform(fold_in(key, 2), shape)
    return tf.sqrt(-2.0 * tf.math.log(u1)) * tf.cos(2.0 * math.pi * u2)

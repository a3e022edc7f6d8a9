"""training.rng: counter-based random numbers, a pure function of (seed, index).

What the trainer relies on: the same seed gives the same numbers eagerly, in a tf.function and
under XLA; other steps, replicas and salts give other, unrelated numbers; a resumed run (a fresh
process at step k) draws exactly what an uninterrupted one drew at step k.
"""
import math

import numpy as np
import pytest
import tensorflow as tf

from training import rng

# The first draws of seed(0, 7): a resumed run (another process, another day) must draw these.
# A change of the hash changes every run's views and SIGReg directions, which this makes visible.
SEED_0_7 = [1128501099, 3056093271]


def as_list(tensor) -> list:
    return tensor.numpy().tolist()


def test_a_seed_is_two_32_bit_halves_in_int64():
    for key in (rng.seed(), rng.seed(0), rng.seed(123, 2**40 + 5), rng.fold_in(rng.seed(1), -1)):
        assert key.dtype == tf.int64 and key.shape == (2,)
        assert all(0 <= half < 2**32 for half in as_list(key))


def test_same_seed_same_stream_and_no_hidden_state():
    first = as_list(rng.bits(rng.seed(0, 7), [4]))
    rng.uniform(rng.seed(5), [100])  # draws in between change nothing: there is no generator state
    rng.normal(rng.seed(0, 6), [10])
    assert as_list(rng.bits(rng.seed(0, 7), [4])) == first
    assert first[:2] == SEED_0_7


def test_a_resumed_run_draws_what_an_uninterrupted_one_did_at_that_step():
    run_seed, replica = 3, 1
    uninterrupted = [rng.uniform(rng.seed(run_seed, step, replica), [8]).numpy() for step in range(6)]
    # After a restart the step counter comes back from the checkpoint as an int64 tensor.
    resumed = [rng.uniform(rng.seed(tf.constant(run_seed), tf.Variable(step, dtype=tf.int64), replica), [8]).numpy()
               for step in range(4, 6)]
    np.testing.assert_array_equal(np.stack(resumed), np.stack(uninterrupted[4:]))


def test_python_ints_and_scalar_tensors_give_the_same_seed():
    assert as_list(rng.seed(7, 11)) == as_list(rng.seed(tf.constant(7, tf.int32), tf.constant(11, tf.int64)))
    assert as_list(rng.seed(7, 11)) == as_list(rng.fold_in(rng.seed(7), 11))  # seed(a, b) is fold_in(seed(a), b)


def test_steps_replicas_and_salts_give_different_unrelated_streams():
    keys = {"step 0": rng.seed(0, 0, 0), "step 1": rng.seed(0, 1, 0), "replica 1": rng.seed(0, 0, 1),
            "run seed 1": rng.seed(1, 0, 0), "salt 1": rng.fold_in(rng.seed(0, 0, 0), 1),
            "salt 2": rng.fold_in(rng.seed(0, 0, 0), 2), "high 32 bits": rng.seed(0, 2**32, 0)}
    streams = {name: rng.uniform(key, [4096]).numpy() for name, key in keys.items()}
    names = list(streams)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert np.mean(streams[a] == streams[b]) < 0.01, (a, b)
            assert abs(np.corrcoef(streams[a], streams[b])[0, 1]) < 0.1, (a, b)
    # Order matters: (step 1, replica 0) is not (step 0, replica 1).
    assert as_list(rng.seed(0, 1, 0)) != as_list(rng.seed(0, 0, 1))


def test_fold_in_uses_all_64_bits_of_the_data():
    base = rng.seed(0)
    folded = {tuple(as_list(rng.fold_in(base, data))) for data in (1, 1 + 2**32, 1 + 2**40, 1 + 2**62, -1)}
    assert len(folded) == 5


@pytest.mark.parametrize("mode", ["tf.function", "XLA"])
def test_the_same_numbers_eagerly_in_a_tf_function_and_under_xla(mode):
    def draw(run_seed, step):
        key = rng.seed(run_seed, step)
        return (rng.bits(key, [3, 5]), rng.uniform(rng.fold_in(key, 1), [257]),
                rng.uniform(rng.fold_in(key, 1), [257], -2.0, 3.0), rng.normal(key, [257]))

    eager = draw(tf.constant(4, tf.int64), tf.constant(9, tf.int64))
    compiled = tf.function(draw, jit_compile=(mode == "XLA"))(tf.constant(4, tf.int64), tf.constant(9, tf.int64))
    # The hash and the unit interval are exact on every backend ...
    np.testing.assert_array_equal(compiled[0].numpy(), eager[0].numpy())
    np.testing.assert_array_equal(compiled[1].numpy(), eager[1].numpy())
    # ... the float arithmetic after them (low + (high - low)·u, Box-Muller's log and cos) may be
    # fused or rounded otherwise by XLA: the last bit or two of a float32, never more.
    np.testing.assert_allclose(compiled[2].numpy(), eager[2].numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(compiled[3].numpy(), eager[3].numpy(), rtol=1e-6, atol=1e-6)


def test_bits_are_uniform_32_bit_integers_of_the_shape_asked():
    values = rng.bits(rng.seed(1), [64, 1024])
    assert values.dtype == tf.int64 and values.shape == (64, 1024)
    values = values.numpy()
    assert values.min() >= 0 and values.max() < 2**32
    assert len(np.unique(values)) > 0.99 * values.size
    for bit in (0, 15, 31):  # every bit is a fair coin
        assert np.mean((values >> bit) & 1) == pytest.approx(0.5, abs=0.01)
    # A shape given as a tensor (known only at run time) gives the same numbers.
    from_tensor = rng.bits(rng.seed(1), tf.constant([64, 1024]))
    np.testing.assert_array_equal(from_tensor.numpy(), values)


def test_uniform_lies_strictly_inside_its_range_and_is_flat():
    unit = rng.uniform(rng.seed(2), [100_000]).numpy()
    assert unit.dtype == np.float32 and unit.shape == (100_000,)
    assert 0.0 < unit.min() and unit.max() < 1.0  # never exactly low: a log of it is finite
    assert np.all(np.isfinite(np.log(unit)))
    counts, _ = np.histogram(unit, bins=10, range=(0.0, 1.0))
    assert counts.min() > 9_500 and counts.max() < 10_500
    scaled = rng.uniform(rng.seed(2), [100_000], tf.constant(-3.0), 5.0).numpy()
    np.testing.assert_allclose(scaled, -3.0 + 8.0 * unit, rtol=1e-6, atol=1e-6)  # the same draws, moved
    assert -3.0 < scaled.min() and scaled.max() < 5.0


def test_normal_has_mean_0_and_variance_1():
    values = rng.normal(rng.seed(3), [200, 1000]).numpy()
    assert values.dtype == np.float32 and values.shape == (200, 1000)
    assert np.all(np.isfinite(values))
    assert values.mean() == pytest.approx(0.0, abs=0.01)
    assert values.std() == pytest.approx(1.0, abs=0.01)
    # Tails of a Gaussian: about 4.55 % beyond two standard deviations.
    assert np.mean(np.abs(values) > 2.0) == pytest.approx(math.erfc(2 / math.sqrt(2)), abs=0.003)

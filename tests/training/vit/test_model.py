"""The encoder: sizes, and the positional scheme (absolute frequency, relative time, [CLS] biases)."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from training.config import ModelConfig
from training.vit import MODEL_SIZES
from training.vit.model import build_models, count_parameters, grid_size, time_offsets

TINY = ModelConfig(size="tiny")


@pytest.fixture(scope="module")
def tiny():
    keras.utils.set_random_seed(0)
    return build_models(TINY)


def randomise_positions(encoder, seed=0):
    rng = np.random.default_rng(seed)
    for block in encoder.blocks:
        block.attention.time_bias.assign(rng.normal(size=block.attention.time_bias.shape))
        block.attention.cls_bias.assign(rng.normal(size=block.attention.cls_bias.shape))


def test_sizes():
    encoder, projector = build_models(TINY)
    assert count_parameters(encoder, projector) < 1_000_000
    assert MODEL_SIZES["base"]["width"] == 768 and MODEL_SIZES["base"]["depth"] == 12
    assert MODEL_SIZES["base"]["heads"] == 12
    small = build_models(ModelConfig(size="small"))
    assert 20e6 < count_parameters(small[0]) < 24e6  # ViT-S/16 is 22 M
    assert ModelConfig(size="tiny", width=96, heads=3).width == 96
    with pytest.raises(ValueError, match="multiple of --heads"):
        ModelConfig(size="tiny", width=100, heads=3)


def test_patch_grid_and_output_shapes(tiny):
    encoder, projector = tiny
    assert grid_size(256, 226) == (25, 22) and grid_size(256, 66) == (25, 6)
    for frames in (96, 36):
        x = tf.random.normal([3, 256, frames, 2])
        assert encoder.tokens(x).shape == (3, 25, (frames - 16) // 10 + 1, 64)
        representation = encoder(x)  # the default cls+mean: [CLS] and the mean patch, 2 × 64
        assert representation.shape == (3, 128) and projector(representation).shape == (3, 64)
    cls_only, _ = build_models(ModelConfig(size="tiny", pool="cls"))
    assert cls_only(tf.random.normal([2, 256, 36, 2])).shape == (2, 64)


def test_patches_are_16x16_with_stride_10(tiny):
    encoder, _ = tiny
    assert encoder.patch_embed.kernel.shape == (16, 16, 2, 64)
    x = np.zeros((1, 256, 36, 2), np.float32)
    x[0, 20:25, 0] = 1.0  # bands 20..24 at frame 0: inside the patches of rows 1 and 2 only (10..25, 20..35)
    base = encoder.tokens(tf.zeros_like(x)).numpy()
    changed = np.abs(encoder.tokens(x).numpy() - base).max(axis=-1)[0]  # [rows, columns]
    assert set(zip(*np.nonzero(changed))) == {(1, 0), (2, 0)}


def test_time_bias_depends_only_on_time_offset_and_head(tiny):
    encoder, _ = tiny
    randomise_positions(encoder)
    attention = encoder.blocks[0].attention
    rows, columns = 3, 5
    bias = attention.position_bias(rows, columns).numpy()  # [H, 1 + P, 1 + P]
    table, cls = attention.time_bias.numpy(), attention.cls_bias.numpy()
    max_time = TINY.max_time_patches
    assert bias.shape == (2, 16, 16)
    for i in range(rows * columns):
        for j in range(rows * columns):
            offset = i % columns - j % columns
            np.testing.assert_allclose(bias[:, 1 + i, 1 + j], table[:, offset + max_time - 1], rtol=1e-6)
    # [CLS] has its own biases: attention from it (its row), to it (its column).
    np.testing.assert_allclose(bias[:, 0, :], np.repeat(cls[:, :1], 16, axis=1), rtol=1e-6)
    np.testing.assert_allclose(bias[:, 1:, 0], np.repeat(cls[:, 1:], 15, axis=1), rtol=1e-6)
    assert not np.allclose(bias[0], bias[1])  # per head
    assert time_offsets(1, 3, 2).tolist() == [[1, 0, 0], [2, 1, 0], [2, 2, 1]]  # clipped beyond the table


def test_frequency_embedding_is_shared_by_a_row_whatever_its_time(tiny):
    encoder, _ = tiny
    tokens = encoder.tokens(tf.zeros([1, 256, 96, 2])).numpy()[0]  # constant input: conv gives its bias
    np.testing.assert_allclose(tokens, np.broadcast_to(tokens[:, :1], tokens.shape), rtol=1e-6)
    expected = encoder.frequency_embedding.numpy() + encoder.patch_embed.bias.numpy()
    np.testing.assert_allclose(tokens[:, 0], expected, rtol=1e-5, atol=1e-6)
    assert np.abs(np.diff(tokens[:, 0], axis=0)).max() > 1e-3  # rows differ
    # A patch mask zeroes the token before the embedding is added: only the row's position remains.
    mask = np.zeros((1, 25 * 9), bool)  # (96 - 16) / 10 + 1 = 9 time columns
    mask[0, [3, 9 + 5]] = True
    x = tf.random.normal([1, 256, 96, 2])
    masked = encoder.tokens(x, tf.constant(mask)).numpy()[0]
    np.testing.assert_allclose(masked[0, 3], encoder.frequency_embedding.numpy()[0], rtol=1e-6)
    np.testing.assert_allclose(masked[1, 5], encoder.frequency_embedding.numpy()[1], rtol=1e-6)
    np.testing.assert_allclose(masked[2], encoder.tokens(x).numpy()[0, 2], rtol=1e-6)


def test_nothing_depends_on_absolute_time(tiny):
    encoder, _ = tiny
    # Only one variable has a time axis, the relative table; one set of weights serves any length.
    time_shaped = [v.path for v in encoder.variables if "time_bias" in v.path]
    assert len(time_shaped) == TINY.depth
    assert all(v.shape[-1] == 2 * TINY.max_time_patches - 1 for v in encoder.variables if "time_bias" in v.path)
    before = [v.shape for v in encoder.variables]
    encoder(tf.zeros([1, 256, 226, 2]))
    encoder(tf.zeros([1, 256, 36, 2]))
    assert [v.shape for v in encoder.variables] == before
    tokens = tf.random.normal([2, 25, 7, 64])
    # Without relative bias, permuting time columns permutes the outputs and leaves [CLS] unchanged.
    for block in encoder.blocks:
        block.attention.time_bias.assign(tf.zeros_like(block.attention.time_bias))
    permutation = np.array([4, 0, 6, 2, 1, 5, 3])
    cls, patches = encoder.transform(tokens)
    cls_p, patches_p = encoder.transform(tf.gather(tokens, permutation, axis=2))
    np.testing.assert_allclose(cls_p, cls, atol=1e-5)
    grid = patches.numpy().reshape(2, 25, 7, 64)
    np.testing.assert_allclose(patches_p.numpy().reshape(2, 25, 7, 64), grid[:, :, permutation], atol=1e-5)
    # With it, reversing time is the same as mirroring the table (offset o → −o): time enters only
    # through offsets.
    randomise_positions(encoder, seed=1)
    cls, patches = encoder.transform(tokens)
    for block in encoder.blocks:
        block.attention.time_bias.assign(block.attention.time_bias[:, ::-1])
    cls_r, patches_r = encoder.transform(tokens[:, :, ::-1])
    np.testing.assert_allclose(cls_r, cls, atol=1e-5)
    np.testing.assert_allclose(patches_r.numpy().reshape(2, 25, 7, 64)[:, :, ::-1],
                               patches.numpy().reshape(2, 25, 7, 64), atol=1e-5)


def test_time_bias_acts_on_the_logits_before_the_softmax():
    # One block; a bias of −1e9 for every non-zero time offset and for [CLS] keys leaves each patch
    # attending only to patches in its own time column, which only an additive bias on the logits
    # (before the softmax) can do.
    encoder, _ = build_models(ModelConfig(size="tiny", depth=1))
    attention = encoder.blocks[0].attention
    table = np.full(attention.time_bias.shape, -1e9, np.float32)
    table[:, TINY.max_time_patches - 1] = 0.0
    attention.time_bias.assign(table)
    attention.cls_bias.assign([[0.0, -1e9]] * TINY.heads)
    tokens = tf.random.normal([1, 25, 5, 64]).numpy()
    _, before = encoder.transform(tokens)
    tokens[0, 7, 3] += np.linspace(-3, 3, 64)  # change one patch at time column 3 (not by a constant: LN)
    _, after = encoder.transform(tokens)
    changed = np.abs(after.numpy() - before.numpy()).max(axis=-1).reshape(25, 5)
    assert changed[:, 3].min() > 1e-4 and changed[:, [0, 1, 2, 4]].max() < 1e-6


def test_runs_in_mixed_bfloat16():
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        encoder, projector = build_models(TINY)
        z = projector(encoder(tf.random.normal([2, 256, 36, 2])))
    finally:
        keras.config.set_dtype_policy("float32")
    assert z.dtype == tf.bfloat16 and np.all(np.isfinite(tf.cast(z, tf.float32).numpy()))
    assert all(v.dtype == "float32" for v in encoder.variables)

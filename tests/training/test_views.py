"""Each augmentation does what it says, eagerly and inside a compiled (XLA) function."""
import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from training import views
from training.config import GLOBAL_AUGMENT, LOCAL_AUGMENT, AugmentConfig, ViewConfig

MELS, FRAMES = 256, 235
NONE = AugmentConfig()


@pytest.fixture(params=["eager", "compiled"])
def run(request):
    """Call a function eagerly, or inside tf.function(jit_compile=True)."""
    def call(function, *args):
        if request.param == "compiled":
            function = tf.function(function, jit_compile=True)
        result = function(*args)
        return tf.nest.map_structure(lambda t: None if t is None else t.numpy(), result)
    return call


def noise_batch(batch=4, frames=FRAMES, seed=0) -> tf.Tensor:
    return tf.constant(np.random.default_rng(seed).normal(-40, 10, size=(batch, MELS, frames, 2)), tf.float32)


def identity_stats():
    return tf.zeros([MELS]), tf.ones([MELS])


def one_kind(x, augment, frames=66, crop=(0.2, 0.4), count=3, seed=11):
    mean, std = identity_stats()
    return lambda: views.make_views(x, mean, std, views.rng.seed(seed), count, frames, crop, augment)


def test_crops_have_the_configured_frame_counts(run):
    x = noise_batch()
    config = ViewConfig(global_views=2, local_views=3, global_frames=96, local_frames=36)
    mean, std = identity_stats()
    global_, local = run(lambda: views.all_views(x, mean, std, views.rng.seed(1), config))
    assert global_.x.shape == (2 * 4, MELS, 96, 2) and global_.token_mask is None
    assert local.x.shape == (3 * 4, MELS, 36, 2)
    assert local.token_mask.shape == (3 * 4, 25 * 3)  # 25 frequency rows × (36 - 16) / 10 + 1 time columns
    assert local.token_mask.dtype == bool


def test_crop_covers_the_configured_fraction(run):
    # A ramp in time: value = frame index. A crop of c·frames resampled to F frames is a ramp of
    # slope c·frames/F starting inside the clip.
    ramp = tf.broadcast_to(tf.range(FRAMES, dtype=tf.float32)[None, None, :, None], (8, MELS, FRAMES, 2))
    x = run(one_kind(ramp, NONE, frames=56, crop=(0.3, 0.3), count=1))[0]
    slope = np.diff(x[:, 0, :, 0], axis=1)
    np.testing.assert_allclose(slope, 0.3 * FRAMES / 56, rtol=1e-4)
    assert x.min() >= 0 and x.max() <= FRAMES - 1
    starts = x[:, 0, 0, 0]
    assert len(np.unique(np.round(starts, 3))) == 8  # per-example random start


def test_time_stretch_changes_the_rate_within_its_range(run):
    ramp = tf.broadcast_to(tf.range(FRAMES, dtype=tf.float32)[None, None, :, None], (16, MELS, FRAMES, 2))
    x = run(one_kind(ramp, AugmentConfig(time_stretch=0.25), frames=56, crop=(0.3, 0.3), count=1))[0]
    rate = np.diff(x[:, 0, :, 0], axis=1).mean(axis=1) / (0.3 * FRAMES / 56)
    assert rate.min() >= 1 / 1.25 - 1e-4 and rate.max() <= 1.25 + 1e-4
    assert rate.max() - rate.min() > 0.1  # per example
    # The op itself: a crop of `length` frames is played at length / frames per output frame.
    out = run(views.crop_resample, ramp[:1], tf.constant([10.0]), tf.constant([30.0]), 16)
    np.testing.assert_allclose(np.diff(out[0, 0, :, 0]), 30 / 16, rtol=1e-5)


def test_crops_of_several_views_are_view_major(run):
    # Clip b is a ramp offset by 1000·b; 3 crops of 2 clips: row v·2 + b must come from clip b.
    ramps = (tf.range(FRAMES, dtype=tf.float32)[None, None, :, None] + 1000.0 * tf.range(2.0)[:, None, None, None])
    ramps = tf.broadcast_to(ramps, (2, 4, FRAMES, 2))
    start = tf.constant([0.0, 10.0, 20.0, 30.0, 40.0, 50.0])
    out = run(views.crop_resample, ramps, start, tf.fill([6], 16.0), 16)
    assert out.shape == (6, 4, 16, 2)
    np.testing.assert_allclose(out[:, 0, 0, 0], 1000.0 * np.array([0, 1, 0, 1, 0, 1]) + start.numpy(), atol=1e-4)


def test_volume_moves_the_mean_by_the_offset(run):
    x = noise_batch()
    gain = tf.constant([-6.0, 0.0, 2.5, 6.0])
    out = run(views.add_volume, x, gain)
    np.testing.assert_allclose(out.mean(axis=(1, 2, 3)) - x.numpy().mean(axis=(1, 2, 3)), gain, atol=1e-3)
    # In a view: the same seed with and without volume differs by one constant per example, in range.
    plain = run(one_kind(x, NONE))[0]
    louder = run(one_kind(x, AugmentConfig(volume_db=6.0)))[0]
    offset = (louder - plain).reshape(len(plain), -1)
    np.testing.assert_allclose(offset, offset[:, :1] * np.ones_like(offset), atol=1e-3)
    assert np.abs(offset[:, 0]).max() <= 6.0 and np.ptp(offset[:, 0]) > 0.5


def test_channel_drop_makes_the_channels_equal(run):
    x = noise_batch()
    out = run(views.drop_channel, x, tf.constant([0, 1, 2, 3]))
    np.testing.assert_array_equal(out[0], x[0])
    np.testing.assert_array_equal(out[1, ..., 0], x[1, ..., 1])
    np.testing.assert_array_equal(out[2, ..., 1], x[2, ..., 0])
    np.testing.assert_allclose(out[3, ..., 0], (x[3, ..., 0] + x[3, ..., 1]) / 2, rtol=1e-6)
    for i in (1, 2, 3):
        np.testing.assert_array_equal(out[i, ..., 0], out[i, ..., 1])
    dropped = run(one_kind(x, AugmentConfig(channel_drop=1.0)))[0]
    np.testing.assert_array_equal(dropped[..., 0], dropped[..., 1])
    kept = run(one_kind(x, NONE))[0]
    assert np.all(np.abs(kept[..., 0] - kept[..., 1]).max(axis=(1, 2)) > 1)  # untouched views keep both


def test_frequency_mask_blanks_a_band(run):
    x = noise_batch()
    out = run(views.mask_bands, x, tf.constant([0, 10, 100, 250]), tf.constant([5, 0, 32, 6]))
    assert np.all(out[0, :5] == 0) and np.all(out[0, 5:] == x[0, 5:])
    np.testing.assert_array_equal(out[1], x[1])
    assert np.all(out[2, 100:132] == 0) and np.all(out[2, :100] == x[2, :100]) and np.all(out[2, 132:] == x[2, 132:])
    assert np.all(out[3, 250:] == 0)
    masked = run(one_kind(noise_batch(8), AugmentConfig(freq_mask=1.0, freq_mask_bands=20), count=2))[0]
    for example in masked:
        blank = np.flatnonzero(np.all(example == 0, axis=(1, 2)))
        assert len(blank) <= 20
        if len(blank):
            assert np.all(np.diff(blank) == 1)  # one contiguous band
    assert sum(np.all(e == 0, axis=(1, 2)).any() for e in masked) >= 12


def test_pitch_shift_moves_a_spectral_peak_by_the_shift(run):
    peak = np.full((3, MELS, 8, 2), -80.0, np.float32)
    peak[:, 100] = 0.0
    out = run(views.pitch_shift, tf.constant(peak), tf.constant([2.0, -3.0, 0.5]))
    assert out[0, :, 0, 0].argmax() == 102
    assert out[1, :, 0, 0].argmax() == 97
    np.testing.assert_allclose(out[2, 100:102, 0, 0], [-40.0, -40.0], atol=1e-4)  # half a band: shared
    # In a view the shift is drawn per example within the configured range.
    tiled = tf.constant(np.repeat(peak[:1], 8, axis=0))
    shifted = run(one_kind(tiled, AugmentConfig(pitch_shift=3.0), frames=16, crop=(1.0, 1.0), count=1))[0]
    centre = (shifted[:, :, 0, 0] + 80).argmax(axis=1)
    assert np.all(np.abs(centre - 100) <= 3) and len(np.unique(centre)) > 2


def test_random_convolution_is_a_smooth_bounded_curve_over_frequency(run):
    curves = run(views.smooth_curves, views.rng.seed(3), 16, MELS, tf.fill([16], 3.0))
    np.testing.assert_allclose(np.abs(curves).max(axis=1), 3.0, rtol=1e-4)
    assert np.abs(np.diff(curves, axis=1)).max() < 0.3  # smooth: ≤ a few cycles over 256 bands
    x = noise_batch()
    out = run(views.add_curve, x, tf.constant(curves[:4]))
    difference = out - x.numpy()
    np.testing.assert_allclose(difference, np.broadcast_to(curves[:4, :, None, None], difference.shape), atol=1e-4)
    filtered = run(one_kind(x, AugmentConfig(convolution_db=3.0)))[0] - run(one_kind(x, NONE))[0]
    assert np.abs(filtered).max() <= 3.0 + 1e-4 and np.abs(filtered).max() > 0.5
    np.testing.assert_allclose(filtered, np.broadcast_to(filtered[:, :, :1, :1], filtered.shape), atol=1e-4)


def test_noise_is_power_added(run):
    quiet = tf.fill([2, MELS, 8, 2], -100.0)
    noise = tf.fill([2, MELS, 8, 2], -40.0)
    out = run(views.add_noise, quiet, noise, tf.constant([True, False]))
    np.testing.assert_allclose(out[0], -40.0, atol=1e-3)  # noise dominates silence
    np.testing.assert_array_equal(out[1], -100.0)  # not applied
    equal = run(views.add_noise, noise, noise, tf.constant([True, True]))
    np.testing.assert_allclose(equal, -40.0 + 10 * np.log10(2), atol=1e-3)  # two equal powers: +3 dB
    x = noise_batch()
    noisy = run(one_kind(x, AugmentConfig(noise=1.0)))[0]
    plain = run(one_kind(x, NONE))[0]
    assert np.all(noisy >= plain - 1e-3) and np.mean(noisy - plain) > 0.01


def test_patch_mask_fraction_is_within_range(run):
    _, mask = run(one_kind(noise_batch(8), AugmentConfig(patch_mask=0.3), frames=66, count=2))
    fraction = mask.mean(axis=1)
    assert mask.shape == (16, 25 * 6) and fraction.max() <= 0.45 and fraction.max() > 0.05


def test_normalisation_uses_the_band_statistics(run):
    mean = tf.constant(np.linspace(-60, -20, MELS), tf.float32)
    std = tf.constant(np.linspace(2, 12, MELS), tf.float32)
    x = mean[None, :, None, None] + std[None, :, None, None] * tf.constant(
        np.random.default_rng(5).normal(size=(4, MELS, 200, 2)), tf.float32)
    out = run(views.normalise, x, mean, std)
    assert np.abs(out.mean(axis=(0, 2, 3))).max() < 0.15
    np.testing.assert_allclose(out.std(axis=(0, 2, 3)), 1.0, atol=0.1)
    _, floored_std = views.band_statistics([0.0, 0.0], [0.01, 3.0], min_std=1.0)
    np.testing.assert_array_equal(floored_std, [1.0, 3.0])


def test_global_views_get_only_the_milder_three(monkeypatch):
    called = []
    for name in ("crop_resample", "pitch_shift", "add_curve", "add_volume", "add_noise", "drop_channel",
                 "mask_bands"):
        original = getattr(views, name)
        monkeypatch.setattr(views, name, lambda *a, _name=name, _f=original, **k: called.append(_name) or _f(*a, **k))
    x = noise_batch(2)
    mean, std = identity_stats()
    config = ViewConfig(global_frames=96, local_frames=36)
    global_ = views.make_views(x, mean, std, views.rng.seed(0), 2, 96, config.global_crop, config.global_augment)
    assert sorted(called) == ["add_volume", "crop_resample", "pitch_shift"] and global_.token_mask is None
    called.clear()
    local = views.make_views(x, mean, std, views.rng.seed(0), 2, 36, config.local_crop, config.local_augment)
    assert sorted(called) == sorted(["crop_resample", "pitch_shift", "add_curve", "add_volume", "add_noise",
                                     "drop_channel", "mask_bands"]) and local.token_mask is not None
    # ... and milder.
    assert config.global_augment == GLOBAL_AUGMENT
    for name in ("pitch_shift", "time_stretch", "volume_db"):
        assert 0 < getattr(GLOBAL_AUGMENT, name) < getattr(LOCAL_AUGMENT, name)
    for name in ("convolution_db", "channel_drop", "noise", "freq_mask", "patch_mask"):
        assert getattr(GLOBAL_AUGMENT, name) == 0 < getattr(LOCAL_AUGMENT, name)


def test_views_are_the_same_eagerly_and_compiled_and_depend_on_the_seed():
    x = noise_batch(2)
    mean, std = identity_stats()
    config = ViewConfig(global_frames=96, local_frames=36)
    make = lambda seed: views.all_views(x, mean, std, seed, config)
    eager = make(views.step_seed(0, tf.constant(5, tf.int64), 1))
    compiled = tf.function(make, jit_compile=True)(views.step_seed(0, tf.constant(5, tf.int64), 1))
    np.testing.assert_allclose(compiled[0].x, eager[0].x, atol=2e-3)
    np.testing.assert_allclose(compiled[1].x, eager[1].x, atol=2e-3)
    np.testing.assert_array_equal(compiled[1].token_mask, eager[1].token_mask)
    other_replica = make(views.step_seed(0, tf.constant(5, tf.int64), 0))
    other_step = make(views.step_seed(0, tf.constant(6, tf.int64), 1))
    assert not np.allclose(other_replica[1].x, eager[1].x) and not np.allclose(other_step[0].x, eager[0].x)
    # Views of one clip differ from one another (each view its own draw).
    assert not np.allclose(eager[0].x[0], eager[0].x[2])


def test_global_augment_defaults_are_switchable():
    # Every range is a config value: a config with everything off gives a plain resampled crop.
    off = dataclasses.replace(GLOBAL_AUGMENT, pitch_shift=0.0, time_stretch=0.0, volume_db=0.0)
    ramp = tf.broadcast_to(tf.range(FRAMES, dtype=tf.float32)[None, None, :, None], (2, MELS, FRAMES, 2))
    x = one_kind(ramp, off, frames=56, crop=(0.5, 0.5), count=1)()[0].numpy()
    np.testing.assert_allclose(np.diff(x[:, 0, :, 0], axis=1), 0.5 * FRAMES / 56, rtol=1e-4)
    np.testing.assert_array_equal(x[:, 0], x[:, 255])  # no pitch shift: every band the same ramp

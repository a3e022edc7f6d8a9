"""Views and augmentations on the device, batched, with per-example random parameters.

Every op takes a batch ``x`` of log-mel values ``[B, mel, frames, channels]`` (float32, dB unless
said otherwise) and per-example parameters ``[B]``, so one op serves a batch of views each with
its own draw, inside a compiled step, with static shapes. Randomness is stateless: parameters are
a function of a seed tensor, which the trainer derives from (run seed, step, replica), so a
resumed run draws the same views as an uninterrupted one.

Order within one kind of view, and why:
  1. crop + time stretch (one resampling to the view's fixed frame count)
  2. pitch shift (resampling along mel)
  3. random convolution, 4. volume, 5. noise, 6. channel drop — in dB, before normalising, because
     "add 3 dB" and "power-add a noise floor" mean something only in dB
  7. normalisation with the train split's per-band mean and standard deviation
  8. frequency masking: blanked rows are set to 0, i.e. the band mean after normalising
  9. patch masking: a boolean mask over patch tokens that the encoder zeroes (the tokens stay, so
     shapes stay static, but carry only their frequency embedding)
Ops whose range is 0 are left out of the graph, which is how global views get only crop, stretch,
pitch shift and volume (the defaults in training.config).
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import tensorflow as tf

from training import rng
from training.config import AugmentConfig, ViewConfig

_LN10_OVER_10 = math.log(10.0) / 10.0


# --------------------------------------------------------------------------------------------
# Ops (deterministic given their parameters)
# --------------------------------------------------------------------------------------------


def _interpolate(x: tf.Tensor, positions: tf.Tensor, axis: int) -> tf.Tensor:
    """Linear interpolation of x along `axis` (1 or 2) at per-example positions [B, K]."""
    size = x.shape[axis]
    positions = tf.clip_by_value(positions, 0.0, float(size - 1))
    low = tf.floor(positions)
    fraction = positions - low
    low = tf.cast(low, tf.int32)
    high = tf.minimum(low + 1, size - 1)
    a = tf.gather(x, low, axis=axis, batch_dims=1)
    b = tf.gather(x, high, axis=axis, batch_dims=1)
    shape = [-1, 1, 1, 1]
    shape[axis] = positions.shape[1]
    fraction = tf.reshape(fraction, shape)
    return a + (b - a) * fraction


def crop_resample(x: tf.Tensor, start: tf.Tensor, length: tf.Tensor, frames: int) -> tf.Tensor:
    """Frames [start, start + length) of each example, resampled to `frames` frames (crop and stretch).

    x [B, ...]; start and length [V·B]: V crops of every clip, view-major (row v·B + b crops clip b).
    Gathering the V crops of a clip at once reads the clip once instead of tiling it V times first
    (the tile alone was half the cost of the local views without XLA)."""
    batch, mels, _, channels = x.shape
    count = start.shape[0] // batch
    centres = (tf.range(frames, dtype=tf.float32) + 0.5) / frames  # [F] in (0, 1)
    positions = start[:, None] + centres[None, :] * length[:, None] - 0.5  # [V·B, F]
    positions = tf.reshape(tf.transpose(tf.reshape(positions, (count, batch, frames)), (1, 0, 2)), (batch, -1))
    crops = tf.reshape(_interpolate(x, positions, axis=2), (batch, mels, count, frames, channels))
    return tf.reshape(tf.transpose(crops, (2, 0, 1, 3, 4)), (count * batch, mels, frames, channels))


def pitch_shift(x: tf.Tensor, bands: tf.Tensor) -> tf.Tensor:
    """Move content up the mel axis by `bands` (fractional; negative: down); edges repeat."""
    mels = x.shape[1]
    positions = tf.range(mels, dtype=tf.float32)[None, :] - bands[:, None]
    return _interpolate(x, positions, axis=1)


def add_curve(x: tf.Tensor, curve_db: tf.Tensor) -> tf.Tensor:
    """A filter over frequency: in dB a product in the linear spectrum is a sum. curve [B, mel]."""
    return x + curve_db[:, :, None, None]


def add_volume(x: tf.Tensor, gain_db: tf.Tensor) -> tf.Tensor:
    return x + gain_db[:, None, None, None]


def add_noise(x: tf.Tensor, noise_db: tf.Tensor, apply: tf.Tensor) -> tf.Tensor:
    """Power-add a noise spectrogram (dB, same shape as x) where `apply` [B] is true.

    10·log10(10^(x/10) + 10^(n/10)) written as x + 10·log10(1 + 10^((n − x)/10)): one exp and one
    log1p per value instead of a log-sum-exp over a stacked pair."""
    ratio = tf.where(apply[:, None, None, None], tf.exp((noise_db - x) * _LN10_OVER_10), 0.0)
    return x + tf.math.log1p(ratio) / _LN10_OVER_10


#: Channel mixing matrices [mode, in, out] of drop_channel.
_CHANNEL_MIX = ((1.0, 0.0), (0.0, 1.0)), ((0.0, 0.0), (1.0, 1.0)), ((1.0, 1.0), (0.0, 0.0)), ((0.5, 0.5), (0.5, 0.5))


def drop_channel(x: tf.Tensor, mode: tf.Tensor) -> tf.Tensor:
    """mode [B]: 0 keep, 1 left := right, 2 right := left, 3 both := their mean (stereo input).

    One 2×2 mixing matrix per example, applied as a contraction: XLA fuses element-wise producers
    into their consumers, and per-channel selects read each value of x several times, so the
    noise computed before this op was recomputed for each read (views 30× slower under XLA)."""
    mix = tf.gather(tf.constant(_CHANNEL_MIX, x.dtype), mode)  # [B, 2, 2]
    return tf.einsum("bmfc,bcd->bmfd", x, mix)


def normalise(x: tf.Tensor, band_mean: tf.Tensor, band_std: tf.Tensor) -> tf.Tensor:
    return (x - band_mean[None, :, None, None]) / band_std[None, :, None, None]


def mask_bands(x: tf.Tensor, start: tf.Tensor, width: tf.Tensor, value: float = 0.0) -> tf.Tensor:
    """Set mel rows [start, start + width) of each example to `value` (SpecAugment)."""
    rows = tf.range(x.shape[1])[None, :]
    blank = (rows >= start[:, None]) & (rows < (start + width)[:, None])
    return tf.where(blank[:, :, None, None], tf.cast(value, x.dtype), x)


# --------------------------------------------------------------------------------------------
# Random parameters and one kind of view
# --------------------------------------------------------------------------------------------


def _uniform(seed: tf.Tensor, salt: int, shape: list[int], low: float = 0.0, high: float = 1.0) -> tf.Tensor:
    return rng.uniform(rng.fold_in(seed, salt), shape, low, high)


def smooth_curves(seed: tf.Tensor, batch: int, mels: int, peak_db: tf.Tensor, components: int = 4) -> tf.Tensor:
    """[B, mel] random sums of low cosines over the mel axis, scaled to a peak of `peak_db` [B]."""
    position = tf.range(mels, dtype=tf.float32) / (mels - 1)
    amplitude = _uniform(seed, 1, [batch, components], -1.0, 1.0) / tf.range(1.0, components + 1.0)
    phase = _uniform(seed, 2, [batch, components], 0.0, 2 * math.pi)
    cycles = tf.range(1.0, components + 1.0)[None, :, None] * math.pi * position[None, None, :]
    curves = tf.reduce_sum(amplitude[..., None] * tf.cos(cycles + phase[..., None]), axis=1)  # [B, mel]
    peak = tf.reduce_max(tf.abs(curves), axis=1, keepdims=True) + 1e-6
    return curves / peak * peak_db[:, None]


class Views(NamedTuple):
    """Views of one kind: ``x [count·B, mel, frames, 2]`` normalised, view-major (all clips of view
    0, then view 1, …); ``token_mask [count·B, tokens]`` (True: zero that patch token) or None."""

    x: tf.Tensor
    token_mask: tf.Tensor | None


def make_views(
    logmel: tf.Tensor,
    band_mean: tf.Tensor,
    band_std: tf.Tensor,
    seed: tf.Tensor,
    count: int,
    frames: int,
    crop: tuple[float, float],
    augment: AugmentConfig,
    patch: int = 16,
    stride: int = 10,
) -> Views:
    """`count` views of each clip of logmel [B, mel, frames_in, channels] (any float dtype, dB)."""
    x = tf.cast(logmel, tf.float32)
    if x.shape[0] is None:
        raise ValueError("views need a static batch size (batch with drop_remainder=True)")
    batch, mels, frames_in, _ = count * x.shape[0], *x.shape[1:]  # view-major: clip b of view v is row v·B + b

    coverage = _uniform(seed, 10, [batch], crop[0], crop[1])
    rate = 1.0
    if augment.time_stretch > 0:
        bound = math.log1p(augment.time_stretch)
        rate = tf.exp(_uniform(seed, 11, [batch], -bound, bound))
    length = tf.minimum(coverage * rate * frames_in, float(frames_in))
    start = _uniform(seed, 12, [batch]) * (frames_in - length)
    x = crop_resample(x, start, length, frames)

    if augment.pitch_shift > 0:
        x = pitch_shift(x, _uniform(seed, 20, [batch], -augment.pitch_shift, augment.pitch_shift))
    if augment.convolution_db > 0:
        peak = _uniform(seed, 30, [batch], 0.0, augment.convolution_db)
        x = add_curve(x, smooth_curves(rng.fold_in(seed, 31), batch, mels, peak))
    if augment.volume_db > 0:
        x = add_volume(x, _uniform(seed, 40, [batch], -augment.volume_db, augment.volume_db))
    if augment.noise > 0:
        level = tf.reduce_mean(x, axis=[1, 2, 3]) + _uniform(seed, 50, [batch], *augment.noise_db)
        # Noise power in a band and frame is exponential around its level: 10·log10(Exp(1)) in dB.
        exponential = -tf.math.log(_uniform(seed, 51, x.shape, 1e-7, 1.0))
        noise = level[:, None, None, None] + 10.0 * tf.math.log(exponential) / math.log(10.0)
        x = add_noise(x, noise, _uniform(seed, 52, [batch]) < augment.noise)
    if augment.channel_drop > 0:
        which = tf.cast(tf.floor(_uniform(seed, 60, [batch], 1.0, 4.0)), tf.int32)  # 1, 2 or 3
        x = drop_channel(x, tf.where(_uniform(seed, 61, [batch]) < augment.channel_drop, which, 0))

    x = normalise(x, band_mean, band_std)

    if augment.freq_mask > 0 and augment.freq_mask_bands > 0:
        width = tf.floor(_uniform(seed, 70, [batch], 0.0, augment.freq_mask_bands + 1.0))
        width = tf.where(_uniform(seed, 71, [batch]) < augment.freq_mask, width, 0.0)
        start = tf.floor(_uniform(seed, 72, [batch]) * (mels - width + 1.0))
        x = mask_bands(x, tf.cast(start, tf.int32), tf.cast(width, tf.int32))

    token_mask = None
    if augment.patch_mask > 0:
        tokens = ((mels - patch) // stride + 1) * ((frames - patch) // stride + 1)
        fraction = _uniform(seed, 80, [batch], 0.0, augment.patch_mask)
        token_mask = _uniform(seed, 81, [batch, tokens]) < fraction[:, None]
    return Views(x, token_mask)


def step_seed(run_seed: int | tf.Tensor, step: tf.Tensor, replica: int | tf.Tensor) -> tf.Tensor:
    """A [2] stateless seed for the views of one replica at one step."""
    return rng.seed(run_seed, 0x71E35, step, replica)


def all_views(logmel: tf.Tensor, band_mean: tf.Tensor, band_std: tf.Tensor, seed: tf.Tensor,
              config: ViewConfig, patch: int = 16, stride: int = 10) -> tuple[Views, Views | None]:
    """(global views, local views or None) of a batch, per the view config."""
    global_ = make_views(logmel, band_mean, band_std, rng.fold_in(seed, 1),
                         config.global_views, config.global_frames, config.global_crop, config.global_augment,
                         patch, stride)
    local = None
    if config.local_views:
        local = make_views(logmel, band_mean, band_std, rng.fold_in(seed, 2),
                           config.local_views, config.local_frames, config.local_crop, config.local_augment,
                           patch, stride)
    return global_, local


def band_statistics(band_mean: list[float], band_std: list[float], min_std: float) -> tuple[np.ndarray, np.ndarray]:
    """The manifest's per-band statistics as float32 arrays, std floored (near-silent bands)."""
    mean = np.asarray(band_mean, np.float32)
    std = np.maximum(np.asarray(band_std, np.float32), min_std)
    return mean, std

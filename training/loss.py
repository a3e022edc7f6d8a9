"""LeJEPA: invariance to the mean of the global views plus SIGReg.

Shapes: ``z`` is ``[V, N, D]`` — V views (the first G global), N clips on *this* replica, D the
embedding width. Under a distribution strategy every value returned is this replica's *share*:
summing the shares over replicas gives the loss of the global batch, and the gradients the
optimiser sums over replicas are the gradients of that global loss. On one replica a share is the
loss itself, and no cross-replica op is emitted, so the training loop need not know either way.

SIGReg needs the global batch: the Epps–Pulley statistic squares the empirical characteristic
function, and a square of per-replica means is not the square of the global mean. So the cos and
sin sums are all-reduced in the replica context *before* the square. That all-reduce is
differentiable (its gradient is the all-reduce of the gradients), which is what makes N-replica
gradients equal the single-device gradients of the same global batch (tests/training).

The statistic is on the scale of LeJEPA's reference library (integral over the symmetric range
[−t_max, t_max]): an isotropic Gaussian scores about 1 whatever the sample count, a point mass
about 0.4·samples. Its push against collapse therefore grows with the number of samples tested,
while the invariance term's does not: ``sigreg_samples="all"`` tests the V·N embeddings of a step
as one sample (V× the strength of testing each view's N clips, ``"views"``), which is what lets
λ keep its reference value at the small batches of a CPU or one small GPU (docs/design.md, "The
loss", has the measurements).

The invariance term is averaged over the D embedding dimensions as well as over clips and views,
as LeJEPA's reference code does (``--invariance mean``, the default): its λ was tuned that way.
``--invariance sum`` is the squared Euclidean norm, D× stronger, which collapses small models.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from training.config import LossConfig
from training import rng

_DIRECTIONS_SALT = 0x5161  # separates the directions' random stream from the views'


def epps_pulley_grid(t_points: int = 17, t_max: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    """Integration points t on [0, t_max] and weights for the integral over [−t_max, t_max].

    The integrand is even in t, so the symmetric integral is twice the one on [0, t_max]: trapezoid
    weights doubled (2·dt inside, dt at the two ends), times the Gaussian window exp(−t²/2)."""
    t = np.linspace(0.0, t_max, t_points)
    dt = t[1] - t[0]
    weights = np.full(t_points, 2.0 * dt)
    weights[[0, -1]] = dt
    return t.astype(np.float32), (weights * np.exp(-np.square(t) / 2)).astype(np.float32)


def directions(dim: int, count: int, seed: tf.Tensor, step: tf.Tensor) -> tf.Tensor:
    """[dim, count] random unit columns, a function of (seed, step) only: the same on every replica."""
    a = rng.normal(rng.seed(seed, _DIRECTIONS_SALT, step), [dim, count])
    return a / tf.norm(a, axis=0, keepdims=True)


def _replicas() -> tuple[tf.distribute.ReplicaContext | None, int]:
    context = tf.distribute.get_replica_context()
    if context is None:
        raise RuntimeError("the LeJEPA loss runs in a replica context: call it inside strategy.run")
    return context, context.num_replicas_in_sync


def sigreg(z: tf.Tensor, step: tf.Tensor, seed: int | tf.Tensor, config: LossConfig = LossConfig()) -> tf.Tensor:
    """Epps–Pulley statistic of 1-D projections against N(0, 1), averaged over directions (and views).

    z: [V, N, D] (this replica's clips). With ``config.sigreg_samples == "views"`` each view's
    N·replicas clips are one sample and the statistics of the V views are averaged; with ``"all"``
    the V·N·replicas embeddings are one sample. Returns this replica's share (global value / replicas).
    """
    z = tf.cast(z, tf.float32)
    context, replicas = _replicas()
    if config.sigreg_samples == "all":
        z = tf.reshape(z, (1, -1, z.shape[-1]))
    samples = tf.cast(tf.shape(z)[1] * replicas, tf.float32)
    t, weights = epps_pulley_grid(config.t_points, config.t_max)
    x = tf.einsum("vnd,dm->vnm", z, directions(z.shape[-1], config.directions, seed, step))
    tx = x[..., None] * t  # [V, N, M, T]
    sums = tf.stack([tf.reduce_sum(tf.cos(tx), axis=1), tf.reduce_sum(tf.sin(tx), axis=1)])  # [2, V, M, T]
    if replicas > 1:
        sums = context.all_reduce(tf.distribute.ReduceOp.SUM, sums)
    cos_mean, sin_mean = tf.unstack(sums / samples)
    err = tf.square(cos_mean - np.exp(-np.square(t) / 2)) + tf.square(sin_mean)  # [V, M, T]
    statistic = samples * tf.reduce_sum(err * weights, axis=-1)  # [V, M]
    return tf.reduce_mean(statistic) / replicas


def invariance(z: tf.Tensor, global_views: int, over_dims: str = "sum") -> tf.Tensor:
    """mean over clips n and views v of ‖μ_n − z[v, n]‖², μ_n the mean of the global views; share.

    over_dims="mean" divides by D (LeJEPA's reference code), "sum" is the squared norm."""
    z = tf.cast(z, tf.float32)
    _, replicas = _replicas()
    center = tf.reduce_mean(z[:global_views], axis=0)  # [N, D]
    reduce = tf.reduce_mean if over_dims == "mean" else tf.reduce_sum
    squared = reduce(tf.square(z - center), axis=-1)  # [V, N]
    global_n = tf.cast(tf.shape(z)[1] * replicas, tf.float32)
    return tf.reduce_sum(tf.reduce_mean(squared, axis=0)) / global_n


def lejepa(z: tf.Tensor, global_views: int, step: tf.Tensor, seed: int | tf.Tensor,
           config: LossConfig = LossConfig()) -> dict[str, tf.Tensor]:
    """{"loss", "invariance", "sigreg"}: this replica's shares; total = (1 − λ)·inv + λ·SIGReg."""
    inv = invariance(z, global_views, config.invariance)
    reg = sigreg(z, step, seed, config)
    return {"loss": (1.0 - config.lambda_) * inv + config.lambda_ * reg, "invariance": inv, "sigreg": reg}


def collapse_monitors(z: tf.Tensor) -> dict[str, tf.Tensor]:
    """{"std", "rank"}: standard deviation (mean over dimensions) and effective rank of z [N, D].

    Effective rank (Roy & Vetterli): exp(entropy of the normalised singular values) of the centred
    embeddings; about min(N, D) for a well-spread batch, 1 for a collapsed one. Computed on this
    replica's clips (a monitor, not a loss: no cross-replica traffic for it). The trainer watches
    both the projector's output z and the encoder's representation (what the probe uses): a
    projector can look spread while the representation under it has collapsed.
    """
    z = tf.cast(z, tf.float32)
    centred = z - tf.reduce_mean(z, axis=0, keepdims=True)
    std = tf.reduce_mean(tf.sqrt(tf.reduce_mean(tf.square(centred), axis=0) + 1e-12))
    # The eigen-solver fails (an op error, not a NaN) on non-finite input: a monitor must not be
    # what kills a step whose NaN loss the loop is about to report properly.
    finite = tf.reduce_all(tf.math.is_finite(centred))
    centred = tf.where(finite, centred, tf.zeros_like(centred))
    covariance = tf.matmul(centred, centred, transpose_a=True) / tf.cast(tf.shape(z)[0], tf.float32)
    singular = tf.sqrt(tf.maximum(tf.linalg.eigvalsh(covariance), 0.0))
    p = singular / (tf.reduce_sum(singular) + 1e-12)
    rank = tf.exp(-tf.reduce_sum(tf.where(p > 0, p * tf.math.log(tf.maximum(p, 1e-30)), 0.0)))
    rank = tf.where(finite, rank, float("nan"))
    return {"std": std, "rank": rank}

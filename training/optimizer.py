"""AdamW, the learning-rate schedule and the fp16 loss scale, written for a distribution strategy.

Why not ``keras.optimizers.AdamW``: under ``tf.distribute`` it clips each replica's gradients
*before* summing them over replicas, so clipping would see per-replica norms, not the global
one. Here the training step all-reduces the gradients first (one collective), clips the global
gradient, and ``apply`` then updates every replica's copy of every variable with the same numbers
(a ``merge_call`` + ``extended.update``, the way Keras 2's optimizers did it).
"""
from __future__ import annotations

import math

import tensorflow as tf

from training.config import OptimConfig


def warmup_steps(config: OptimConfig, total_steps: int) -> int:
    return int(config.warmup if config.warmup >= 1 else round(config.warmup * total_steps))


def learning_rate(step: tf.Tensor | int, config: OptimConfig, total_steps: int) -> tf.Tensor:
    """Linear warm-up to the peak ``config.lr``, then cosine decay to min_lr × peak at total_steps.

    The peak is what the user gave, whatever the batch: Adam's step size does not shrink with the
    batch, and a linear per-256 rule left small-batch runs (CPU, tests) with weights that barely
    moved (docs/design.md, "Learning rate")."""
    peak = config.lr
    warmup = warmup_steps(config, total_steps)
    step = tf.cast(step, tf.float32)
    rising = peak * (step + 1.0) / max(warmup, 1)
    progress = tf.clip_by_value((step - warmup) / max(total_steps - warmup, 1), 0.0, 1.0)
    floor = config.min_lr * peak
    falling = floor + (peak - floor) * 0.5 * (1.0 + tf.cos(math.pi * progress))
    return tf.where(step < warmup, rising, falling)


def decays(variable: tf.Variable) -> bool:
    """Weight decay for kernels only: not biases, norms, [CLS], position embeddings or biases."""
    name = getattr(variable, "path", None) or variable.name
    return len(variable.shape) >= 2 and "embedding" not in name


class AdamW(tf.Module):
    """Decoupled weight decay Adam. Create in the strategy's scope; call ``apply`` in a replica context
    with gradients that are already identical on every replica (all-reduced)."""

    def __init__(self, variables: list, config: OptimConfig, name: str = "adamw"):
        super().__init__(name=name)
        self.config = config
        self.params = [v.value if hasattr(v, "value") and isinstance(v.value, tf.Variable) else v for v in variables]
        self.decay = [decays(v) for v in variables]
        self.m = [tf.Variable(tf.zeros(v.shape, tf.float32), trainable=False, name=f"m{i}")
                  for i, v in enumerate(self.params)]
        self.v = [tf.Variable(tf.zeros(v.shape, tf.float32), trainable=False, name=f"v{i}")
                  for i, v in enumerate(self.params)]
        self.updates = tf.Variable(0, dtype=tf.int64, trainable=False, name="updates")

    def apply(self, gradients: list[tf.Tensor], learning_rate: tf.Tensor, finite: tf.Tensor) -> None:
        """One update; a no-op (also for the moments) where ``finite`` is False."""
        context = tf.distribute.get_replica_context()
        context.merge_call(self._apply, args=(gradients, learning_rate, finite))

    def _apply(self, strategy: tf.distribute.Strategy, gradients, learning_rate, finite) -> None:
        config = self.config
        finite = strategy.experimental_local_results(finite)[0]
        learning_rate = strategy.experimental_local_results(learning_rate)[0]
        t = tf.cast(self.updates + 1, tf.float32)
        correction1 = 1.0 - tf.pow(config.beta1, t)
        correction2 = 1.0 - tf.pow(config.beta2, t)

        def update(variable, m, v, gradient, decay):
            gradient = tf.cast(gradient, tf.float32)
            new_m = config.beta1 * m + (1.0 - config.beta1) * gradient
            new_v = config.beta2 * v + (1.0 - config.beta2) * tf.square(gradient)
            step = (new_m / correction1) / (tf.sqrt(new_v / correction2) + config.epsilon)
            if decay:
                step += config.weight_decay * variable
            return tf.group(
                m.assign(tf.where(finite, new_m, m)),
                v.assign(tf.where(finite, new_v, v)),
                variable.assign(tf.where(finite, variable - learning_rate * step, variable)),
            )

        for variable, m, v, gradient, decay in zip(self.params, self.m, self.v, gradients, self.decay):
            strategy.extended.update(variable, update, args=(m, v, gradient, decay), group=False)
        strategy.extended.update(self.updates, lambda u: u.assign_add(tf.cast(finite, tf.int64)), group=False)


class LossScale(tf.Module):
    """Dynamic loss scale for float16: halve on overflow, double after `period` good steps."""

    def __init__(self, enabled: bool, initial: float = 2.0**15, period: int = 2000):
        super().__init__(name="loss_scale")
        self.enabled, self.period = enabled, period
        self.scale = tf.Variable(initial if enabled else 1.0, trainable=False, dtype=tf.float32, name="scale")
        self.good_steps = tf.Variable(0, trainable=False, dtype=tf.int64, name="good_steps")

    def update(self, finite: tf.Tensor) -> None:
        if not self.enabled:
            return
        tf.distribute.get_replica_context().merge_call(self._update, args=(finite,))

    def _update(self, strategy, finite) -> None:
        finite = strategy.experimental_local_results(finite)[0]
        grow = finite & (self.good_steps + 1 >= self.period)
        new_scale = tf.where(finite, tf.where(grow, self.scale * 2.0, self.scale), tf.maximum(self.scale / 2.0, 1.0))
        new_good = tf.where(finite & ~grow, self.good_steps + 1, tf.zeros_like(self.good_steps))
        self.scale.assign(new_scale)
        self.good_steps.assign(new_good)

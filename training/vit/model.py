"""The ViT encoder and projector, in Keras 3 layers (their sizes: ``training.vit.MODEL_SIZES``).

Input ``[B, mel=256, frames, channels=2]`` → 16×16 patches with stride 10 → a grid of
``F = 25`` frequency rows × ``T = (frames − 16) / 10 + 1`` time columns of tokens.

Positions:
- frequency is absolute: a learned embedding per frequency row, added to every token of that row
  whatever its time (a mel band means the same pitch in every clip);
- time is relative only: each head has a learned bias per time offset −(max_T − 1) … max_T − 1,
  added to the attention logits before the softmax, so one model serves views of any length and
  nothing depends on where in the clip a patch sits;
- ``[CLS]`` has no time: a learned bias per head for attention *from* it (its query row) and one
  for attention *to* it (its key column).
Pre-LN blocks, a final LayerNorm; the representation is the ``[CLS]`` output (or that and the mean
patch output, ``pool="cls+mean"``). The projector (BatchNorm synchronised across replicas) maps
it to the embedding z used by the loss.
"""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from training.config import ModelConfig


def _normal(stddev: float = 0.02) -> keras.initializers.Initializer:
    return keras.initializers.TruncatedNormal(stddev=stddev)


def grid_size(mels: int, frames: int, patch: int = 16, stride: int = 10) -> tuple[int, int]:
    """(frequency rows, time columns) of the patch grid."""
    return (mels - patch) // stride + 1, (frames - patch) // stride + 1


def time_offsets(rows: int, columns: int, max_time: int) -> np.ndarray:
    """[P, P] index into the relative time table for tokens in frequency-major order.

    Token k sits at time column k % columns; the pair (i, j) looks up offset t_i − t_j, shifted
    to be non-negative. Offsets beyond the table share its last entry.
    """
    time = np.tile(np.arange(columns), rows)
    offset = np.clip(time[:, None] - time[None, :], -(max_time - 1), max_time - 1)
    return (offset + max_time - 1).astype(np.int32)


class Attention(layers.Layer):
    """Multi-head self-attention with relative time bias and [CLS] biases on the logits."""

    def __init__(self, width: int, heads: int, max_time: int, **kwargs):
        super().__init__(**kwargs)
        self.width, self.heads, self.max_time = width, heads, max_time
        self.qkv = layers.Dense(3 * width, kernel_initializer=_normal(), name="qkv")
        self.out = layers.Dense(width, kernel_initializer=_normal(), name="out")

    def build(self, input_shape):
        self.time_bias = self.add_weight(name="time_bias_embedding", shape=(self.heads, 2 * self.max_time - 1),
                                         initializer="zeros")
        # [:, 0]: bias of the [CLS] query row (attention from CLS); [:, 1]: of the [CLS] key column.
        self.cls_bias = self.add_weight(name="cls_bias_embedding", shape=(self.heads, 2), initializer="zeros")
        self.qkv.build(input_shape)
        self.out.build(input_shape[:-1] + (self.width,))

    def position_bias(self, rows: int, columns: int) -> tf.Tensor:
        """[heads, 1 + P, 1 + P] additive logit bias for a [CLS] + rows × columns token sequence."""
        table = tf.cast(self.time_bias, tf.float32)
        patches = tf.gather(table, time_offsets(rows, columns, self.max_time), axis=1)  # [H, P, P]
        cls = tf.cast(self.cls_bias, tf.float32)
        length = rows * columns
        from_cls = tf.broadcast_to(cls[:, 0, None, None], (self.heads, 1, 1 + length))
        to_cls = tf.broadcast_to(cls[:, 1, None, None], (self.heads, length, 1))
        return tf.concat([from_cls, tf.concat([to_cls, patches], axis=2)], axis=1)

    def weights_and_values(self, x, rows: int, columns: int) -> tuple[tf.Tensor, tf.Tensor]:
        """Attention weights [B, H, L, L] (softmax over keys) and values [B, H, L, d]."""
        batch, length = tf.shape(x)[0], x.shape[1]
        head_dim = self.width // self.heads
        qkv = tf.reshape(self.qkv(x), (batch, length, 3, self.heads, head_dim))
        q, k, v = tf.unstack(tf.transpose(qkv, (2, 0, 3, 1, 4)))  # each [B, H, L, d]
        logits = tf.einsum("bhld,bhmd->bhlm", q, k) * tf.cast(head_dim ** -0.5, q.dtype)
        # Softmax in float32: bf16 logits lose the small relative-bias differences.
        logits = tf.cast(logits, tf.float32) + self.position_bias(rows, columns)[None]
        return tf.cast(tf.nn.softmax(logits, axis=-1), v.dtype), v

    def call(self, x, rows: int, columns: int):
        batch, length = tf.shape(x)[0], x.shape[1]
        weights, v = self.weights_and_values(x, rows, columns)
        mixed = tf.einsum("bhlm,bhmd->bhld", weights, v)
        return self.out(tf.reshape(tf.transpose(mixed, (0, 2, 1, 3)), (batch, length, self.width)))


class Block(layers.Layer):
    """Pre-LN transformer block."""

    def __init__(self, width: int, heads: int, mlp_dim: int, max_time: int, **kwargs):
        super().__init__(**kwargs)
        self.norm1 = layers.LayerNormalization(epsilon=1e-6, name="norm1")
        self.attention = Attention(width, heads, max_time, name="attention")
        self.norm2 = layers.LayerNormalization(epsilon=1e-6, name="norm2")
        self.mlp1 = layers.Dense(mlp_dim, activation="gelu", kernel_initializer=_normal(), name="mlp1")
        self.mlp2 = layers.Dense(width, kernel_initializer=_normal(), name="mlp2")

    def build(self, input_shape):
        self.norm1.build(input_shape)
        self.attention.build(input_shape)
        self.norm2.build(input_shape)
        self.mlp1.build(input_shape)
        self.mlp2.build(input_shape[:-1] + (self.mlp1.units,))

    def call(self, x, rows: int, columns: int):
        x = x + self.attention(self.norm1(x), rows=rows, columns=columns)
        return x + self.mlp2(self.mlp1(self.norm2(x)))


class Encoder(keras.Model):
    """Log-mel views → representation. ``call(x, token_mask=None)`` → [B, width (×2 for cls+mean)]."""

    def __init__(self, config: ModelConfig, mels: int = 256, channels: int = 2, **kwargs):
        super().__init__(**kwargs)
        self.config = config
        self.mels, self.channels = mels, channels
        self.rows = (mels - config.patch) // config.stride + 1
        self.patch_embed = layers.Conv2D(config.width, config.patch, strides=config.stride, padding="valid",
                                         name="patch_embed")
        self.blocks = [Block(config.width, config.heads, config.mlp_dim, config.max_time_patches, name=f"block{i}")
                       for i in range(config.depth)]
        self.norm = layers.LayerNormalization(epsilon=1e-6, name="norm")

    def build(self, input_shape=None):
        width = self.config.width
        self.frequency_embedding = self.add_weight(name="frequency_embedding", shape=(self.rows, width),
                                                   initializer=_normal())
        self.cls_token = self.add_weight(name="cls_embedding", shape=(1, 1, width), initializer=_normal())
        self.patch_embed.build((None, self.mels, None, self.channels))
        for block in self.blocks:
            block.build((None, None, width))
        self.norm.build((None, None, width))

    def tokens(self, x, token_mask=None):
        """Patch tokens [B, rows, columns, width] with frequency embedding; masked tokens zeroed first."""
        tokens = self.patch_embed(x)
        if token_mask is not None:
            keep = 1.0 - tf.cast(tf.reshape(token_mask, tf.shape(tokens)[:3]), tokens.dtype)
            tokens = tokens * keep[..., None]
        return tokens + tf.cast(self.frequency_embedding, tokens.dtype)[None, :, None, :]

    def sequence(self, tokens):
        """[B, rows, columns, width] tokens → ([CLS] + tokens [B, 1 + P, width], rows, columns)."""
        batch, rows, columns = tf.shape(tokens)[0], tokens.shape[1], tokens.shape[2]
        sequence = tf.reshape(tokens, (batch, rows * columns, self.config.width))
        cls = tf.cast(tf.tile(self.cls_token, (batch, 1, 1)), sequence.dtype)
        return tf.concat([cls, sequence], axis=1), rows, columns

    def transform(self, tokens):
        """[B, rows, columns, width] tokens → ([CLS] output [B, width], patch outputs [B, P, width])."""
        sequence, rows, columns = self.sequence(tokens)
        for block in self.blocks:
            sequence = block(sequence, rows=rows, columns=columns)
        sequence = self.norm(sequence)
        return sequence[:, 0], sequence[:, 1:]

    def cls_attention(self, x):
        """Attention of ``[CLS]`` to every patch in the last block, averaged over heads:
        [B, rows, columns] (each map sums to 1 less what [CLS] gives itself). For pictures."""
        sequence, rows, columns = self.sequence(self.tokens(x))
        for block in self.blocks[:-1]:
            sequence = block(sequence, rows=rows, columns=columns)
        last = self.blocks[-1]
        weights, _ = last.attention.weights_and_values(last.norm1(sequence), rows, columns)
        return tf.reshape(tf.reduce_mean(weights[:, :, 0, 1:], axis=1), (-1, rows, columns))

    def call(self, x, token_mask=None):
        cls, patches = self.transform(self.tokens(x, token_mask))
        if self.config.pool == "cls+mean":
            return tf.concat([cls, tf.reduce_mean(patches, axis=1)], axis=-1)
        return cls

    @property
    def output_width(self) -> int:
        return self.config.width * (2 if self.config.pool == "cls+mean" else 1)


class Projector(keras.Model):
    """Representation → embedding z: (Dense → norm → GELU) twice, then Dense.

    The norm is BatchNorm by default, as in LeJEPA's reference projector, and *synchronised*: its
    batch statistics are those of the global batch (an all-reduce across replicas, a no-op on one),
    so N replicas compute what one device would. LayerNorm (``projector_norm="layer"``) normalises
    each embedding on its own; it starts z near collapse (``tiny`` at initialisation, 64 clips:
    effective rank 12 of 64 against 29 with BatchNorm, SIGReg three times higher) and the model
    does not learn from there (docs/design.md, "The projector"). Call it on all views of a step at once, so that one set of
    batch statistics covers them.
    """

    def __init__(self, config: ModelConfig, **kwargs):
        super().__init__(**kwargs)
        hidden = config.projector_hidden

        def norm(name: str) -> layers.Layer:
            if config.projector_norm == "batch":
                return layers.BatchNormalization(synchronized=True, momentum=0.9, epsilon=1e-5, name=name)
            return layers.LayerNormalization(epsilon=1e-6, name=name)

        self.dense1 = layers.Dense(hidden, name="dense1")
        self.norm1 = norm("norm1")
        self.dense2 = layers.Dense(hidden, name="dense2")
        self.norm2 = norm("norm2")
        self.dense3 = layers.Dense(config.projector_dim, name="dense3")

    def build(self, input_shape):
        self.dense1.build(input_shape)
        self.norm1.build(input_shape[:-1] + (self.dense1.units,))
        self.dense2.build(input_shape[:-1] + (self.dense1.units,))
        self.norm2.build(input_shape[:-1] + (self.dense2.units,))
        self.dense3.build(input_shape[:-1] + (self.dense2.units,))

    def call(self, x, training: bool = False):
        x = keras.activations.gelu(self.norm1(self.dense1(x), training=training))
        x = keras.activations.gelu(self.norm2(self.dense2(x), training=training))
        return self.dense3(x)


def build_models(config: ModelConfig, mels: int = 256, channels: int = 2) -> tuple[Encoder, Projector]:
    """Encoder and projector with their variables created (call inside the strategy's scope)."""
    encoder = Encoder(config, mels, channels, name="encoder")
    encoder.build((None, mels, None, channels))
    projector = Projector(config, name="projector")
    projector.build((None, encoder.output_width))
    return encoder, projector


def count_parameters(*models: keras.Model) -> int:
    return int(sum(np.prod(v.shape) for m in models for v in m.trainable_variables))

"""The log-mel front end in TensorFlow, for embedding raw audio.

It computes what :func:`audioshards.spectrogram.log_mel` computes, from the same
:class:`~audioshards.spectrogram.SpectrogramConfig` and the same librosa filterbank (baked in as a
constants, so an exported SavedModel needs neither librosa nor this project), and agrees with it
to within 0.01 dB (tests/training/test_frontend.py). Like the NumPy front end it windows and
transforms in float64: a float32 FFT misses by up to 0.08 dB in bands ~120 dB below a loud tone.

:func:`clip_windows` cuts a waveform of any length into 10 s windows by the pipeline's rules
(:mod:`audioshards.audio`): consecutive windows, a trailing remainder of at least
``min_remainder_s`` looped to a full window, a source shorter than one window looped.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from audioshards.audio import ClipSettings
from audioshards.spectrogram import DEFAULT_CONFIG, SpectrogramConfig, analysis_window, mel_filterbank, mel_triangles


class LogMelFrontEnd(tf.Module):
    """[batch, samples, channels] float32 audio → [batch, mel, frames, channels] float32 dB.

    The mel product is split by groups of :attr:`bands_per_matmul` neighbouring mel bands, each
    multiplied with only the FFT bins its triangles touch: 8 small matmuls do 1/8 of the dense
    [1018 bins × 256 bands] product's work. After the float64 FFT the spectrum is cast to
    complex64, as the NumPy front end stores its sums in float32: powers and their weighted sums
    are ≥ 0, so nothing cancels (< 1e-5 dB). benchmarks/features.py times it against the FFT.
    """

    bands_per_matmul = 32

    def __init__(self, config: SpectrogramConfig = DEFAULT_CONFIG, name: str | None = None) -> None:
        super().__init__(name=name)
        self.config = config
        filterbank = mel_filterbank(config)
        first_bins, widths, _ = mel_triangles(filterbank)
        self.groups = []  # (first bin, end bin, weights [bins, bands] float32) per group of bands
        for band in range(0, config.n_mels, self.bands_per_matmul):
            bands = slice(band, band + self.bands_per_matmul)
            low, high = int(first_bins[bands].min()), int((first_bins + widths)[bands].max())
            self.groups.append((low, high, tf.constant(filterbank[bands, low:high].T)))
        self.high = max(high for _, high, _ in self.groups)
        self.window = tf.constant(analysis_window(config))

    def __call__(self, audio: tf.Tensor) -> tf.Tensor:
        config = self.config
        # [batch, channels, samples]; einsum, not tf.transpose: 1.3 ms less per clip on CPU here.
        signal = tf.einsum("bsc->bcs", tf.cast(audio, tf.float32))
        if config.center:
            half = config.n_fft // 2
            signal = tf.pad(signal, [[0, 0], [0, 0], [half, half]])
        frames = tf.signal.frame(signal, config.n_fft, config.hop_length)  # [b, c, frames, n_fft]
        spectrum = tf.signal.rfft(tf.cast(frames, tf.float64) * self.window)[..., : self.high]
        spectrum = tf.cast(spectrum, tf.complex64)  # after the FFT: powers are sums of squares
        power = tf.math.square(tf.math.real(spectrum)) + tf.math.square(tf.math.imag(spectrum))
        mel = tf.concat([tf.matmul(power[..., low:high], weights) for low, high, weights in self.groups], axis=-1)
        db = 10.0 * tf.math.log(tf.maximum(mel, config.amin)) / np.log(10.0)
        return tf.transpose(db, [0, 3, 2, 1])  # [b, mel, frames, c]


def clip_windows(
    audio: tf.Tensor, config: SpectrogramConfig = DEFAULT_CONFIG, settings: ClipSettings = ClipSettings()
) -> tf.Tensor:
    """[samples, channels] → [windows, clip_samples, channels], by the pipeline's clip rules."""
    size = config.clip_samples
    length = tf.shape(audio)[0]
    tf.debugging.assert_positive(length, message="audio has no samples")

    def filled(piece: tf.Tensor) -> tf.Tensor:
        if settings.short_sources == "pad":
            return tf.pad(piece, [[0, size - tf.shape(piece)[0]], [0, 0]])
        repeats = (size + tf.shape(piece)[0] - 1) // tf.shape(piece)[0]
        return tf.tile(piece, [repeats, 1])[:size]

    full = length // size
    whole = tf.reshape(audio[: full * size], [full, size, tf.shape(audio)[1]])
    remainder = audio[full * size :]
    keep = tf.logical_or(
        tf.equal(full, 0),
        tf.logical_and(
            tf.shape(remainder)[0] > 0,
            tf.cast(tf.shape(remainder)[0], tf.float32) >= settings.min_remainder_s * config.sample_rate,
        ),
    )
    windows = tf.cond(keep, lambda: tf.concat([whole, filled(remainder)[tf.newaxis]], axis=0), lambda: whole)
    return tf.ensure_shape(windows, [None, size, audio.shape[1]])  # static length: the encoder needs it


def as_stereo(audio: tf.Tensor) -> tf.Tensor:
    """[samples] or [samples, 1] mono is duplicated to two channels; stereo passes through.
    More channels are refused: down-mix them first (the pipeline lets ffmpeg do it)."""
    audio = tf.convert_to_tensor(audio, tf.float32)
    if audio.shape.rank == 1:
        audio = audio[:, tf.newaxis]
    channels = tf.shape(audio)[1]
    tf.debugging.assert_less_equal(channels, 2, message="audio has more than 2 channels: down-mix to stereo")
    return tf.cond(tf.equal(channels, 1), lambda: tf.tile(audio, [1, 2]), lambda: audio)

"""Embedding new audio: load(path)(audio, rate) and the HEAR 2021 API over an exported SavedModel."""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from audioshards.audio import ClipSettings
from audioshards.spectrogram import DEFAULT_CONFIG
from training import hear
from training.embedding import load, resample
from training.saved_model import AudioEmbedder

WIDTH = 16


class TinyEncoder(tf.Module):
    """An untrained stand-in for the trainer's encoder: each band's mean over time and channels,
    randomly projected. Cheap, and sensitive to the spectrum, which is what resampling may change."""

    def __init__(self) -> None:
        super().__init__()
        rng = np.random.default_rng(0)
        bands = DEFAULT_CONFIG.n_mels
        self.projection = tf.Variable(rng.normal(0, bands ** -0.5, (bands, WIDTH)).astype(np.float32))
        self.output_width = WIDTH

    def __call__(self, windows):
        return tf.reduce_mean(windows, axis=[2, 3]) @ self.projection


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> str:
    """A SavedModel as training/saved_model.py exports it, around TinyEncoder."""
    bands = DEFAULT_CONFIG.n_mels
    embedder = AudioEmbedder(TinyEncoder(), np.full(bands, -60.0), np.full(bands, 20.0), DEFAULT_CONFIG, ClipSettings())
    out = str(tmp_path_factory.mktemp("export") / "model")
    tf.saved_model.save(embedder, out, signatures={"serving_default": embedder.embed})  # the one load() uses
    return out


@pytest.fixture(scope="module")
def embedder(exported):
    return load(exported)


def tones(rate: int, seconds: float, channels: int = 1) -> np.ndarray:
    """The same band-limited sound (everything below 8 kHz) sampled at ``rate``."""
    t = np.arange(int(rate * seconds)) / rate
    sound = sum(np.sin(2 * np.pi * f * t + f) / (k + 1) for k, f in enumerate((220.0, 660.0, 1500.0, 3300.0, 6100.0)))
    sound = (0.2 * sound * (1 + 0.5 * np.sin(2 * np.pi * 1.3 * t))).astype(np.float32)
    return np.repeat(sound[:, None], channels, axis=1) if channels > 1 else sound


def relative_distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def test_the_same_sound_at_16_44_1_and_48_khz_gives_nearly_the_same_embedding(embedder):
    at_48k = embedder(tones(48_000, 3.0), 48_000)
    at_16k = embedder(tones(16_000, 3.0), 16_000)
    at_44k = embedder(tones(44_100, 3.0), 44_100)
    assert at_48k.shape == at_16k.shape == at_44k.shape == (1, WIDTH)
    # Another sound is about 0.4 away; resampled ones were 0.002 (16 kHz) and 0.0001 (44.1 kHz).
    other = embedder(tones(48_000, 3.0)[::-1] * np.linspace(0, 1, 144_000, dtype=np.float32) ** 4, 48_000)
    assert max(relative_distance(at_16k, at_48k), relative_distance(at_44k, at_48k)) < 0.02
    assert relative_distance(other, at_48k) > 0.2


def test_resampling_changes_the_length_by_the_ratio():
    assert resample(np.zeros((44_100, 2), np.float32), 44_100, 48_000).shape == (48_000, 2)
    assert resample(np.zeros(16_000, np.float32), 16_000, 48_000).shape == (48_000,)
    assert resample(np.ones(1000, np.float64), 48_000, 48_000).dtype == np.float32


@pytest.mark.parametrize("rate", [8_000, 16_000, 22_050, 44_100, 96_000])
@pytest.mark.parametrize("channels", [None, 2])
def test_resampling_is_librosas_soxr_hq_sample_for_sample(rate, channels):
    import librosa

    audio = np.random.default_rng(rate).normal(scale=0.3, size=(3 * rate + 7, *([channels] if channels else [])))
    audio = audio.astype(np.float32)
    ours = resample(audio, rate, 48_000)
    reference = librosa.resample(audio, orig_sr=rate, target_sr=48_000, res_type="soxr_hq", axis=0)
    assert ours.dtype == np.float32 and ours.shape == ((audio.shape[0] * 48_000 + rate // 2) // rate, *audio.shape[1:])
    np.testing.assert_array_equal(ours, reference[:len(ours)])  # librosa rounds the length up, padding with 0


def test_mono_equals_duplicated_stereo_and_windows_follow_the_clip_rules(embedder):
    mono = tones(48_000, 12.5)  # a 10 s window and a 2.5 s remainder: two windows
    from_mono, starts = embedder.embed(mono, 48_000)
    from_column = embedder(mono[:, None], 48_000)
    from_stereo = embedder(np.stack([mono, mono], axis=1), 48_000)
    np.testing.assert_allclose(from_mono, from_stereo, atol=1e-6)
    np.testing.assert_allclose(from_column, from_stereo, atol=1e-6)
    np.testing.assert_array_equal(starts, [0.0, 10.0])
    assert embedder.embedding_size == WIDTH and embedder.sample_rate == 48_000


def test_channels_first_audio_is_refused_with_a_hint(embedder):
    with pytest.raises(ValueError, match="channels first"):
        embedder(np.zeros((2, 48_000), np.float32), 48_000)


def test_windows_laid_end_to_end_are_embedded_one_by_one(embedder):
    windows = np.stack([tones(48_000, 10.0), tones(48_000, 10.0)[::-1].copy()])[:, :, None]
    together = embedder.embed_windows(windows, batch=2)
    alone = np.concatenate([embedder(window, 48_000) for window in windows])
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_hear_api_shapes_and_timestamps(exported):
    model = hear.load_model(exported, timestamp_hop_ms=250.0)
    assert model.sample_rate == 48_000
    assert model.scene_embedding_size == model.timestamp_embedding_size == WIDTH
    audio = np.stack([tones(48_000, 1.0), 0.5 * tones(48_000, 1.0)[::-1]])  # [n_sounds, n_samples]
    scene = hear.get_scene_embeddings(audio, model)
    assert isinstance(scene, tf.Tensor) and scene.shape == (2, WIDTH) and scene.dtype == tf.float32
    embeddings, timestamps = hear.get_timestamp_embeddings(audio, model)
    assert embeddings.shape == (2, 4, WIDTH) and timestamps.shape == (2, 4)  # 0, 250, 500, 750 ms of a 1 s sound
    np.testing.assert_allclose(timestamps.numpy()[0], [0.0, 250.0, 500.0, 750.0])
    assert np.all(np.diff(timestamps.numpy(), axis=1) > 0)
    assert not np.allclose(embeddings.numpy()[0, 0], embeddings.numpy()[0, -1])  # another window, another embedding


def test_hear_load_model_needs_the_exported_directory():
    with pytest.raises(ValueError, match="model_file_path"):
        hear.load_model("")

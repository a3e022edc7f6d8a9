"""The TensorFlow front end equals the pipeline's NumPy front end and clip rules."""
import numpy as np
import pytest
import tensorflow as tf

from audioshards.audio import ClipSettings, make_clips
from audioshards.spectrogram import DEFAULT_CONFIG, log_mel
from tests.signals import dithered, noise, sine, times, white_noise
from training.frontend import LogMelFrontEnd, as_stereo, clip_windows

RATE = DEFAULT_CONFIG.sample_rate


def dithered_tones(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = times(seconds, RATE)
    return dithered(sine(t, 440, 0.5) + sine(t, 5_000, 0.1), noise(rng, t.size, 0.2) * (t > 3), rng)


@pytest.mark.parametrize("compiled", [False, True])
def test_tensorflow_front_end_equals_numpy_within_a_hundredth_of_a_db(compiled):
    clips = np.stack([dithered_tones(10.0, seed) for seed in range(2)])
    front_end = LogMelFrontEnd()
    run = tf.function(front_end) if compiled else front_end
    ours = run(tf.constant(clips)).numpy()
    assert ours.shape == (2, *DEFAULT_CONFIG.shape) and ours.dtype == np.float32
    for index in range(2):
        np.testing.assert_allclose(ours[index], log_mel(clips[index]), atol=0.01, rtol=0)


@pytest.mark.parametrize("seconds", [0.5, 3.0, 10.0, 10.01, 20.0, 31.9, 32.0, 35.0])
@pytest.mark.parametrize("mode", ["loop", "pad"])
def test_clip_windows_follow_the_pipeline_rules(seconds, mode):
    settings = ClipSettings(short_sources=mode)
    audio = white_noise(int(seconds * RATE), 2, seed=1)
    expected = np.stack(make_clips(audio, DEFAULT_CONFIG, settings))
    np.testing.assert_array_equal(clip_windows(tf.constant(audio), DEFAULT_CONFIG, settings).numpy(), expected)


def test_mono_is_duplicated_and_too_many_channels_refused():
    mono = tf.range(5, dtype=tf.float32)
    np.testing.assert_array_equal(as_stereo(mono).numpy(), np.stack([np.arange(5)] * 2, axis=1))
    np.testing.assert_array_equal(as_stereo(mono[:, None]).numpy(), np.stack([np.arange(5)] * 2, axis=1))
    with pytest.raises(tf.errors.InvalidArgumentError, match="more than 2 channels"):
        as_stereo(tf.zeros([5, 6]))

"""The NumPy front end against librosa, and the config's contract."""
import librosa
import numpy as np
import pytest
import scipy.signal

from audioshards.spectrogram import (
    DEFAULT_CONFIG, SpectrogramConfig, analysis_window, hz_to_mel, log_mel, mel_filterbank, mel_to_hz, mel_triangles,
    nonzero_band,
)
from tests.signals import dithered, noise, sine, times, white_noise


def librosa_log_mel(channel: np.ndarray, config: SpectrogramConfig = DEFAULT_CONFIG) -> np.ndarray:
    power = librosa.feature.melspectrogram(
        y=channel, sr=config.sample_rate, n_fft=config.n_fft, hop_length=config.hop_length,
        win_length=config.win_length, window="hann", center=True, power=2.0,
        n_mels=config.n_mels, fmin=config.fmin, fmax=config.fmax,
    )
    return librosa.power_to_db(power, ref=1.0, amin=config.amin, top_db=None)


def test_shape_is_mel_frames_channels():
    assert DEFAULT_CONFIG.clip_samples == 480_000
    assert DEFAULT_CONFIG.frames == 235
    assert DEFAULT_CONFIG.shape == (256, 235, 2)


@pytest.mark.parametrize("signal", ["tones", "noise", "chirp_with_silence", "quiet"])
def test_matches_librosa_within_a_hundredth_of_a_db(signal):
    # Tones over 16-bit dither span ~120 dB: the case a float32 FFT gets wrong (see the module).
    rng = np.random.default_rng(1)
    t = times(DEFAULT_CONFIG.clip_seconds, DEFAULT_CONFIG.sample_rate)
    if signal == "tones":
        left = sine(t, 440, 0.5) + sine(t, 3_000, 0.2)
        right = sine(t, 97, 0.3)
    elif signal == "noise":
        left, right = noise(rng, (2, t.size), 0.1)
    elif signal == "chirp_with_silence":
        left = sine(t, 100 + 500 * t, 0.4) * (t > 2)
        right = left[::-1].copy()
    else:
        left, right = noise(rng, (2, t.size), 1e-4)
    audio = dithered(left, right, rng)
    ours = log_mel(audio)
    assert ours.shape == (256, 235, 2) and ours.dtype == np.float32
    for channel in range(2):
        reference = librosa_log_mel(audio[:, channel])
        np.testing.assert_allclose(ours[..., channel], reference, atol=0.01, rtol=0)


def test_silence_is_the_db_floor():
    assert np.all(log_mel(np.zeros((48_000, 2), np.float32)) == pytest.approx(-100.0))


@pytest.mark.parametrize("settings", [
    {},  # the shards' filterbank
    {"mel_scale": "htk"},
    {"sample_rate": 16_000, "n_fft": 512, "n_mels": 64, "fmin": 0.0, "fmax": 8_000.0},  # from DC, up to Nyquist
    {"n_mels": 128, "fmin": 20.0, "fmax": 24_000.0},
])
def test_filterbank_is_librosas_bit_for_bit(settings):
    config = SpectrogramConfig(**settings)
    expected = librosa.filters.mel(sr=config.sample_rate, n_fft=config.n_fft, n_mels=config.n_mels, fmin=config.fmin,
                                   fmax=config.fmax, htk=config.mel_scale == "htk", norm="slaney", dtype=np.float32)
    ours = mel_filterbank(config)
    assert ours.dtype == np.float32 and ours.shape == (config.n_mels, config.n_fft // 2 + 1)
    np.testing.assert_array_equal(ours, expected)


def test_mel_scales_are_librosas_and_invert():
    hz = np.array([0.0, 60.0, 700.0, 999.9, 1000.0, 1000.1, 4000.0, 12_000.0])
    for scale in ("slaney", "htk"):
        np.testing.assert_array_equal(hz_to_mel(hz, scale), librosa.hz_to_mel(hz, htk=scale == "htk"))
        np.testing.assert_allclose(mel_to_hz(hz_to_mel(hz, scale), scale), hz, rtol=1e-12, atol=1e-9)
    assert hz_to_mel(60.0) == librosa.hz_to_mel(60.0)  # a scalar, as the filterbank's edges are computed


def test_an_unknown_mel_scale_is_refused_by_name():
    with pytest.raises(ValueError, match="mel_scale must be one of slaney, htk, not 'mel'"):
        mel_filterbank(SpectrogramConfig(mel_scale="mel"))


def test_band_restriction_keeps_every_nonzero_weight():
    filterbank = mel_filterbank()
    low, high = nonzero_band(filterbank)
    assert np.count_nonzero(filterbank[:, :low]) == 0 and np.count_nonzero(filterbank[:, high:]) == 0
    # 12 kHz at 48 kHz / 4096 bins is bin 1024: nothing above it is computed.
    assert high <= 1026 and low >= 1
    first_bins, widths, weights = mel_triangles(filterbank)
    rebuilt = np.zeros_like(filterbank)
    for band, (first, width) in enumerate(zip(first_bins, widths)):
        rebuilt[band, first : first + width] = weights[band, :width]
    np.testing.assert_array_equal(rebuilt, filterbank)
    assert widths.max() < 32  # triangles are narrow: the point of summing each over its own bins


def test_window_is_scipys_periodic_hann():
    expected = scipy.signal.get_window("hann", DEFAULT_CONFIG.win_length, fftbins=True)
    np.testing.assert_allclose(analysis_window(), expected, rtol=0, atol=1e-15)


def test_other_lengths_and_mono():
    audio = white_noise(20_480, 1, seed=0)
    ours = log_mel(audio)
    assert ours.shape == (256, 1 + 20_480 // 2048, 1)
    np.testing.assert_allclose(ours[..., 0], librosa_log_mel(audio[:, 0]), atol=0.01, rtol=0)
    with pytest.raises(ValueError, match="samples, channels"):
        log_mel(audio[:, 0])
    uncentred = SpectrogramConfig(center=False)
    with pytest.raises(ValueError, match="shorter than one FFT frame"):
        log_mel(audio[:1000], uncentred)


def test_config_round_trip_and_differences():
    other = SpectrogramConfig(n_mels=128, hop_length=1024)
    assert SpectrogramConfig.from_dict(DEFAULT_CONFIG.to_dict()) == DEFAULT_CONFIG
    assert DEFAULT_CONFIG.differences(other) == ["hop_length: 2048 != 1024", "n_mels: 256 != 128"]
    with pytest.raises(ValueError, match="unknown spectrogram settings"):
        SpectrogramConfig.from_dict({**DEFAULT_CONFIG.to_dict(), "n_bins": 3})

"""Decoding with the real ffmpeg, and cutting or looping into 10 s clips."""
import subprocess

import numpy as np
import pytest

from pipeline.audio import ClipSettings, DecodeError, DecodeRequest, UnusableAudio, decode, decode_many, make_clips
from pipeline.spectrogram import DEFAULT_CONFIG

RATE = DEFAULT_CONFIG.sample_rate
CLIP = DEFAULT_CONFIG.clip_samples


def ffmpeg_tone(path, seconds, *, rate=16_000, channels=1, frequency=1_000, codec_args=()):
    subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
         f"sine=frequency={frequency}:sample_rate={rate}:duration={seconds}",
         "-ac", str(channels), *codec_args, str(path)],
        check=True,
    )
    return str(path)


def test_decode_resamples_and_duplicates_mono(tmp_path):
    audio = decode(DecodeRequest(ffmpeg_tone(tmp_path / "mono.wav", 2.0)), DEFAULT_CONFIG)
    assert audio.dtype == np.float32 and audio.shape[1] == 2
    assert abs(audio.shape[0] - 2 * RATE) <= 2
    np.testing.assert_array_equal(audio[:, 0], audio[:, 1])
    spectrum = np.abs(np.fft.rfft(audio[:, 0]))
    assert abs(np.argmax(spectrum) * RATE / audio.shape[0] - 1_000) < 2  # the tone survives resampling


def test_decode_downmixes_six_channels_and_cuts_a_range(tmp_path):
    path = ffmpeg_tone(tmp_path / "six.flac", 5.0, rate=48_000, channels=6)
    audio = decode(DecodeRequest(path, start_s=1.0, duration_s=2.5), DEFAULT_CONFIG)
    assert audio.shape == (int(2.5 * RATE), 2)


def test_corrupt_file_is_a_decode_error(tmp_path):
    path = tmp_path / "corrupt.mp3"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    with pytest.raises(DecodeError) as error:
        decode(DecodeRequest(str(path)), DEFAULT_CONFIG)
    assert str(error.value)


def test_one_process_decodes_a_batch_and_errors_stay_with_their_file(tmp_path):
    good = [ffmpeg_tone(tmp_path / f"t{i}.flac", 1.0 + i, frequency=300 * (i + 1)) for i in range(3)]
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF" + bytes(range(256)) * 40)
    requests = [DecodeRequest(good[0]), DecodeRequest(good[1], start_s=0.5, duration_s=1.0), DecodeRequest(good[2])]
    batch = decode_many(requests, DEFAULT_CONFIG)
    singles = [decode(request, DEFAULT_CONFIG) for request in requests]
    for together, alone in zip(batch, singles, strict=True):
        np.testing.assert_array_equal(together, alone)
    assert [len(a) for a in batch] == [RATE, RATE, 3 * RATE]
    mixed = decode_many([requests[0], DecodeRequest(str(corrupt)), requests[2]], DEFAULT_CONFIG)
    assert isinstance(mixed[1], DecodeError)
    np.testing.assert_array_equal(mixed[0], singles[0])
    np.testing.assert_array_equal(mixed[2], singles[2])


def ramp(seconds):
    samples = int(seconds * RATE)
    values = np.arange(samples, dtype=np.float32) / samples + 0.1
    return np.stack([values, -values], axis=1)


def test_short_source_is_looped_end_to_start():
    audio = ramp(3.0)
    (clip,) = make_clips(audio, DEFAULT_CONFIG, ClipSettings())
    assert clip.shape == (CLIP, 2)
    np.testing.assert_array_equal(clip[: audio.shape[0]], audio)
    np.testing.assert_array_equal(clip[audio.shape[0] : 2 * audio.shape[0]], audio)


def test_short_source_can_be_zero_padded():
    (clip,) = make_clips(ramp(3.0), DEFAULT_CONFIG, ClipSettings(short_sources="pad"))
    assert np.all(clip[3 * RATE :] == 0) and np.all(clip[: 3 * RATE] != 0)


@pytest.mark.parametrize("seconds, expected", [(10.0, 1), (10.01, 1), (35.0, 4), (31.9, 3), (32.0, 4), (20.0, 2)])
def test_long_source_chunks_and_loops_a_long_enough_remainder(seconds, expected):
    audio = ramp(seconds)
    clips = make_clips(audio, DEFAULT_CONFIG, ClipSettings(min_remainder_s=2.0))
    assert len(clips) == expected and all(c.shape == (CLIP, 2) for c in clips)
    np.testing.assert_array_equal(clips[1 if expected > 1 else 0][:10], audio[(1 if expected > 1 else 0) * CLIP :][:10])


def test_silent_and_empty_sources_are_refused_with_a_reason():
    with pytest.raises(UnusableAudio) as silent:
        make_clips(np.zeros((RATE, 2), np.float32), DEFAULT_CONFIG, ClipSettings())
    assert silent.value.reason == "silent"
    with pytest.raises(UnusableAudio) as empty:
        make_clips(np.zeros((0, 2), np.float32), DEFAULT_CONFIG, ClipSettings())
    assert empty.value.reason == "empty"

"""Decoding with the real ffmpeg, and cutting or looping into 10 s clips."""
import os
import subprocess
import time

import numpy as np
import pytest

from audioshards.audio import (KILL_GRACE_S, ClipSettings, DecodeError, DecodeRequest, FfmpegTimeout, SourceTooLong,
                            UnusableAudio, decode, decode_many, make_clips)
from audioshards.spectrogram import DEFAULT_CONFIG
from tests.signals import write_tone

RATE = DEFAULT_CONFIG.sample_rate
CLIP = DEFAULT_CONFIG.clip_samples
#: The tone files' rate unless a test says otherwise: not the shards' rate, so decoding resamples.
SOURCE_RATE = 16_000


def test_decode_resamples_and_duplicates_mono(tmp_path):
    audio = decode(DecodeRequest(write_tone(tmp_path / "mono.wav", 2.0, rate=SOURCE_RATE)), DEFAULT_CONFIG)
    assert audio.dtype == np.float32 and audio.shape[1] == 2
    assert abs(audio.shape[0] - 2 * RATE) <= 2
    np.testing.assert_array_equal(audio[:, 0], audio[:, 1])
    spectrum = np.abs(np.fft.rfft(audio[:, 0]))
    assert abs(np.argmax(spectrum) * RATE / audio.shape[0] - 1_000) < 2  # the tone survives resampling


def test_decode_downmixes_six_channels_and_cuts_a_range(tmp_path):
    path = write_tone(tmp_path / "six.flac", 5.0, rate=48_000, channels=6)
    audio = decode(DecodeRequest(path, start_s=1.0, duration_s=2.5), DEFAULT_CONFIG)
    assert audio.shape == (int(2.5 * RATE), 2)


def test_corrupt_file_is_a_decode_error(tmp_path):
    path = tmp_path / "corrupt.mp3"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    with pytest.raises(DecodeError) as error:
        decode(DecodeRequest(str(path)), DEFAULT_CONFIG)
    assert str(error.value)


def test_one_process_decodes_a_batch_and_errors_stay_with_their_file(tmp_path):
    good = [write_tone(tmp_path / f"t{i}.flac", 1.0 + i, frequency=300 * (i + 1), rate=SOURCE_RATE) for i in range(3)]
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


# ---- hostile files: caps, time limits, what ffmpeg may open --------------------------------------

def dominant_hz(audio):
    spectrum = np.abs(np.fft.rfft(audio[:, 0]))
    return np.argmax(spectrum) * RATE / audio.shape[0]


def test_decoded_length_is_capped_and_a_longer_source_is_too_long(tmp_path):
    path = write_tone(tmp_path / "long.flac", 30.0, rate=SOURCE_RATE)
    with pytest.raises(SourceTooLong) as error:
        decode(DecodeRequest(path), DEFAULT_CONFIG, max_seconds=12.0)
    assert (error.value.reason, error.value.permanent) == ("too_long", True)
    assert str(error.value) == "the source is longer than 12 s (--max-seconds)"
    # A CSV's end time of 1e300 asks for the whole file: too long as well, never cut at the cap.
    short = write_tone(tmp_path / "short.flac", 2.0, rate=SOURCE_RATE)
    batch = decode_many([DecodeRequest(path, duration_s=1e300), DecodeRequest(path), DecodeRequest(short)],
                        DEFAULT_CONFIG, max_seconds=12.0)
    assert [type(result).__name__ for result in batch] == ["SourceTooLong", "SourceTooLong", "ndarray"]
    # Up to the cap, nothing changes.
    exact = decode(DecodeRequest(path, start_s=1.0, duration_s=12.0), DEFAULT_CONFIG, max_seconds=12.0)
    assert exact.shape[0] == 12 * RATE
    assert len(make_clips(exact, DEFAULT_CONFIG, ClipSettings(max_seconds=12.0))) == 2
    # Audio from elsewhere is held to the setting by make_clips.
    with pytest.raises(UnusableAudio) as unusable:
        make_clips(exact, DEFAULT_CONFIG, ClipSettings(max_seconds=11.0))
    assert unusable.value.reason == "too_long" and "longer than 11 s" in str(unusable.value)
    assert ClipSettings().max_seconds == 600.0
    with pytest.raises(ValueError, match="--max-seconds"):
        ClipSettings(max_seconds=float("inf"))


def test_a_fifo_that_blocks_ffmpeg_is_killed_and_is_a_transient_timeout(tmp_path):
    fifo = tmp_path / "x.wav"
    os.mkfifo(fifo)  # ffmpeg blocks in open(), where SIGTERM does not stop it
    good = write_tone(tmp_path / "good.flac", 1.0, rate=SOURCE_RATE)
    started = time.monotonic()
    with pytest.raises(FfmpegTimeout) as error:
        decode(DecodeRequest(str(fifo)), DEFAULT_CONFIG, timeout_s=1.0)
    elapsed = time.monotonic() - started
    assert 1.0 <= elapsed < 1.0 + KILL_GRACE_S + 3.0
    assert (error.value.reason, error.value.permanent) == ("timeout", False)
    assert "ran longer than 1 s" in str(error.value)
    assert not [line for line in subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout.splitlines()
                if str(fifo) in line]  # no ffmpeg left behind
    batch = decode_many([DecodeRequest(good), DecodeRequest(str(fifo)), DecodeRequest(good)], DEFAULT_CONFIG,
                        timeout_s=1.0)
    assert isinstance(batch[1], FfmpegTimeout)
    assert batch[0].shape == batch[2].shape == (RATE, 2)


def test_a_playlist_named_wav_does_not_read_the_files_it_lists(tmp_path):
    """An 87-byte HLS playlist named .wav, pointing at another local media file: ffmpeg picks the
    demuxer from the content, and would decode the other file's audio into the shards."""
    (tmp_path / "private").mkdir()
    secret = write_tone(tmp_path / "private" / "secret.flac", 3.0, frequency=440, rate=SOURCE_RATE)
    playlist = tmp_path / "innocent.wav"
    playlist.write_text("#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10.000000,\nprivate/secret.flac\n#EXT-X-ENDLIST\n")
    assert len(playlist.read_bytes()) == 87 and os.path.exists(secret)
    with pytest.raises(DecodeError) as error:
        decode(DecodeRequest(str(playlist)), DEFAULT_CONFIG)
    assert "not on whitelist" in str(error.value) and error.value.reason == "decode_error"
    good = write_tone(tmp_path / "good.flac", 1.0, rate=SOURCE_RATE)
    batch = decode_many([DecodeRequest(good), DecodeRequest(str(playlist))], DEFAULT_CONFIG)
    assert isinstance(batch[1], DecodeError) and batch[0].shape == (RATE, 2)


@pytest.mark.parametrize("name", ["http:127.0.0.1:9.wav", "concat:other.wav", "pipe:0.wav"])
def test_file_names_that_look_like_urls_are_files(name, tmp_path, monkeypatch):
    """With --audio-dir ., ffmpeg would get bare names: "concat:other.wav" would decode other.wav,
    "http:..." would connect."""
    monkeypatch.chdir(tmp_path)
    write_tone(tmp_path / "other.wav", 2.0, frequency=440, rate=SOURCE_RATE)
    write_tone(tmp_path / "tone.wav", 2.0, frequency=1_500, rate=SOURCE_RATE)
    os.rename(tmp_path / "tone.wav", tmp_path / name)
    audio = decode(DecodeRequest(name), DEFAULT_CONFIG)
    assert abs(audio.shape[0] - 2 * RATE) <= 2
    assert abs(dominant_hz(audio) - 1_500) < 2
    (batch, _) = decode_many([DecodeRequest(name), DecodeRequest("other.wav")], DEFAULT_CONFIG)
    np.testing.assert_array_equal(batch, audio)

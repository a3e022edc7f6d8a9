"""--audio-dir on a remote file system (gs:// in production; TensorFlow's in-memory ram:// here):
listed recursively, matched by YTID, copied next to ffmpeg and decoded like a local folder."""
from __future__ import annotations

import uuid

import numpy as np
import pytest
import tensorflow as tf

from audioshards.audio import DecodeRequest, decode_many
from pipeline.config import JobConfig
from pipeline.job import FetchedSegment, segment_audio
from pipeline.segments import Segment, SegmentError, directory_segments, list_audio_files, match_local_files
from tests.signals import write_tone

YTID = "abcdefghijk"


@pytest.fixture
def remote_audio_dir(tmp_path):
    """Two tones of the same file name in two folders, and a tone named by a YTID. (Folder names
    share no prefix with file names: the ram:// file system lists such siblings wrongly.)"""
    root = f"ram://audio-{uuid.uuid4().hex}"
    local = {"one/tone.wav": write_tone(tmp_path / "a.wav", 1.0, frequency=440),
             "two/tone.wav": write_tone(tmp_path / "b.wav", 1.0, frequency=880),
             f"{YTID}.wav": write_tone(tmp_path / "c.wav", 1.0, frequency=660),
             "notes.txt": None}
    for relative, source in local.items():
        tf.io.gfile.makedirs(f"{root}/{relative.rsplit('/', 1)[0]}" if "/" in relative else root)
        if source is None:
            with tf.io.gfile.GFile(f"{root}/{relative}", "w") as handle:
                handle.write("not audio")
        else:
            tf.io.gfile.copy(source, f"{root}/{relative}")
    return root, local


def test_a_remote_folder_is_listed_recursively_with_remote_paths(remote_audio_dir):
    root, _ = remote_audio_dir
    assert list_audio_files(root) == [f"{YTID}.wav", "one/tone.wav", "two/tone.wav"]  # notes.txt is no audio
    assert [s.path for s in directory_segments(root)] == [f"{root}/{r}" for r in list_audio_files(root)]
    matched, unmatched = match_local_files([Segment(YTID, 0.0, 1.0), Segment("zyxwvutsrqp", 0.0, 1.0)], root)
    assert [s.path for s in matched] == [f"{root}/{YTID}.wav"] and [s.ytid for s in unmatched] == ["zyxwvutsrqp"]


def test_a_missing_remote_folder_is_a_clear_error():
    with pytest.raises(SegmentError, match="--audio-dir ram://nowhere-.*: not a directory"):
        list_audio_files(f"ram://nowhere-{uuid.uuid4().hex}")


def test_remote_files_decode_like_their_local_originals_even_with_one_name(remote_audio_dir):
    root, local = remote_audio_dir
    segments = directory_segments(root)
    items = [FetchedSegment(segment, segment.path, from_cache=True) for segment in segments]
    config = JobConfig(split="train", out="unused", cache="unused", audio_dir=root)
    decoded = segment_audio(items, config)
    originals = decode_many([DecodeRequest(local[s.ytid], None, None) for s in segments], config.spectrogram)
    assert len(decoded) == 3
    for ours, theirs in zip(decoded, originals):
        assert isinstance(ours, np.ndarray) and ours.shape[1] == 2
        np.testing.assert_array_equal(ours, theirs)
    assert not np.array_equal(decoded[1], decoded[2])  # one/tone.wav and two/tone.wav stayed two files

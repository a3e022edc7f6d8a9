"""audioshards.storage: local and remote paths, atomic writes, listing."""
from __future__ import annotations

import json
import os
import uuid

import pytest

from audioshards import storage


@pytest.fixture(params=["local", "remote"])
def directory(request, tmp_path):
    if request.param == "local":
        return str(tmp_path)
    # TensorFlow's in-memory file system: a remote path without a network.
    return f"ram://storage-test-{uuid.uuid4().hex}"


@pytest.mark.parametrize("path, remote", [("gs://bucket/shards", True), ("ram://x/y", True),
                                          ("/data/shards", False), ("shards/audioset", False)])
def test_is_remote(path, remote):
    assert storage.is_remote(path) is remote


def test_write_json_atomic_then_read_back(directory):
    path = storage.join(directory, "manifest.json")
    storage.write_json_atomic(path, {"a": [1, 2]})
    assert json.loads(storage.read_bytes(path)) == {"a": [1, 2]}
    storage.write_text_atomic(path, "")  # replaces, and an empty file still exists
    assert storage.exists(path) and storage.read_bytes(path) == b""
    assert storage.glob(storage.join(directory, "*")) == [path]  # no temporary left beside it


def test_a_failed_write_leaves_the_old_file_and_no_temporary(directory):
    path = storage.join(directory, "failures.jsonl")
    storage.write_text_atomic(path, "old\n")
    with pytest.raises(RuntimeError), storage.atomic_target(path, tag="train") as temporary:
        assert ".tmp-train-" in temporary
        storage.write_bytes_atomic(temporary, b"half")  # as a writer would, before being killed
        raise RuntimeError("killed")
    assert storage.read_bytes(path) == b"old\n"
    assert storage.glob(storage.join(directory, "*")) == [path]


def test_publish_moves_a_complete_local_file(directory, tmp_path):
    local = tmp_path / "scratch.m4a"
    local.write_bytes(b"audio")
    final = storage.join(directory, "cached.m4a")
    storage.publish(str(local), final)
    assert storage.read_bytes(final) == b"audio"
    storage.remove(final)
    storage.remove(final)  # removing a missing file is not an error
    assert not storage.exists(final)


def test_list_files_is_recursive_sorted_relative_and_filtered(tmp_path):
    for name in ("b/x.WAV", "a/y.flac", "a/notes.txt", "z.mp3"):
        os.makedirs(tmp_path / os.path.dirname(name), exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    assert storage.list_files(str(tmp_path), {".wav", ".flac", ".mp3"}) == ["a/y.flac", "b/x.WAV", "z.mp3"]
    with pytest.raises(NotADirectoryError):
        storage.list_files(str(tmp_path / "z.mp3"), {".mp3"})

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


def test_list_files_is_recursive_sorted_relative_and_filtered(directory):
    # Folder names share no prefix with file names: ram:// lists such siblings wrongly.
    for name in ("b/x.WAV", "c/y.flac", "c/notes.txt", "z.mp3"):
        storage.makedirs(storage.join(directory, name.rsplit("/", 1)[0]) if "/" in name else directory)
        storage.write_bytes_atomic(storage.join(directory, name), b"")
    assert storage.list_files(directory, {".wav", ".flac", ".mp3"}) == ["b/x.WAV", "c/y.flac", "z.mp3"]
    with pytest.raises(NotADirectoryError):
        storage.list_files(storage.join(directory, "z.mp3"), {".mp3"})


def test_files_are_listed_opened_aged_and_copied_alike_locally_and_remotely(directory, tmp_path):
    folder = storage.join(directory, "deep/er")
    storage.makedirs(folder)
    storage.makedirs(folder)  # an existing folder is fine
    path = storage.join(folder, "a.bin")
    with storage.atomic_target(path) as temporary, storage.open_write(temporary) as handle:
        handle.write(b"\x00\x01")
    with storage.open_read(path) as handle:
        assert handle.read() == b"\x00\x01"
    assert storage.listdir(folder) == ["a.bin"]
    age = storage.age_s(path)
    assert age >= 0 and (storage.is_remote(path) or age < 60)  # ram:// keeps no modification times
    assert storage.age_s(storage.join(folder, "gone")) is None
    storage.copy(path, str(tmp_path / "local.bin"))
    storage.copy(str(tmp_path / "local.bin"), storage.join(folder, "b.bin"))
    assert storage.read_bytes(storage.join(folder, "b.bin")) == b"\x00\x01"
    with pytest.raises(FileNotFoundError):
        storage.open_read(storage.join(folder, "missing.bin"))
    with pytest.raises(FileNotFoundError):
        storage.read_bytes(storage.join(folder, "missing.bin"))

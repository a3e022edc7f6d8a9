"""Where files live: local paths, or ``scheme://`` paths (``gs://``, ``ram://``) through
``tf.io.gfile``; and how a whole file is written so that a reader never sees half of it.

Every writer of MyGO goes through :func:`write_text_atomic` (or :func:`publish`, for a file already
complete on local disk): the shard job's manifests and failure lists, the fetch cache, the
trainer's config and metrics, the encoder export. A temporary name next to the target, then a
rename: a killed writer leaves a ``.tmp-`` file (which the shard job's clean-up recognises, see
:func:`audioshards.shards.is_own_debris`), never a truncated target. TensorFlow is imported only
for remote paths, so local work does not pay for it.
"""
from __future__ import annotations

import contextlib
import glob as _glob
import json
import os
import random
import shutil
import time
import uuid
from pathlib import Path
from typing import Any, BinaryIO, Iterable, Iterator


def is_remote(path: str) -> bool:
    """A path of a remote file system (``gs://bucket/...``, ``ram://...``), read through tf.io.gfile."""
    return "://" in path


def gfile():
    """``tf.io.gfile``, imported when first needed (remote paths only, or shard files)."""
    import tensorflow as tf

    return tf.io.gfile


def join(directory: str, name: str) -> str:
    if is_remote(directory):
        return f"{directory.rstrip('/')}/{name}"
    return os.path.join(directory, name)


def exists(path: str) -> bool:
    return gfile().exists(path) if is_remote(path) else os.path.exists(path)


def remove(path: str) -> None:
    """Removes a file if it exists (also when another process removed it first)."""
    if not is_remote(path):
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)
    elif gfile().exists(path):
        try:
            gfile().remove(path)
        except Exception as error:  # tf.errors.NotFoundError: gone meanwhile
            if type(error).__name__ != "NotFoundError":
                raise


def read_bytes(path: str) -> bytes:
    """A whole file's bytes; FileNotFoundError if it does not exist."""
    with open_read(path) as handle:
        return handle.read()


def open_read(path: str) -> BinaryIO:
    """A binary file open for reading; FileNotFoundError names a missing one (gfile would fail
    only at the first read)."""
    if not is_remote(path):
        return open(path, "rb")
    if not gfile().exists(path):
        raise FileNotFoundError(path)
    return gfile().GFile(path, "rb")


def open_write(path: str) -> BinaryIO:
    """A binary file open for writing (use under :func:`atomic_target`)."""
    return gfile().GFile(path, "wb") if is_remote(path) else open(path, "wb")


def makedirs(directory: str) -> None:
    if is_remote(directory):
        gfile().makedirs(directory)
    else:
        os.makedirs(directory, exist_ok=True)


def listdir(directory: str) -> list[str]:
    """Sorted names of the entries of ``directory``."""
    return sorted(gfile().listdir(directory) if is_remote(directory) else os.listdir(directory))


def age_s(path: str) -> float | None:
    """Seconds since ``path`` was last modified; None if it is gone."""
    try:
        modified = gfile().stat(path).mtime_nsec / 1e9 if is_remote(path) else os.stat(path).st_mtime
    except FileNotFoundError:
        return None
    except Exception as error:  # tf.errors.NotFoundError, without importing TensorFlow to name it
        if type(error).__name__ == "NotFoundError":
            return None
        raise
    return time.time() - modified


def copy(source: str, target: str) -> None:
    """Copies a file between any two file systems (overwriting ``target``)."""
    if is_remote(source) or is_remote(target):
        gfile().copy(source, target, overwrite=True)
    else:
        shutil.copyfile(source, target)


def glob(pattern: str) -> list[str]:
    """Sorted paths matching ``pattern`` (escape literal parts with :func:`glob.escape`)."""
    return sorted(gfile().glob(pattern) if is_remote(pattern) else _glob.glob(pattern))


def list_files(directory: str, suffixes: Iterable[str]) -> list[str]:
    """Files under ``directory`` (recursively; local or remote) whose lower-case suffix is one of
    ``suffixes``, as sorted POSIX paths relative to it. Raises NotADirectoryError."""
    wanted = frozenset(suffixes)
    if is_remote(directory):
        root = directory.rstrip("/")
        if not gfile().isdir(root):
            raise NotADirectoryError(directory)
        found = []
        for folder, _, files in gfile().walk(root):
            prefix = folder.rstrip("/")[len(root):].strip("/")
            found.extend(f"{prefix}/{name}" if prefix else name for name in files
                         if os.path.splitext(name)[1].lower() in wanted)
        return sorted(found)
    local_root = Path(directory)
    if not local_root.is_dir():
        raise NotADirectoryError(directory)
    found = []
    for folder, subfolders, files in os.walk(local_root):
        subfolders.sort()
        found.extend((Path(folder) / name).relative_to(local_root).as_posix() for name in files
                     if Path(name).suffix.lower() in wanted)
    return sorted(found)


# ---- atomic writes ----------------------------------------------------------------------------

@contextlib.contextmanager
def atomic_target(path: str, *, tag: str = "") -> Iterator[str]:
    """A temporary name next to ``path`` to write the whole file under; renamed to ``path`` when
    the block ends normally, removed when it raises. ``tag`` (a split) goes into the temporary
    name, so a job cleaning up after a killed run of its split can tell its own debris from a
    temporary file another split's running job is about to rename."""
    temporary = f"{path}.tmp-{tag + '-' if tag else ''}{uuid.uuid4().hex}"
    try:
        yield temporary
        if is_remote(path):
            gfile().rename(temporary, path, overwrite=True)
        else:
            os.replace(temporary, path)
    finally:
        if exists(temporary):
            remove(temporary)


def write_bytes_atomic(path: str, data: bytes, *, tag: str = "") -> None:
    """Write a whole file under a temporary name, then rename it into place."""
    with atomic_target(path, tag=tag) as temporary, open_write(temporary) as handle:
        handle.write(data)
        handle.flush()  # GFile creates nothing for an empty write without it


def write_text_atomic(path: str, text: str, *, tag: str = "") -> None:
    write_bytes_atomic(path, text.encode("utf-8"), tag=tag)


def write_json_atomic(path: str, value: Any, *, tag: str = "") -> None:
    write_text_atomic(path, json.dumps(value, indent=1) + "\n", tag=tag)


def publish(local_path: str, final_path: str) -> None:
    """Moves a complete local file to ``final_path`` atomically: a rename when it is local, a
    copy to a temporary name and a rename on a remote file system (which has no cross-system
    move)."""
    if not is_remote(final_path):
        os.replace(local_path, final_path)
        return
    temporary = f"{final_path}.tmp-{os.getpid()}-{random.getrandbits(32):08x}"
    gfile().copy(local_path, temporary, overwrite=True)
    gfile().rename(temporary, final_path, overwrite=True)

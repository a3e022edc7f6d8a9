"""The cache's layout: where a segment's audio and failure record live, how they are read, and the
work directories downloads happen in (made, cleaned up, and swept after killed workers).

One entry per YTID and range, ``<ytid>_<start ms>_<end ms>.<ext>`` (the audio) or
``<ytid>_<start ms>_<end ms>.failure.json`` (the last failure); work directories are hidden,
``.<stem>.<host>-<pid>-<random>.tmp``, so that a sweep can tell a dead worker's from a running
one's. Every name is built from a checked YTID and range (:func:`validate_segment`): no CSV value
can steer a path out of the cache.
"""
from __future__ import annotations

import contextlib
import dataclasses
import glob
import json
import logging
import math
import os
import re
import shutil
import socket
import tempfile
import time
from typing import Iterator

from audioshards import storage
from pipeline.fetch.cache_writes import write_text_staged
from pipeline.fetch.config import Failure
from pipeline.segments import YTID_PATTERN

logger = logging.getLogger(__name__)

FAILURE_SUFFIX = ".failure.json"
# Temporary download directories older than this are debris of killed workers.
STALE_TMP_S = 3600.0


def segment_stem(ytid: str, start_s: float, end_s: float) -> str:
    """Cache name of a segment without extension: ``<ytid>_<start ms>_<end ms>``."""
    return f"{ytid}_{round(start_s * 1000)}_{round(end_s * 1000)}"


def validate_segment(ytid: str, start_s: float, end_s: float) -> None:
    """Refuses anything that is not AudioSet's id form or a sane range, so no CSV value can steer
    a path out of the cache or into a command."""
    if not isinstance(ytid, str) or not YTID_PATTERN.match(ytid):
        raise ValueError(f"invalid YouTube id {ytid!r}: expected 11 characters of A-Za-z0-9_-")
    if not (math.isfinite(start_s) and math.isfinite(end_s)) or start_s < 0 or end_s <= start_s:
        raise ValueError(f"invalid segment [{start_s}, {end_s}] for {ytid}: need 0 <= start < end")


def _list_stem(cache_dir: str, stem: str) -> list[str]:
    return storage.glob(storage.join(cache_dir, glob.escape(stem) + ".*"))


def cached_segment(ytid: str, start_s: float, end_s: float, cache_dir: str) -> str | None:
    """The cached audio file of a segment, or None."""
    validate_segment(ytid, start_s, end_s)
    for path in _list_stem(cache_dir, segment_stem(ytid, start_s, end_s)):
        if not path.endswith(FAILURE_SUFFIX) and ".tmp-" not in path:
            return path
    return None


def read_failure(ytid: str, start_s: float, end_s: float, cache_dir: str) -> Failure | None:
    """The failure recorded for a segment, or None (an unreadable record counts as none)."""
    validate_segment(ytid, start_s, end_s)
    path = storage.join(cache_dir, segment_stem(ytid, start_s, end_s) + FAILURE_SUFFIX)
    if not storage.exists(path):
        return None
    try:
        record = json.loads(storage.read_bytes(path))
        return Failure(reason=str(record["reason"]), permanent=bool(record["permanent"]),
                       message=str(record["message"]), attempts=int(record["attempts"]),
                       time=str(record["time"]))
    except (ValueError, KeyError, TypeError) as error:
        logger.warning("ignoring unreadable failure record %s: %s", path, error)
        return None


def record_failure(cache_dir: str, ytid: str, start_s: float, end_s: float, failure: Failure,
                   work_dir: str) -> None:
    """Writes the failure record of a segment (the segment, then the fields of ``failure``), which
    :func:`read_failure` reads back and the next run consults."""
    record = {"ytid": ytid, "start_s": start_s, "end_s": end_s, **dataclasses.asdict(failure)}
    write_text_staged(cache_dir, segment_stem(ytid, start_s, end_s) + FAILURE_SUFFIX,
                      json.dumps(record, indent=1) + "\n", work_dir)


def publish_segment(local: str, cache_dir: str, stem: str) -> str:
    """Moves a complete, checked download into the cache as the segment's entry (its extension
    kept) and removes any failure record of the segment: a success ends a failure's story.
    Returns the cached path."""
    final = storage.join(cache_dir, stem + os.path.splitext(local)[1])
    storage.publish(local, final)
    storage.remove(storage.join(cache_dir, stem + FAILURE_SUFFIX))
    return final


# ---- work directories ----------------------------------------------------------------------------

# Work directories are named after their host and process, so that a sweep can tell a dead
# worker's (SIGKILL) from a running one's: .<stem>.<host>-<pid>-<random>.tmp
_HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:40] or "host"
_WORK_DIR_PATTERN = re.compile(r"^\.[^/]+_\d+_\d+\.(?:(?P<host>[A-Za-z0-9-]+)-(?P<pid>\d+)-)?[^/.]*\.tmp$")
_swept: set[str] = set()


@contextlib.contextmanager
def work_directory(cache_dir: str, stem: str) -> Iterator[str]:
    """A fresh local directory for the downloads of one fetch, deleted when the block ends.

    Inside a local cache (so that publishing is a rename), where old ones of the same segment are
    removed first; in the system's temporary directory for a remote cache. The first call of a
    process in a directory sweeps it (see :func:`_sweep_once`). Raises OSError when the cache
    cannot be made.
    """
    work_parent = None if storage.is_remote(cache_dir) else cache_dir
    if work_parent is not None:
        os.makedirs(cache_dir, exist_ok=True)
        _remove_stale_temporaries(cache_dir, stem)
    _sweep_once(work_parent or tempfile.gettempdir())
    work_dir = tempfile.mkdtemp(prefix=f".{stem}.{_owner()}-", suffix=".tmp", dir=work_parent)
    try:
        yield work_dir
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)


def _remove_stale_temporaries(cache_dir: str, stem: str) -> None:
    """Deletes old temporary directories of this segment left by killed workers (recent ones may
    belong to a worker still running)."""
    for path in glob.glob(os.path.join(cache_dir, f".{glob.escape(stem)}.*.tmp")):
        try:
            if time.time() - os.path.getmtime(path) > STALE_TMP_S:
                shutil.rmtree(path, ignore_errors=True)
        except OSError:
            pass


def _owner() -> str:
    return f"{_HOST}-{os.getpid()}"  # at call time: a forked worker has its own pid


def _sweep_once(directory: str) -> None:
    """Once per process and directory (so at a worker's first fetch, i.e. when a job starts):
    deletes the work directories, with any private cookie copy in them, of workers of this host
    that are gone (killed with SIGKILL, which no ``finally`` survives). Another host's, or one
    named the old way, goes when older than STALE_TMP_S. Only names of our work directories are
    looked at (the directory may be the system's temporary directory, for a remote cache)."""
    if directory in _swept:
        return
    _swept.add(directory)
    for path in glob.glob(os.path.join(glob.escape(directory), ".*.tmp")):
        match = _WORK_DIR_PATTERN.match(os.path.basename(path))
        if not match or not os.path.isdir(path):
            continue
        try:
            if match["host"] == _HOST:
                if int(match["pid"]) != os.getpid() and not _alive(int(match["pid"])):
                    logger.info("removing %s, left by a killed worker", path)
                    shutil.rmtree(path, ignore_errors=True)
            elif time.time() - os.path.getmtime(path) > STALE_TMP_S:
                shutil.rmtree(path, ignore_errors=True)
        except OSError:
            pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True

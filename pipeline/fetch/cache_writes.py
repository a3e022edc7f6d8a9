"""How the fetch writes to its cache, local or remote, and when it gives up on it.

A file is written whole in the fetch's local work directory and then published into the cache
with :func:`audioshards.storage.publish` (a rename on a local cache, a copy and a rename on a
remote one), so a reader never sees half of it and a killed worker's debris stays in its work
directory, which the next start sweeps. A cache that takes no write at all stops the worker
(:class:`CacheUnwritable`, counted by :class:`LocalIoCounter`) instead of failing every segment
of the split.
"""
from __future__ import annotations

import os
import threading

from audioshards import storage


class CacheUnwritable(OSError):
    """Writes to the cache kept failing: the job stops rather than record every segment as a
    local_io failure."""


class LocalIoCounter:
    """The rule that stops a job whose cache cannot be written: ``local_io_limit`` (20) fetches in
    a row in one worker process failed to write to the cache, with no fetch in between that
    wrote its audio or its failure record. A cache that is full now and then only costs the
    segments that met it (transient failures, retried by the next run); one that takes no write
    at all stops the job after 20 segments instead of failing every segment of the split."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.in_a_row = 0

    def failed(self, cache_dir: str, message: str, limit: int) -> None:
        """Counts a fetch that could not write; raises CacheUnwritable at the ``limit``-th in a row."""
        with self.lock:
            self.in_a_row += 1
            if self.in_a_row < limit:
                return
            self.in_a_row = 0
        raise CacheUnwritable(f"{limit} fetches in a row could not write to the cache {cache_dir}, the last: "
                              f"{message}. Free space or fix its permissions, then run the same command again.")

    def succeeded(self) -> None:
        """A fetch that wrote to the cache (or needed no write) ends the series."""
        with self.lock:
            self.in_a_row = 0


#: The count of this worker process (its threads share it).
LOCAL_IO = LocalIoCounter()


def write_text_staged(cache_dir: str, name: str, text: str, work_dir: str) -> None:
    """Writes ``text`` as ``cache_dir/name``: whole in the local ``work_dir`` first, then published
    (audioshards.storage's own atomic writes stage next to the target, in the cache itself)."""
    local = os.path.join(work_dir, name)
    with open(local, "w", encoding="utf-8") as handle:
        handle.write(text)
    storage.publish(local, storage.join(cache_dir, name))

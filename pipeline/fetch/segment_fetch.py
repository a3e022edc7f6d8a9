"""The entry point, :func:`fetch_segment`: one segment through the cache.

It answers from the cache when it can; otherwise it downloads in a work directory (with the
retries) and keeps the cache's write errors from failing the job one segment at a time: a write
error is a transient ``local_io`` failure, and the worker stops (``CacheUnwritable``) when
the cache takes no write at all.
"""
from __future__ import annotations

import logging
import os

from audioshards import storage
from pipeline.fetch.cache import cached_segment, read_failure, segment_stem, validate_segment, work_directory
from pipeline.fetch.cache_writes import LOCAL_IO
from audioshards.shards import utc_now
from pipeline.fetch.config import Failure, FetchConfig, FetchResult
from pipeline.fetch.credentials import clean_message, cookie_bytes
from pipeline.fetch.retry import fetch_with_retries

logger = logging.getLogger(__name__)


def fetch_segment(ytid: str, start_s: float, end_s: float, cache_dir: str,
                  config: FetchConfig) -> FetchResult:
    """Returns the cached audio of [start_s, end_s] of ``ytid``, downloading it when needed.

    Never raises for a problem of the video, the network or the cache's disk: those come back as
    a :class:`Failure` (and are recorded in the cache when it can be written). Raises ValueError
    for an invalid id or range and FileNotFoundError for a missing cookies file (mistakes of the
    caller), and :class:`~pipeline.fetch.cache_writes.CacheUnwritable` when writes to the cache keep failing (see
    :class:`pipeline.fetch.cache_writes.LocalIoCounter`).
    """
    validate_segment(ytid, start_s, end_s)
    if not config.url_template:
        raise ValueError("FetchConfig.url_template is empty: there is nowhere to fetch from")
    if config.cookies:
        cookie_bytes(config.cookies)  # read once per process; raises when missing
    if not storage.is_remote(cache_dir):
        cache_dir = os.path.abspath(cache_dir)  # paths handed on must not depend on the cwd
    stem = segment_stem(ytid, start_s, end_s)
    if end_s - start_s > config.max_seconds:
        # The CSV's fault, not the video's: not recorded in the cache (a larger --max-seconds
        # fetches it), and nothing is downloaded.
        return FetchResult(path=None, cached=False, failure=Failure(
            "too_long", True, f"the segment [{start_s:g}, {end_s:g}] is longer than {config.max_seconds:g} s "
            f"(--max-seconds)", 0, utc_now()))

    path = cached_segment(ytid, start_s, end_s, cache_dir)
    if path is not None:
        logger.debug("cached: %s", path)
        return FetchResult(path=path, failure=None, cached=True)
    previous = read_failure(ytid, start_s, end_s, cache_dir)
    if previous is not None and previous.permanent and not config.retry_failed:
        logger.debug("cached permanent failure for %s: %s", stem, previous.reason)
        return FetchResult(path=None, failure=previous, cached=True)

    try:
        with work_directory(cache_dir, stem) as work_dir:
            result = fetch_with_retries(ytid, start_s, end_s, cache_dir, stem, config, work_dir)
    except OSError as error:  # the cache cannot be written: a full disk, a quota, permissions
        failure = Failure("local_io", False, clean_message(f"{type(error).__name__}: {error}", config),
                          1, utc_now())
        logger.warning("failed %s: local_io (transient): %s", stem, failure.message)
        LOCAL_IO.failed(cache_dir, failure.message, config.local_io_limit)
        return FetchResult(path=None, failure=failure, cached=False)
    if result.failure is not None and result.failure.reason == "local_io":
        LOCAL_IO.failed(cache_dir, result.failure.message, config.local_io_limit)
    else:
        LOCAL_IO.succeeded()
    return result

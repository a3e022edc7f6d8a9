"""The attempts of one fetch: up to ``retries`` downloads, a transient failure retried after an
exponential back-off, the winner published into the cache, the last failure recorded in it.

One place decides about retries: here, with the classified reason (yt-dlp's own retries are off).
A permanent failure is not retried, nor is a full disk (it does not empty itself in seconds: the
next run retries it).
"""
from __future__ import annotations

import logging
import os
import random
import time

from pipeline.fetch.cache import publish_segment, record_failure
from audioshards.shards import utc_now
from pipeline.fetch.config import Failure, FetchConfig, FetchResult
from pipeline.fetch.download import download_segment
from pipeline.fetch.errors import FetchError

logger = logging.getLogger(__name__)


def backoff_delay(first_s: float, attempt: int) -> float:
    """Seconds to wait after failed attempt ``attempt`` (1, 2, ...): ``first_s`` doubled each
    attempt, plus up to 10 % at random, which de-synchronises parallel workers."""
    delay = first_s * 2 ** (attempt - 1)
    return delay + random.uniform(0, 0.1 * delay)


def fetch_with_retries(ytid: str, start_s: float, end_s: float, cache_dir: str, stem: str,
                       config: FetchConfig, work_dir: str) -> FetchResult:
    """Downloads the segment into ``work_dir`` (one sub-directory per attempt) and publishes it as
    ``stem`` in ``cache_dir``; or records and returns the last failure. OSErrors of the cache
    propagate (the caller makes them local_io failures)."""
    failure: Failure | None = None
    for attempt in range(1, config.retries + 1):
        if config.sleep_interval > 0:
            time.sleep(config.sleep_interval)
        attempt_dir = os.path.join(work_dir, f"attempt{attempt}")
        os.makedirs(attempt_dir)
        started = time.monotonic()
        try:
            local = download_segment(ytid, start_s, end_s, config, attempt_dir)
        except FetchError as error:
            failure = Failure(reason=error.reason, permanent=error.permanent, message=error.message,
                              attempts=attempt, time=utc_now())
            if error.permanent or error.reason == "local_io" or attempt == config.retries:
                break  # a full disk does not empty itself in seconds: the next run retries
            delay = backoff_delay(config.backoff_s, attempt)
            logger.info("%s: %s (attempt %d of %d), retrying in %.1f s",
                        stem, error.reason, attempt, config.retries, delay)
            time.sleep(delay)
            continue
        size = os.path.getsize(local)
        final = publish_segment(local, cache_dir, stem)
        logger.debug("fetched %s (%d bytes, %.1f s, attempt %d)", final, size,
                     time.monotonic() - started, attempt)
        return FetchResult(path=final, failure=None, cached=False)

    assert failure is not None
    record_failure(cache_dir, ytid, start_s, end_s, failure, work_dir)
    # Permanent failures are the normal fate of a share of AudioSet (videos go away): INFO, and
    # failures.jsonl has them all; running out of retries deserves a WARNING.
    logger.log(logging.INFO if failure.permanent else logging.WARNING,
               "failed %s: %s (%s, %d attempt(s)): %s", stem, failure.reason,
               "permanent" if failure.permanent else "transient", failure.attempts,
               failure.message)
    return FetchResult(path=None, failure=failure, cached=False)

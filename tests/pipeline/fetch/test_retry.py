"""pipeline.fetch.retry: transient failures are retried with exponential back-off, permanent ones
are not, and the last failure is recorded in the cache."""
from __future__ import annotations

import datetime
import json
import logging
import os
import time

import pytest

from pipeline.fetch import FAILURE_SUFFIX, fetch_segment, read_failure, segment_stem
from pipeline.fetch.retry import backoff_delay
from tests.audio_corpus import RATE_LIMITED_REQUESTS
from tests.pipeline.fetch.helpers import config_for


@pytest.mark.parametrize("kind", ["missing", "corrupt"])
def test_failing_segments(kind, audio_corpus, make_audio_server, tmp_path):
    server = make_audio_server()
    segment = audio_corpus.by_kind(kind)
    result = fetch_segment(segment.ytid, segment.start_s, segment.end_s, str(tmp_path),
                           config_for(server, retries=3))

    assert result.path is None and result.cached is False
    failure = result.failure
    assert (failure.reason, failure.permanent) == segment.fetch_failure
    assert failure.attempts == 1  # permanent: not retried
    recorded = datetime.datetime.fromisoformat(failure.time)
    assert recorded.utcoffset() == datetime.timedelta(0)  # ISO-8601, UTC
    assert abs(time.time() - recorded.timestamp()) < 300
    record_path = tmp_path / (segment_stem(segment.ytid, 0.0, 10.0) + FAILURE_SUFFIX)
    record = json.loads(record_path.read_text())
    assert record["ytid"] == segment.ytid and record["reason"] == failure.reason
    assert record["permanent"] is True and record["message"] == failure.message
    assert os.listdir(tmp_path) == [record_path.name]
    if kind == "missing":
        assert "404" in failure.message
        assert [(r.ytid, r.status) for r in server.requests] == [(segment.ytid, 404)]


def test_rate_limited_then_succeeds_after_back_off(audio_corpus, rate_limited_server, tmp_path,
                                                   caplog):
    caplog.set_level(logging.INFO, logger="pipeline.fetch")
    segment = audio_corpus.by_kind("wav_s16_mono_16k")
    started = time.monotonic()
    result = fetch_segment(segment.ytid, 0.0, 10.0, str(tmp_path),
                           config_for(rate_limited_server, retries=4, backoff_s=0.1))
    elapsed = time.monotonic() - started

    assert result.failure is None and result.path is not None
    statuses = [request.status for request in rate_limited_server.requests]
    assert statuses[:RATE_LIMITED_REQUESTS] == [429] * RATE_LIMITED_REQUESTS
    assert set(statuses[RATE_LIMITED_REQUESTS:]) <= {200, 206}
    assert elapsed >= 0.1 + 0.2  # two back-offs, the second twice the first
    assert "rate_limited (attempt 1 of 4), retrying in 0.1" in caplog.text
    assert "rate_limited (attempt 2 of 4), retrying in 0.2" in caplog.text
    assert not (tmp_path / (segment_stem(segment.ytid, 0.0, 10.0) + FAILURE_SUFFIX)).exists()


def test_rate_limited_with_too_few_retries_is_a_transient_failure(audio_corpus,
                                                                  rate_limited_server, tmp_path):
    segment = audio_corpus.by_kind("wav_s16_mono_16k")
    result = fetch_segment(segment.ytid, 0.0, 10.0, str(tmp_path),
                           config_for(rate_limited_server, retries=RATE_LIMITED_REQUESTS))
    failure = result.failure
    assert (failure.reason, failure.permanent) == ("rate_limited", False)
    assert failure.attempts == RATE_LIMITED_REQUESTS
    assert "429" in failure.message
    assert rate_limited_server.request_count == RATE_LIMITED_REQUESTS
    assert read_failure(segment.ytid, 0.0, 10.0, str(tmp_path)) == failure


def test_sleep_interval_is_slept_before_downloading(audio_corpus, audio_server, tmp_path):
    segment = audio_corpus.by_kind("short_3s")
    started = time.monotonic()
    fetch_segment(segment.ytid, 0.0, 10.0, str(tmp_path), config_for(audio_server,
                                                                     sleep_interval=0.5))
    assert time.monotonic() - started >= 0.5
    started = time.monotonic()
    fetch_segment(segment.ytid, 0.0, 10.0, str(tmp_path), config_for(audio_server,
                                                                     sleep_interval=0.5))
    assert time.monotonic() - started < 0.5  # cached: no download, no sleep


@pytest.mark.parametrize("attempt, base", [(1, 2.0), (2, 4.0), (3, 8.0), (4, 16.0)])
def test_backoff_doubles_each_attempt_with_up_to_ten_percent_of_jitter(attempt, base):
    delays = [backoff_delay(2.0, attempt) for _ in range(200)]
    assert all(base <= delay <= 1.1 * base for delay in delays)
    assert len(set(delays)) > 1  # parallel workers do not retry in step
    assert backoff_delay(0.0, attempt) == 0.0

"""pipeline.fetch.cache: what is cached is served again, failure records decide what is retried,
names come from checked YTIDs and ranges only, and work directories of killed workers are swept."""
from __future__ import annotations

import dataclasses
import glob
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from pipeline.fetch import (FAILURE_SUFFIX, STALE_TMP_S, Failure, cached_segment, fetch_segment, read_failure,
                            segment_stem)
from tests.pipeline.fetch.helpers import (COOKIE, REPOSITORY, StallingServer, config_for, decode,
                                          single_attempt_config)


# ---- what the cache holds ------------------------------------------------------------------------

def test_second_call_is_served_from_the_cache(audio_corpus, make_audio_server, tmp_path):
    server = make_audio_server()
    segment = audio_corpus.by_kind("mp3")
    first = fetch_segment(segment.ytid, 0.0, 10.0, str(tmp_path), config_for(server))
    assert first.cached is False and server.request_count > 0
    server.reset()
    second = fetch_segment(segment.ytid, 0.0, 10.0, str(tmp_path), config_for(server))
    assert second == dataclasses.replace(first, cached=True)
    assert server.request_count == 0
    # Another range of the same video is another entry.
    third = fetch_segment(segment.ytid, 1.0, 9.0, str(tmp_path), config_for(server))
    assert third.cached is False and third.path != first.path and server.request_count > 0


def test_permanent_failure_is_not_retried_unless_asked(audio_corpus, make_audio_server, tmp_path):
    server = make_audio_server()
    segment = audio_corpus.by_kind("missing")
    first = fetch_segment(segment.ytid, 0.0, 10.0, str(tmp_path), config_for(server))
    assert first.failure.permanent and server.request_count == 1

    server.reset()
    again = fetch_segment(segment.ytid, 0.0, 10.0, str(tmp_path), config_for(server))
    assert again.cached is True and again.failure == first.failure
    assert server.request_count == 0

    retried = fetch_segment(segment.ytid, 0.0, 10.0, str(tmp_path),
                            config_for(server, retry_failed=True))
    assert retried.cached is False and retried.failure.reason == "not_found"
    assert server.request_count == 1


def test_transient_failure_is_retried_on_the_next_call(audio_corpus, make_audio_server, tmp_path):
    server = make_audio_server(fail_first=100)
    segment = audio_corpus.by_kind("ogg_vorbis")
    first = fetch_segment(segment.ytid, 0.0, 10.0, str(tmp_path), config_for(server, retries=1))
    assert first.failure.reason == "rate_limited" and not first.failure.permanent
    assert read_failure(segment.ytid, 0.0, 10.0, str(tmp_path)) == first.failure

    server.reset(fail_first=0)
    second = fetch_segment(segment.ytid, 0.0, 10.0, str(tmp_path), config_for(server, retries=1))
    assert second.failure is None and second.cached is False and server.request_count > 0
    assert read_failure(segment.ytid, 0.0, 10.0, str(tmp_path)) is None  # stale record removed
    assert os.listdir(tmp_path) == [os.path.basename(second.path)]


def test_success_after_retry_failed_removes_the_permanent_record(audio_corpus, make_audio_server,
                                                                 tmp_path):
    server = make_audio_server()
    segment = audio_corpus.by_kind("short_3s")
    stem = segment_stem(segment.ytid, 0.0, 10.0)
    # As if an earlier run had found the video gone (it came back since).
    (tmp_path / (stem + FAILURE_SUFFIX)).write_text(json.dumps({
        "ytid": segment.ytid, "start_s": 0.0, "end_s": 10.0, "reason": "removed",
        "permanent": True, "message": "This video has been removed by the uploader",
        "attempts": 1, "time": "2026-01-01T00:00:00+00:00"}))
    cached = fetch_segment(segment.ytid, 0.0, 10.0, str(tmp_path), config_for(server))
    assert cached.cached and cached.failure.reason == "removed" and server.request_count == 0

    result = fetch_segment(segment.ytid, 0.0, 10.0, str(tmp_path),
                           config_for(server, retry_failed=True))
    assert result.failure is None and result.path is not None
    assert not (tmp_path / (stem + FAILURE_SUFFIX)).exists()


def test_remote_cache_through_gfile(audio_corpus, make_audio_server):
    """A ``scheme://`` cache (gs:// in production) goes through tf.io.gfile; TensorFlow's
    in-memory file system stands in for GCS here."""
    tf = pytest.importorskip("tensorflow")
    server = make_audio_server()
    cache = f"ram://fetch-test-{os.getpid()}-{time.time_ns()}"
    good, missing = audio_corpus.by_kind("ogg_vorbis"), audio_corpus.by_kind("missing")
    result = fetch_segment(good.ytid, 0.0, 10.0, cache, config_for(server))
    failure = fetch_segment(missing.ytid, 0.0, 10.0, cache, config_for(server)).failure
    assert result.path == f"{cache}/{good.ytid}_0_10000.ogg"
    with tf.io.gfile.GFile(result.path, "rb") as cached:
        assert cached.read()[:4] == b"OggS"
    assert sorted(tf.io.gfile.listdir(cache)) == sorted(
        [f"{good.ytid}_0_10000.ogg", f"{missing.ytid}_0_10000{FAILURE_SUFFIX}"])

    server.reset()
    assert fetch_segment(good.ytid, 0.0, 10.0, cache, config_for(server)) == \
        dataclasses.replace(result, cached=True)
    assert fetch_segment(missing.ytid, 0.0, 10.0, cache, config_for(server)).failure == failure
    assert server.request_count == 0


def test_segment_stem_is_the_ytid_and_the_range_in_milliseconds():
    assert segment_stem("--aE2O5G5WE", 0.0, 10.0) == "--aE2O5G5WE_0_10000"
    assert segment_stem("--aE2O5G5WE", 12.3456, 19.5) == "--aE2O5G5WE_12346_19500"


def test_cached_segment_is_the_audio_file_only(tmp_path):
    stem = segment_stem("--aE2O5G5WE", 0.0, 10.0)
    assert cached_segment("--aE2O5G5WE", 0.0, 10.0, str(tmp_path)) is None
    (tmp_path / (stem + FAILURE_SUFFIX)).write_text("{}")
    (tmp_path / f"{stem}.ogg.tmp-1234").write_bytes(b"half a file")
    assert cached_segment("--aE2O5G5WE", 0.0, 10.0, str(tmp_path)) is None
    (tmp_path / f"{stem}.ogg").write_bytes(b"OggS")
    assert cached_segment("--aE2O5G5WE", 0.0, 10.0, str(tmp_path)) == str(tmp_path / f"{stem}.ogg")


def test_an_unreadable_failure_record_counts_as_none(tmp_path, caplog):
    record = tmp_path / (segment_stem("--aE2O5G5WE", 0.0, 10.0) + FAILURE_SUFFIX)
    record.write_text(json.dumps({"reason": "removed", "permanent": True, "message": "gone", "attempts": 1,
                                  "time": "2026-01-01T00:00:00+00:00"}))
    assert read_failure("--aE2O5G5WE", 0.0, 10.0, str(tmp_path)) == Failure(
        "removed", True, "gone", 1, "2026-01-01T00:00:00+00:00")
    for broken in ("{not json", json.dumps({"reason": "removed"})):
        record.write_text(broken)
        with caplog.at_level(logging.WARNING, logger="pipeline.fetch"):
            assert read_failure("--aE2O5G5WE", 0.0, 10.0, str(tmp_path)) is None
        assert "ignoring unreadable failure record" in caplog.text


# ---- untrusted names -----------------------------------------------------------------------------

@pytest.mark.parametrize("ytid", ["../../etc/pw", "../../../tmp", "abc", "AAAAAAAAAAAA",
                                  "AAAAAAAAA/A", "AAAAAAAAA.A", "AAAAAAAAA A", "", "AAAAAAAAAA\n"])
def test_invalid_ytid_is_refused(ytid, audio_server, tmp_path):
    cache = tmp_path / "cache"
    with pytest.raises(ValueError, match="invalid YouTube id"):
        fetch_segment(ytid, 0.0, 10.0, str(cache), config_for(audio_server))
    assert not cache.exists()


@pytest.mark.parametrize("start, end", [(5.0, 5.0), (10.0, 0.0), (-1.0, 3.0), (0.0, float("inf")),
                                        (float("nan"), 10.0)])
def test_invalid_range_is_refused(start, end, audio_server, tmp_path):
    with pytest.raises(ValueError, match="invalid segment"):
        fetch_segment("--aE2O5G5WE", start, end, str(tmp_path), config_for(audio_server))


# ---- work directories of killed workers ----------------------------------------------------------

def test_debris_of_a_killed_download_is_never_trusted(audio_corpus, make_audio_server, tmp_path):
    server = make_audio_server()
    segment = audio_corpus.by_kind("flac_s24_stereo_96k")
    stem = segment_stem(segment.ytid, 0.0, 10.0)
    fresh = tmp_path / f".{stem}.fresh.tmp" / "attempt1"
    stale = tmp_path / f".{stem}.stale.tmp" / "attempt1"
    for debris in (fresh, stale):
        debris.mkdir(parents=True)
        (debris / "section.flac").write_bytes(b"half a file")
    old = time.time() - STALE_TMP_S - 60
    os.utime(stale.parent, (old, old))

    result = fetch_segment(segment.ytid, 0.0, 10.0, str(tmp_path), config_for(server))
    assert result.cached is False and server.request_count > 0
    assert decode(result.path)[0].shape[0] == 10 * 96000
    assert not stale.parent.exists()  # a killed worker's leftovers are cleaned up
    assert fresh.parent.exists()      # a recent one may belong to a running worker


KILLED_WORKER = textwrap.dedent("""
    import sys
    from pipeline.fetch import FetchConfig, fetch_segment
    url_template, cache, cookies = sys.argv[1:]
    fetch_segment("AAAAAAAAAAA", 0.0, 10.0, cache, FetchConfig(url_template=url_template, cookies=cookies,
                                                               retries=1, socket_timeout=60.0))
""")


def test_cookie_copies_of_a_killed_worker_are_swept_at_the_next_start(ogg_bytes, audio_corpus, make_audio_server,
                                                                      tmp_path):
    server = StallingServer(ogg_bytes, headers=False)  # yt-dlp waits for an answer, its cookie copy open
    cookies = tmp_path / "cookies.txt"
    cookies.write_text(f"# Netscape HTTP Cookie File\n127.0.0.1\tFALSE\t/\tFALSE\t0\tSID\t{COOKIE}\n")
    cache = tmp_path / "cache"
    worker = subprocess.Popen([sys.executable, "-c", KILLED_WORKER, server.url_template, str(cache), str(cookies)],
                              cwd=REPOSITORY)
    deadline = time.monotonic() + 60
    while not glob.glob(f"{cache}/.*.tmp/*/cookies.txt") and time.monotonic() < deadline:
        time.sleep(0.1)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    server.close()
    (copy,) = glob.glob(f"{cache}/.*.tmp/*/cookies.txt")
    assert COOKIE in Path(copy).read_text()  # what SIGKILL leaves behind

    # The next job's first fetch, of another segment, in another process (this one).
    segment = audio_corpus.by_kind("short_3s")
    result = fetch_segment(segment.ytid, 0.0, 10.0, str(cache), single_attempt_config(make_audio_server().url_template))
    assert result.failure is None
    assert not os.path.exists(copy)
    assert sorted(os.listdir(cache)) == [os.path.basename(result.path)]

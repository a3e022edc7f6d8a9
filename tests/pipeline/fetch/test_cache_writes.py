"""pipeline.fetch.cache_writes: a write error in the cache is a transient local_io failure, and a
cache that takes no write at all stops the worker."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from pipeline.fetch import FAILURE_SUFFIX, CacheUnwritable, fetch_segment, segment_stem
from pipeline.fetch.cache_writes import LocalIoCounter
from tests.pipeline.fetch.helpers import REPOSITORY, single_attempt_config


def test_a_cache_that_cannot_be_written_is_a_local_io_failure_then_stops_the_worker(audio_corpus, make_audio_server,
                                                                                    tmp_path):
    server = make_audio_server()
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the cache's parent should be")
    broken, good = str(blocker / "cache"), str(tmp_path / "cache")
    config = single_attempt_config(server.url_template, local_io_limit=3)
    segments = [audio_corpus.by_kind(kind) for kind in ("short_3s", "mp3", "ogg_vorbis", "wav_s16_mono_16k")]

    assert fetch_segment(segments[0].ytid, 0.0, 10.0, good, config).failure is None  # a write: the count is 0
    for segment in segments[:2]:
        failure = fetch_segment(segment.ytid, 0.0, 10.0, broken, config).failure
        assert (failure.reason, failure.permanent, failure.attempts) == ("local_io", False, 1)
        assert "Not a directory" in failure.message
    assert fetch_segment(segments[1].ytid, 0.0, 10.0, good, config).failure is None  # resets the count
    for segment in segments[:2]:
        assert fetch_segment(segment.ytid, 0.0, 10.0, broken, config).failure.reason == "local_io"
    with pytest.raises(CacheUnwritable, match=r"3 fetches in a row could not write to the cache .*not-a-directory"):
        fetch_segment(segments[2].ytid, 0.0, 10.0, broken, config)
    assert fetch_segment(segments[3].ytid, 0.0, 10.0, good, config).failure is None


FILE_TOO_LARGE = textwrap.dedent("""
    import dataclasses, json, resource, signal, sys
    from pipeline.fetch import FetchConfig, fetch_segment
    url_template, cache, ytid = sys.argv[1:]
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG instead
    resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))  # inherited by ffmpeg
    result = fetch_segment(ytid, 0.0, 10.0, cache, FetchConfig(url_template=url_template, retries=2, backoff_s=0.01))
    print(json.dumps(dataclasses.asdict(result)))
""")


def test_file_too_large_in_the_cache_is_a_transient_local_io_failure(audio_corpus, make_audio_server, tmp_path):
    server = make_audio_server()
    segment = audio_corpus.by_kind("long_35s")  # a 10 s FLAC section is ~1 MB
    cache = tmp_path / "cache"
    done = subprocess.run([sys.executable, "-c", FILE_TOO_LARGE, server.url_template, str(cache), segment.ytid],
                          cwd=REPOSITORY, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    failure = json.loads(done.stdout.splitlines()[-1])["failure"]
    assert (failure["reason"], failure["permanent"], failure["attempts"]) == ("local_io", False, 1)
    assert "File too large" in failure["message"]
    record = cache / (segment_stem(segment.ytid, 0.0, 10.0) + FAILURE_SUFFIX)
    assert json.loads(record.read_text())["reason"] == "local_io"  # small writes still work
    assert [name for name in os.listdir(cache) if name != record.name] == []


def test_the_count_of_failed_writes_in_a_row_stops_at_the_limit_and_starts_again():
    counter = LocalIoCounter()
    counter.failed("c", "full", limit=2)
    counter.succeeded()  # a write in between: the series starts again
    counter.failed("c", "full", limit=2)
    with pytest.raises(CacheUnwritable, match=r"^2 fetches in a row could not write to the cache c, the last: full\."):
        counter.failed("c", "full", limit=2)
    counter.failed("c", "full", limit=2)  # the count started again after stopping
    assert isinstance(CacheUnwritable("x"), OSError)

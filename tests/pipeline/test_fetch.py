"""pipeline.fetch with the real yt-dlp and ffmpeg against the local audio mirror (no mocks)."""
from __future__ import annotations

import dataclasses
import datetime
import importlib.metadata
import json
import logging
import os
import re
import stat
import subprocess
import time
from pathlib import Path

import ffmpeg
import numpy as np
import pytest

from pipeline.fetch import (FAILURE_SUFFIX, REASONS, STALE_TMP_S, FetchConfig, _private_cookie_file,
                            _ytdlp_options, check_cookies, classify_error, fetch_segment, read_failure,
                            redact, segment_stem)
from tests.audio_corpus import RATE_LIMITED_REQUESTS

FETCHABLE = ["wav_s16_mono_16k", "flac_s24_stereo_96k", "ogg_vorbis", "mp3", "m4a_index_at_start",
             "m4a_index_at_end", "six_channels", "short_3s", "long_35s", "silent"]


def config_for(server, **overrides) -> FetchConfig:
    """Fast retries for tests; everything else as users get it."""
    values = {"url_template": server.url_template, "backoff_s": 0.01, "socket_timeout": 10.0}
    values.update(overrides)
    return FetchConfig(**values)


def decode(path: str) -> tuple[np.ndarray, int]:
    """(samples [n, channels] float32, sample rate) of the first audio stream, natively."""
    stream = next(s for s in ffmpeg.probe(path)["streams"] if s["codec_type"] == "audio")
    rate, channels = int(stream["sample_rate"]), int(stream["channels"])
    raw, _ = (ffmpeg.input(path)["a:0"].output("pipe:", format="f32le", acodec="pcm_f32le")
              .global_args("-loglevel", "error").run(capture_stdout=True, capture_stderr=True))
    return np.frombuffer(raw, np.float32).reshape(-1, channels), rate


def dominant_hz(signal: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(signal * np.hanning(len(signal))))
    return float(np.argmax(spectrum)) * rate / len(signal)


def leftovers(cache_dir) -> list[str]:
    return [name for name in os.listdir(cache_dir) if name.startswith(".")]


# ---- every format ------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", FETCHABLE)
def test_every_served_format_is_cached_and_decodable(kind, audio_corpus, audio_server, tmp_path):
    segment = audio_corpus.by_kind(kind)
    result = fetch_segment(segment.ytid, segment.start_s, segment.end_s, str(tmp_path),
                           config_for(audio_server))

    assert result.failure is None and result.cached is False
    stem = segment_stem(segment.ytid, segment.start_s, segment.end_s)
    assert os.path.dirname(result.path) == str(tmp_path)
    assert os.path.basename(result.path).startswith(stem + ".")
    assert sorted(os.listdir(tmp_path)) == [os.path.basename(result.path)]  # no debris
    samples, rate = decode(result.path)
    assert samples.shape[0] / rate == pytest.approx(segment.duration_s, abs=0.1)
    assert samples.shape[1] == segment.channels
    assert rate == segment.sample_rate
    if kind == "silent":
        assert np.abs(samples).max() == 0.0
    elif kind == "long_35s":
        for chunk, tone in enumerate(segment.tones_hz[:3]):
            piece = samples[chunk * rate * 10:(chunk + 1) * rate * 10, 0]
            assert dominant_hz(piece, rate) == pytest.approx(tone, abs=2.0)
    else:
        for channel, tone in enumerate(segment.tones_hz):
            assert dominant_hz(samples[:, channel], rate) == pytest.approx(tone, abs=2.0)


def test_segment_inside_a_longer_source(audio_corpus, audio_server, tmp_path):
    segment = audio_corpus.by_kind("long_35s")  # 300 Hz in 0-10 s, 400 Hz in 10-20 s, ...
    result = fetch_segment(segment.ytid, 12.0, 19.5, str(tmp_path), config_for(audio_server))
    samples, rate = decode(result.path)
    # A stream copy cuts at packet boundaries: here FLAC frames of 4096 samples, at either end.
    assert 7.5 - 0.01 <= samples.shape[0] / rate <= 7.5 + 2 * 4096 / rate
    assert dominant_hz(samples[:, 0], rate) == pytest.approx(400.0, abs=2.0)
    assert os.path.basename(result.path).startswith(f"{segment.ytid}_12000_19500.")


# ---- the m4a whose index is at the end ---------------------------------------------------------

def test_m4a_index_at_end_with_range_support_is_a_section_download(audio_corpus, make_audio_server,
                                                                   tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="pipeline.fetch")
    server = make_audio_server()
    segment = audio_corpus.by_kind("m4a_index_at_end")
    result = fetch_segment(segment.ytid, 0.0, 10.0, str(tmp_path), config_for(server))
    assert result.path.endswith(".m4a")  # stream copy of the section, no fallback
    assert any(request.range for request in server.requests)  # ffmpeg seeked to the index
    assert "whole file" not in caplog.text
    samples, rate = decode(result.path)
    assert samples.shape[0] / rate == pytest.approx(10.0, abs=0.1)


def test_m4a_index_at_end_without_seeking_falls_back_to_the_whole_file(
        audio_corpus, make_audio_server, tmp_path, caplog):
    """The bug seen in the wild: a host that cannot seek, an m4a with its index at the end, and a
    section download that "succeeds" with an mp4 holding no stream at all."""
    caplog.set_level(logging.INFO, logger="pipeline.fetch")
    server = make_audio_server(ranges=False)
    segment = audio_corpus.by_kind("m4a_index_at_end")
    result = fetch_segment(segment.ytid, 2.5, 9.0, str(tmp_path), config_for(server))

    assert result.failure is None and result.cached is False
    assert result.path.endswith(f"{segment.ytid}_2500_9000.flac")  # the local cut
    assert "does not decode" in caplog.text and "whole file" in caplog.text
    samples, rate = decode(result.path)
    assert samples.shape[0] / rate == pytest.approx(6.5, abs=0.01)  # sample-accurate cut
    assert (samples.shape[1], rate) == (2, 48000)
    assert dominant_hz(samples[:, 0], rate) == pytest.approx(880.0, abs=2.0)
    assert dominant_hz(samples[:, 1], rate) == pytest.approx(1760.0, abs=2.0)
    full_gets = [r for r in server.requests if r.method == "GET" and r.status == 200]
    assert len(full_gets) == 4  # section: extraction + ffmpeg; whole: extraction + download
    assert leftovers(tmp_path) == []


def test_m4a_index_at_start_needs_no_seeking(audio_corpus, make_audio_server, tmp_path):
    server = make_audio_server(ranges=False)
    segment = audio_corpus.by_kind("m4a_index_at_start")
    result = fetch_segment(segment.ytid, 0.0, 10.0, str(tmp_path), config_for(server))
    assert result.path.endswith(".m4a")
    samples, rate = decode(result.path)
    assert samples.shape[0] / rate == pytest.approx(10.0, abs=0.1)


def test_range_past_the_end_is_an_empty_permanent_failure(audio_corpus, audio_server, tmp_path):
    segment = audio_corpus.by_kind("short_3s")  # 3 s of audio
    result = fetch_segment(segment.ytid, 5.0, 10.0, str(tmp_path), config_for(audio_server))
    assert result.path is None
    assert (result.failure.reason, result.failure.permanent) == ("empty", True)


def test_source_ending_inside_the_segment_is_cut_exactly(audio_corpus, audio_server, tmp_path,
                                                         caplog):
    caplog.set_level(logging.INFO, logger="pipeline.fetch")
    segment = audio_corpus.by_kind("long_35s")
    result = fetch_segment(segment.ytid, 30.0, 40.0, str(tmp_path), config_for(audio_server))
    samples, rate = decode(result.path)
    assert samples.shape[0] / rate == pytest.approx(5.0, abs=0.01)
    assert dominant_hz(samples[:, 0], rate) == pytest.approx(600.0, abs=2.0)
    assert "where 10.00 s were asked for" in caplog.text


# ---- failures ----------------------------------------------------------------------------------

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


# ---- the cache ---------------------------------------------------------------------------------

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


# ---- untrusted input and secrets ---------------------------------------------------------------

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


@pytest.mark.parametrize("overrides, message", [
    ({"url_template": "http://127.0.0.1:1/"}, "must contain {ytid}"),
    ({"url_template": "http://127.0.0.1:1/{id}"}, "must contain {ytid}"),
    ({"retries": 0}, "retries must be at least 1"),
    ({"backoff_s": -1.0}, "backoff_s must be >= 0"),
    ({"sleep_interval": -0.5}, "sleep_interval must be >= 0"),
    ({"socket_timeout": 0}, "socket_timeout must be > 0"),
    ({"rate_limit": 0}, "rate_limit must be a positive"),
])
def test_bad_config_is_refused(overrides, message):
    with pytest.raises(ValueError, match=message.replace("{", r"\{").replace("}", r"\}")):
        FetchConfig(**overrides)


def test_relative_cache_dir_gives_absolute_paths(audio_corpus, audio_server, tmp_path,
                                                 monkeypatch):
    monkeypatch.chdir(tmp_path)
    segment = audio_corpus.by_kind("short_3s")
    result = fetch_segment(segment.ytid, 0.0, 10.0, "cache", config_for(audio_server))
    assert os.path.isabs(result.path)
    assert os.path.dirname(result.path) == str(tmp_path / "cache")


def test_proxy_credentials_never_appear(audio_corpus, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    # Port 9 (discard) is closed here: every attempt fails at the proxy, a transient failure.
    config = FetchConfig(url_template="http://127.0.0.1:9/{ytid}",
                         proxy="http://alice-user:pr0xy-s3cret@127.0.0.1:9", retries=2,
                         backoff_s=0.01, socket_timeout=5.0)
    segment = audio_corpus.by_kind("mp3")
    result = fetch_segment(segment.ytid, 0.0, 10.0, str(tmp_path), config)

    failure = result.failure
    assert (failure.reason, failure.permanent) == ("network", False)
    assert failure.attempts == 2
    record = (tmp_path / (segment_stem(segment.ytid, 0.0, 10.0) + FAILURE_SUFFIX)).read_text()
    for text in (failure.message, caplog.text, record, repr(config), repr(result)):
        assert "pr0xy-s3cret" not in text and "alice-user" not in text
    assert caplog.text.count("yt-dlp:") > 0  # yt-dlp's own lines were logged, redacted


def test_cookie_values_never_appear_and_the_cookie_file_is_not_rewritten(
        audio_corpus, make_audio_server, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    server = make_audio_server(fail_first=1)  # one failure, so a message is logged
    cookies = tmp_path / "cookies.txt"
    cookies.write_text("# Netscape HTTP Cookie File\n"
                       "127.0.0.1\tFALSE\t/\tFALSE\t0\tSID\tc00kie-value-secret-123\n"
                       "#HttpOnly_.youtube.com\tTRUE\t/\tTRUE\t0\tHSID\thttponly-secret-456\n")
    before = cookies.read_bytes()
    segment = audio_corpus.by_kind("short_3s")
    config = config_for(server, cookies=str(cookies), retries=2)
    result = fetch_segment(segment.ytid, 0.0, 10.0, str(tmp_path / "cache"), config)
    assert result.failure is None
    assert "rate_limited" in caplog.text
    assert "c00kie-value-secret-123" not in caplog.text
    assert cookies.read_bytes() == before
    assert redact("a c00kie-value-secret-123 b httponly-secret-456", config) == "a *** b ***"

    with pytest.raises(FileNotFoundError):
        fetch_segment(segment.ytid, 0.0, 10.0, str(tmp_path / "cache"),
                      config_for(server, cookies=str(tmp_path / "nope.txt")))


COOKIES = ("# Netscape HTTP Cookie File\n"
           "127.0.0.1\tFALSE\t/\tFALSE\t0\tSID\tremote-c00kie-secret-789\n")


def test_cookie_file_is_read_once_and_each_download_gets_a_private_copy(tmp_path):
    source = tmp_path / "cookies.txt"
    source.write_text(COOKIES)
    config = FetchConfig(cookies=str(source))
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = _private_cookie_file(config, str(tmp_path / "a"))
    source.write_text("# changed while the job runs\n")  # this process read it already
    second = _private_cookie_file(config, str(tmp_path / "b"))

    assert first != second and str(source) not in (first, second)
    for copy in (first, second):
        assert Path(copy).read_text() == COOKIES
        assert stat.S_IMODE(os.stat(copy).st_mode) == 0o600  # other users cannot read it


def test_cookie_file_on_a_remote_file_system(audio_corpus, make_audio_server, tmp_path, caplog):
    """A gs:// cookie file (TensorFlow's in-memory file system stands in for GCS) is fetched with."""
    tf = pytest.importorskip("tensorflow")
    caplog.set_level(logging.DEBUG)
    cookies = f"ram://cookies-{os.getpid()}-{time.time_ns()}.txt"
    with tf.io.gfile.GFile(cookies, "w") as handle:
        handle.write(COOKIES)
    config = config_for(make_audio_server(fail_first=1), cookies=cookies, retries=2)
    segment = audio_corpus.by_kind("short_3s")
    check_cookies(config, local_workers=False)
    assert fetch_segment(segment.ytid, 0.0, 10.0, str(tmp_path), config).failure is None
    assert "rate_limited" in caplog.text and "remote-c00kie-secret-789" not in caplog.text
    assert redact("a remote-c00kie-secret-789 b", config) == "a *** b"


def test_missing_cookie_file_is_refused_at_launch_without_its_contents(tmp_path, caplog):
    missing = str(tmp_path / "nope.txt")
    for path in (missing, f"ram://nope-{time.time_ns()}.txt"):
        with pytest.raises(ValueError, match=f"--cookies {re.escape(path)}: no such file"):
            check_cookies(FetchConfig(cookies=path), local_workers=True)
    with pytest.raises(ValueError, match="no such file"):
        check_cookies(FetchConfig(cookies=f"ram://nope-{time.time_ns()}.txt"), local_workers=False)
    # A cluster's workers read a local path inside their containers: not checkable from here.
    with caplog.at_level(logging.WARNING, logger="pipeline.fetch"):
        check_cookies(FetchConfig(cookies=missing), local_workers=False)
    assert "must exist there" in caplog.text and "gs://" in caplog.text


def test_redact():
    config = FetchConfig(proxy="http://bob:hunter2%21x@proxy.example:3128")
    text = ("Unable to connect to proxy http://bob:hunter2%21x@proxy.example:3128 "
            "(user bob, password hunter2!x) and socks5://eve:pw@10.0.0.1:1080")
    cleaned = redact(text, config)
    for secret in ("hunter2", "bob", "eve:pw"):
        assert secret not in cleaned
    assert "proxy.example:3128" in cleaned and "10.0.0.1:1080" in cleaned
    assert redact("nothing to hide", FetchConfig()) == "nothing to hide"


# ---- yt-dlp: YouTube's challenge solver, warnings ----------------------------------------------

def test_yt_dlp_finds_a_supported_deno_and_the_solver_without_path(tmp_path, monkeypatch, caplog):
    """What ``yt-dlp -v`` reports with the options fetch gives it: deno found (PATH does not have
    it) at a supported version, and the solver scripts package; then deno runs those scripts
    offline, sandboxed the way yt-dlp runs them."""
    import yt_dlp
    import yt_dlp_ejs.yt.solver

    monkeypatch.setenv("PATH", str(tmp_path))
    caplog.set_level(logging.DEBUG, logger="pipeline.fetch")
    options = _ytdlp_options(FetchConfig(), str(tmp_path), "probe")
    with yt_dlp.YoutubeDL(options):
        pass  # verbose: the debug header is written at construction
    runtimes = re.search(r"JS runtimes: (.*)", caplog.text).group(1)
    assert re.fullmatch(r"deno-\d+\.\d+\.\d+", runtimes.strip()), runtimes  # not "none", not "(unsupported)"
    assert f"yt_dlp_ejs-{importlib.metadata.version('yt-dlp-ejs')}" in caplog.text

    script = (f"{yt_dlp_ejs.yt.solver.lib()}\nObject.assign(globalThis, lib);\n{yt_dlp_ejs.yt.solver.core()}\n"
              "console.log(typeof jsc);\n")
    result = subprocess.run([options["js_runtimes"]["deno"]["path"], "run", "--ext=js", "--no-prompt", "--no-remote",
                             "--no-npm", "--cached-only", "--no-config", "-"],
                            input=script, capture_output=True, text=True, timeout=60, check=False)
    assert (result.returncode, result.stdout.strip()) == (0, "function"), result.stderr


def test_yt_dlp_warnings_are_warnings_once_per_process(tmp_path, monkeypatch, caplog):
    import yt_dlp

    monkeypatch.setattr("pipeline.fetch._warned", set())  # as in a fresh worker process
    caplog.set_level(logging.INFO, logger="pipeline.fetch")
    config = FetchConfig(proxy="http://alice:pr0xy-pass@127.0.0.1:9")
    message = ("[youtube] No supported JavaScript runtime could be found (via "
               "http://alice:pr0xy-pass@127.0.0.1:9)")
    for _ in range(3):  # one YoutubeDL per download, as fetch does
        with yt_dlp.YoutubeDL(_ytdlp_options(config, str(tmp_path), "probe")) as ydl:
            ydl.report_warning(message)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["yt-dlp: [youtube] No supported JavaScript runtime could be found (via http://***@127.0.0.1:9)"]


# ---- classification ----------------------------------------------------------------------------

# Messages as yt-dlp prints them (YouTube's playability texts pass through it unchanged).
MESSAGES = [
    ("ERROR: [youtube] dQw4w9WgXcQ: Video unavailable", "unavailable", True),
    ("ERROR: [youtube] dQw4w9WgXcQ: Video unavailable. This video is unavailable",
     "unavailable", True),
    ("ERROR: [youtube] dQw4w9WgXcQ: Private video. Sign in if you've been granted access to this "
     "video. Use --cookies-from-browser or --cookies for the authentication.", "private", True),
    ("ERROR: [youtube] dQw4w9WgXcQ: Video unavailable. This video has been removed by the uploader",
     "removed", True),
    ("ERROR: [youtube] dQw4w9WgXcQ: Video unavailable. This video is no longer available because "
     "the YouTube account associated with this video has been terminated.", "removed", True),
    ("ERROR: [youtube] dQw4w9WgXcQ: Video unavailable. This video is no longer available due to a "
     "copyright claim by Someone", "removed", True),
    ("ERROR: [youtube] dQw4w9WgXcQ: This video has been removed for violating YouTube's Terms of "
     "Service", "removed", True),
    ("ERROR: [youtube] dQw4w9WgXcQ: Video unavailable. The uploader has not made this video "
     "available in your country", "geo_blocked", True),
    ("ERROR: [youtube] dQw4w9WgXcQ: The uploader has not made this video available in your "
     "country. This video is available in US.", "geo_blocked", True),
    ("ERROR: [youtube] dQw4w9WgXcQ: Sign in to confirm your age. This video may be inappropriate "
     "for some users. Use --cookies-from-browser or --cookies for the authentication.",
     "age_restricted", True),
    ("ERROR: [youtube] dQw4w9WgXcQ: Sign in to confirm you\u2019re not a bot. Use "
     "--cookies-from-browser or --cookies for the authentication.", "bot_check", False),
    ("ERROR: [youtube] dQw4w9WgXcQ: Sign in to confirm you're not a bot. This helps protect our "
     "community. Learn more", "bot_check", False),
    ("ERROR: [youtube] dQw4w9WgXcQ: Join this channel to get access to members-only content like "
     "this video, and other exclusive perks.", "members_only", True),
    ("ERROR: [youtube] dQw4w9WgXcQ: This content isn't available, try again later. The current "
     "session has been rate-limited by YouTube for up to an hour.", "rate_limited", False),
    ("ERROR: [youtube] dQw4w9WgXcQ: Unable to download API page: HTTP Error 429: Too Many Requests "
     "(caused by <HTTPError 429: Too Many Requests>)", "rate_limited", False),
    ("ERROR: [generic] abc: Unable to download webpage: HTTP Error 404: Not Found (caused by "
     "<HTTPError 404: Not Found>)", "not_found", True),
    ("ERROR: unable to download video data: HTTP Error 403: Forbidden", "forbidden", False),
    ("ERROR: unable to download video data: HTTP Error 503: Service Unavailable",
     "server_error", False),
    ("ERROR: [generic] abc: Unable to download webpage: <urlopen error [Errno 111] Connection "
     "refused> (caused by TransportError('<urlopen error [Errno 111] Connection refused>'))",
     "network", False),
    ("ERROR: [youtube] abc: Unable to download webpage: ('Unable to connect to proxy', "
     "OSError('Tunnel connection failed: 407 Proxy Authentication Required'))", "network", False),
    ("ERROR: unable to download video data: The read operation timed out", "network", False),
    ("ERROR: [Errno 104] Connection reset by peer", "network", False),
    ("ERROR: 5242880 bytes read, 1048576 more expected", "network", False),
    ("ERROR: [youtube] abc: Requested format is not available. Use --list-formats for a list of "
     "available formats", "unsupported", True),
    ("ERROR: Unsupported URL: https://example.com/", "unsupported", True),
    ("whole.m4a: Invalid data found when processing input", "decode_error", True),
    ("[mov,mp4,m4a,3gp,3g2,mj2 @ 0x5581] moov atom not found", "decode_error", True),
    ("Output file does not contain any stream", "empty", True),
    ("ERROR: [Errno 28] No space left on device", "local_io", False),
    ("something nobody has seen before", "unknown", False),
]


@pytest.mark.parametrize("message, reason, permanent", MESSAGES)
def test_classify_error(message, reason, permanent):
    assert classify_error(message) == (reason, permanent)
    assert REASONS[reason] is permanent


def test_design_reasons_are_all_known():
    for reason in ("unavailable", "private", "removed", "geo_blocked", "age_restricted",
                   "rate_limited", "bot_check", "network", "decode_error", "empty"):
        assert reason in REASONS
    assert [reason for reason, permanent in REASONS.items() if not permanent] == [
        "timeout", "bot_check", "rate_limited", "forbidden", "server_error", "network", "local_io", "unknown"]

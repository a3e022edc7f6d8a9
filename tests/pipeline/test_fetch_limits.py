"""pipeline.fetch against hostile servers and broken caches, with the real yt-dlp and ffmpeg on
127.0.0.1: secrets kept off ffmpeg's command line, time limits, length caps, cache write errors,
and the cookie copies of a killed worker."""
from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from audioshards.audio import ClipSettings
from pipeline.config import JobConfig
from pipeline.fetch import (FAILURE_SUFFIX, CacheUnwritable, FetchConfig, fetch_segment, read_failure,
                            segment_stem)

REPOSITORY = Path(__file__).resolve().parents[2]


def config_for(url_template: str, **overrides) -> FetchConfig:
    values = {"url_template": url_template, "backoff_s": 0.01, "socket_timeout": 10.0, "retries": 1}
    values.update(overrides)
    return FetchConfig(**values)


class StallingServer:
    """Answers every request with ``head`` bytes of ``body`` (after the headers when
    ``headers``), then sends nothing more until ``stall_s`` have passed, and closes."""

    def __init__(self, body: bytes, *, head: int = 2048, headers: bool = True, stall_s: float = 30.0) -> None:
        self.body, self.head, self.headers, self.stall_s = body, head, headers, stall_s
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.requests = 0
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url_template(self) -> str:
        return f"http://127.0.0.1:{self.socket.getsockname()[1]}/{{ytid}}"

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.socket.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(connection,), daemon=True).start()

    def _answer(self, connection: socket.socket) -> None:
        with connection:
            connection.recv(65536)
            self.requests += 1
            if self.headers:
                connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: audio/ogg\r\nContent-Length: %d\r\n\r\n"
                                   % len(self.body) + self.body[:self.head])
            time.sleep(self.stall_s)

    def close(self) -> None:
        self.socket.close()


@pytest.fixture
def ogg_bytes(audio_corpus) -> bytes:
    return Path(audio_corpus.by_kind("ogg_vorbis").path).read_bytes()


def ffmpeg_processes_with(text: str) -> list[str]:
    lines = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout.splitlines()
    return [line for line in lines if text in line and "ffmpeg" in line]


# ---- ffmpeg's time limits ------------------------------------------------------------------------

def fetch_from_stalling_server(ogg_bytes, tmp_path, **timeouts):
    """One segment fetched from a server that stalls mid-transfer: (the result, seconds taken)."""
    server = StallingServer(ogg_bytes)
    started = time.monotonic()
    try:
        result = fetch_segment("AAAAAAAAAAA", 0.0, 10.0, str(tmp_path), config_for(server.url_template, **timeouts))
    finally:
        server.close()
    return result, time.monotonic() - started


def test_a_server_that_stalls_mid_transfer_is_a_transient_timeout(ogg_bytes, tmp_path):
    """The section download is an ffmpeg reading from the server: it gets the wall-clock limit."""
    result, elapsed = fetch_from_stalling_server(ogg_bytes, tmp_path, ffmpeg_timeout=2.0, socket_timeout=20.0)
    assert (result.failure.reason, result.failure.permanent) == ("timeout", False)
    assert result.failure.message == "ffmpeg ran longer than 2 s and was stopped (timeout)"
    assert 2.0 <= elapsed < 12.0
    assert read_failure("AAAAAAAAAAA", 0.0, 10.0, str(tmp_path)) == result.failure  # retried next run
    assert ffmpeg_processes_with(str(tmp_path)) == []


def test_a_stalled_read_ends_at_the_socket_timeout_not_the_wall_clock_limit(ogg_bytes, tmp_path):
    """-rw_timeout: ffmpeg gives up after socket_timeout without data; then the whole-file download
    (yt-dlp, same time-out) meets the same stall: a transient network failure."""
    result, elapsed = fetch_from_stalling_server(ogg_bytes, tmp_path, ffmpeg_timeout=60.0, socket_timeout=2.0)
    assert (result.failure.reason, result.failure.permanent) == ("network", False)
    assert elapsed < 15.0, elapsed


@pytest.mark.parametrize("overrides, message", [({"ffmpeg_timeout": 0}, "--ffmpeg-timeout"),
                                                ({"max_seconds": float("inf")}, "max_seconds")])
def test_bad_limits_are_refused(overrides, message):
    with pytest.raises(ValueError, match=message):
        FetchConfig(**overrides)


# ---- the segment length cap ----------------------------------------------------------------------

@pytest.mark.parametrize("end", [36000.0, 1e300, 600.5])
def test_a_segment_longer_than_the_cap_is_too_long_and_not_fetched(end, audio_corpus, make_audio_server, tmp_path):
    server = make_audio_server()
    segment = audio_corpus.by_kind("long_35s")
    result = fetch_segment(segment.ytid, 0.0, end, str(tmp_path), config_for(server.url_template))
    assert (result.failure.reason, result.failure.permanent, result.cached) == ("too_long", True, False)
    assert "longer than 600 s (--max-seconds)" in result.failure.message
    assert server.request_count == 0
    assert not tmp_path.exists() or os.listdir(tmp_path) == []  # not recorded: a larger cap fetches it
    # The cap is one setting (--max-seconds, ClipSettings), which the fetch config follows.
    for cap, reason in ((30.0, "too_long"), (40.0, None)):
        job = JobConfig(split="train", out="o", cache="c", segments=("s.csv",), fetch=config_for(server.url_template),
                        clips=ClipSettings(max_seconds=cap))
        assert job.fetch.max_seconds == cap
        fetched = fetch_segment(segment.ytid, 0.0, 35.0, str(tmp_path), job.fetch)
        assert (fetched.failure and fetched.failure.reason) == reason


# ---- secrets and ffmpeg's command line -----------------------------------------------------------

@pytest.fixture
def ffmpeg_command_lines(tmp_path, monkeypatch) -> Path:
    """Every ffmpeg started from here on (by us or by yt-dlp, found on PATH) appends its command
    line to the returned file, then runs the real ffmpeg."""
    real = shutil.which("ffmpeg")
    wrapper = tmp_path / "bin"
    wrapper.mkdir()
    log = tmp_path / "ffmpeg-command-lines.txt"
    log.touch()
    (wrapper / "ffmpeg").write_text(f"#!/bin/sh\nprintf '%s\\n' \"$*\" >> '{log}'\nexec '{real}' \"$@\"\n")
    (wrapper / "ffmpeg").chmod(0o755)
    monkeypatch.setenv("PATH", f"{wrapper}{os.pathsep}{os.environ['PATH']}")
    return log


COOKIE = "c00kie-0n-the-command-line"


@pytest.mark.parametrize("credentials", ["cookies", "url"])
def test_cookies_and_passwords_never_reach_an_ffmpeg_command_line(credentials, audio_corpus, make_audio_server,
                                                                  ffmpeg_command_lines, tmp_path, caplog):
    """Other local users read every command line in /proc/PID/cmdline: yt-dlp handed ffmpeg the
    cookies of the media URL as -cookies VALUE (and a URL's password in the URL)."""
    caplog.set_level("INFO", logger="pipeline.fetch")
    server = make_audio_server()
    segment = audio_corpus.by_kind("ogg_vorbis")
    cookies = tmp_path / "cookies.txt"
    cookies.write_text(f"# Netscape HTTP Cookie File\n127.0.0.1\tFALSE\t/\tFALSE\t0\tSID\t{COOKIE}\n")
    if credentials == "cookies":
        config = config_for(server.url_template, cookies=str(cookies))
    else:
        config = config_for(server.url_template.replace("http://", f"http://mirror:{COOKIE}@"))
    result = fetch_segment(segment.ytid, 2.0, 9.0, str(tmp_path / "cache"), config)

    command_lines = ffmpeg_command_lines.read_text()
    assert "-i" in command_lines  # ffmpeg ran, and was seen
    assert COOKIE not in command_lines
    assert result.failure is None and result.path.endswith(".flac")  # fetched whole, cut locally
    assert "never handed to ffmpeg" in caplog.text and COOKIE not in caplog.text


def test_a_section_without_secrets_is_still_a_section_download(audio_corpus, make_audio_server,
                                                              ffmpeg_command_lines, tmp_path):
    server = make_audio_server()
    segment = audio_corpus.by_kind("ogg_vorbis")
    result = fetch_segment(segment.ytid, 2.0, 9.0, str(tmp_path / "cache"), config_for(server.url_template))
    assert result.failure is None and result.path.endswith(".ogg")
    command_lines = ffmpeg_command_lines.read_text()
    assert "-rw_timeout 10000000 -protocol_whitelist http,https,tcp,tls,httpproxy -format_whitelist" in command_lines
    assert "-c copy -f ogg" in command_lines


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
    result = fetch_segment(segment.ytid, 0.0, 10.0, str(cache), config_for(make_audio_server().url_template))
    assert result.failure is None
    assert not os.path.exists(copy)
    assert sorted(os.listdir(cache)) == [os.path.basename(result.path)]


# ---- write errors in the cache ------------------------------------------------------------------

def test_a_cache_that_cannot_be_written_is_a_local_io_failure_then_stops_the_worker(audio_corpus, make_audio_server,
                                                                                    tmp_path):
    server = make_audio_server()
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the cache's parent should be")
    broken, good = str(blocker / "cache"), str(tmp_path / "cache")
    config = config_for(server.url_template, local_io_limit=3)
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

"""pipeline.fetch.download with the real yt-dlp and ffmpeg against the local audio mirror (no mocks):
every format, the section download and its whole-file fallback, ffmpeg's time limits, what
ffmpeg's command line never holds, and yt-dlp's JavaScript runtime and warnings."""
from __future__ import annotations

import importlib.metadata
import logging
import os
import re
import subprocess
import time

import numpy as np
import pytest

from pipeline.fetch import MAX_WARNED, FetchConfig, fetch_segment, read_failure, segment_stem
from pipeline.fetch.download import WarnedOnce, ytdlp_options
from tests.pipeline.fetch.helpers import (COOKIE, StallingServer, config_for, decode, dominant_hz,
                                          ffmpeg_processes_with, leftovers, single_attempt_config)


# ---- every format ------------------------------------------------------------------------------

FETCHABLE = ["wav_s16_mono_16k", "flac_s24_stereo_96k", "ogg_vorbis", "mp3", "m4a_index_at_start",
             "m4a_index_at_end", "six_channels", "short_3s", "long_35s", "silent"]


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


# ---- ffmpeg's time limits ------------------------------------------------------------------------

def fetch_from_stalling_server(ogg_bytes, tmp_path, **timeouts):
    """One segment fetched from a server that stalls mid-transfer: (the result, seconds taken)."""
    server = StallingServer(ogg_bytes)
    started = time.monotonic()
    try:
        result = fetch_segment("AAAAAAAAAAA", 0.0, 10.0, str(tmp_path), single_attempt_config(server.url_template, **timeouts))
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


# ---- secrets and ffmpeg's command line -----------------------------------------------------------

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
        config = single_attempt_config(server.url_template, cookies=str(cookies))
    else:
        config = single_attempt_config(server.url_template.replace("http://", f"http://mirror:{COOKIE}@"))
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
    result = fetch_segment(segment.ytid, 2.0, 9.0, str(tmp_path / "cache"), single_attempt_config(server.url_template))
    assert result.failure is None and result.path.endswith(".ogg")
    command_lines = ffmpeg_command_lines.read_text()
    assert "-rw_timeout 10000000 -protocol_whitelist http,https,tcp,tls,httpproxy -format_whitelist" in command_lines
    assert "-c copy -f ogg" in command_lines


# ---- yt-dlp: YouTube's challenge solver, warnings ----------------------------------------------

def test_yt_dlp_finds_a_supported_deno_and_the_solver_without_path(tmp_path, monkeypatch, caplog):
    """What ``yt-dlp -v`` reports with the options fetch gives it: deno found (PATH does not have
    it) at a supported version, and the solver scripts package; then deno runs those scripts
    offline, sandboxed the way yt-dlp runs them."""
    import yt_dlp
    import yt_dlp_ejs.yt.solver

    monkeypatch.setenv("PATH", str(tmp_path))
    caplog.set_level(logging.DEBUG, logger="pipeline.fetch")
    options = ytdlp_options(FetchConfig(), str(tmp_path), "probe")
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

    monkeypatch.setattr("pipeline.fetch.download.YTDLP_WARNINGS", WarnedOnce())  # as in a fresh worker process
    caplog.set_level(logging.INFO, logger="pipeline.fetch")
    config = FetchConfig(proxy="http://alice:pr0xy-pass@127.0.0.1:9")
    message = ("[youtube] No supported JavaScript runtime could be found (via "
               "http://alice:pr0xy-pass@127.0.0.1:9)")
    for _ in range(3):  # one YoutubeDL per download, as fetch does
        with yt_dlp.YoutubeDL(ytdlp_options(config, str(tmp_path), "probe")) as ydl:
            ydl.report_warning(message)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["yt-dlp: [youtube] No supported JavaScript runtime could be found (via http://***@127.0.0.1:9)"]


def test_warnings_remembered_are_bounded():
    seen = WarnedOnce(limit=2)
    assert [seen.first(text) for text in ("a", "a", "b", "c", "a")] == [True, False, True, False, False]
    assert WarnedOnce().limit == MAX_WARNED

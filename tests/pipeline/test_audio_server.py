"""The local audio mirror (pipeline.audio_server) and the corpus it serves in the tests."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import ffmpeg
import pytest

from pipeline.audio_server import AudioServer, content_type
from tests.audio_corpus import (BALANCED_CSV, RATE_LIMITED_REQUESTS, SPECS, expected_chunks,
                                mp4_top_level_atoms)
from tests.loopback_server import LoopbackServer

# urllib would honour proxy variables; these requests go to 127.0.0.1 directly.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def get(url: str, *, method: str = "GET", headers: dict[str, str] | None = None):
    """(status, headers, body) of one request; HTTP errors are answers too."""
    request = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with _OPENER.open(request, timeout=10) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def file_bytes(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


# ---- the corpus -------------------------------------------------------------------------------

def test_corpus_rows_are_real_balanced_train_rows(audio_corpus):
    with open(BALANCED_CSV, encoding="utf-8") as csv_file:
        real = {line.split(",")[0]: line.rstrip("\n")
                for line in csv_file if not line.startswith("#")}
    lines = audio_corpus.csv_text.splitlines()
    assert [line.startswith("#") for line in lines[:4]] == [True, True, True, False]
    assert lines[2] == "# YTID, start_seconds, end_seconds, positive_labels"
    rows = lines[3:]
    assert len(rows) == len(SPECS) == len(audio_corpus.segments)
    for row in rows:
        ytid = row.split(",")[0]
        segment = audio_corpus.segments[ytid]
        if segment.kind == "long_35s":  # the one edited row
            assert row == real[ytid].replace("10.000", "35.000")
        else:
            assert row == real[ytid]
        assert row.endswith('"' + ",".join(segment.labels) + '"')
    with open(audio_corpus.csv_path, encoding="utf-8") as csv_file:
        assert csv_file.read() == audio_corpus.csv_text


@pytest.mark.parametrize("duration, chunks", [
    (0.0, 0), (3.0, 1), (10.0, 1), (11.9, 1), (12.0, 2), (20.0, 2), (35.0, 4), (31.5, 3)])
def test_expected_chunks_follow_design(duration, chunks):
    assert expected_chunks(duration) == chunks


def test_corpus_files_have_the_promised_formats(audio_corpus):
    expected = {  # kind → (codec, sample rate, channels)
        "wav_s16_mono_16k": ("pcm_s16le", 16000, 1),
        "flac_s24_stereo_96k": ("flac", 96000, 2),
        "ogg_vorbis": ("vorbis", 44100, 2),
        "mp3": ("mp3", 44100, 2),
        "m4a_index_at_start": ("aac", 48000, 2),
        "m4a_index_at_end": ("aac", 48000, 2),
        "six_channels": ("pcm_s16le", 48000, 6),
        "short_3s": ("flac", 22050, 1),
        "long_35s": ("flac", 44100, 2),
        "silent": ("pcm_s16le", 16000, 1),
    }
    for kind, (codec, rate, channels) in expected.items():
        segment = audio_corpus.by_kind(kind)
        probe = ffmpeg.probe(segment.path)
        (stream,) = probe["streams"]
        assert (stream["codec_name"], int(stream["sample_rate"]), stream["channels"]) == \
            (codec, rate, channels), kind
        assert float(probe["format"]["duration"]) == pytest.approx(segment.duration_s, abs=0.05)
    flac24 = ffmpeg.probe(audio_corpus.by_kind("flac_s24_stereo_96k").path)["streams"][0]
    assert flac24["bits_per_raw_sample"] == "24"
    assert os.path.basename(audio_corpus.by_kind("wav_s16_mono_16k").path).startswith("Y")
    assert audio_corpus.by_kind("long_35s").chunks == 4
    assert audio_corpus.by_kind("short_3s").chunks == 1


def test_m4a_index_positions(audio_corpus):
    start = mp4_top_level_atoms(audio_corpus.by_kind("m4a_index_at_start").path)
    end = mp4_top_level_atoms(audio_corpus.by_kind("m4a_index_at_end").path)
    assert start.index("moov") < start.index("mdat")
    assert end.index("moov") > end.index("mdat")


def test_corrupt_and_missing(audio_corpus):
    with pytest.raises(ffmpeg.Error):
        ffmpeg.probe(audio_corpus.by_kind("corrupt").path)
    missing = audio_corpus.by_kind("missing")
    assert missing.path is None
    assert not [name for name in os.listdir(audio_corpus.directory) if missing.ytid in name]


# ---- serving ----------------------------------------------------------------------------------

def test_serves_files_by_ytid_with_audio_types(audio_corpus, audio_server):
    for segment in audio_corpus.segments.values():
        if segment.path is None:
            continue
        status, headers, body = get(audio_server.url_template.format(ytid=segment.ytid))
        assert status == 200, segment.kind
        assert body == file_bytes(segment.path)
        assert int(headers["Content-Length"]) == len(body)
        assert headers["Accept-Ranges"] == "bytes"
        assert headers["Content-Type"] == content_type(segment.path)
        assert headers["Content-Type"].startswith("audio/")
        name = segment.ytid + os.path.splitext(segment.path)[1]  # the id, also for Y<ytid>.wav
        assert headers["Content-Disposition"] == f'inline; filename="{name}"'


def test_content_types():
    assert content_type("a.wav") == "audio/wav"
    assert content_type("a.m4a") == "audio/mp4"
    assert content_type("a.mp3") == "audio/mpeg"
    assert content_type("a.flac") == "audio/flac"
    assert content_type("a.ogg") == "audio/ogg"
    assert content_type("a.opus") == "audio/ogg"
    assert content_type("a.bin") == "application/octet-stream"  # never served


def test_y_prefixed_name_is_found(audio_corpus, audio_server):
    segment = audio_corpus.by_kind("wav_s16_mono_16k")
    assert os.path.basename(segment.path) == f"Y{segment.ytid}.wav"
    status, _, body = get(f"{audio_server.base_url}/{segment.ytid}")
    assert status == 200 and body == file_bytes(segment.path)
    status, _, body = get(f"{audio_server.base_url}/Y{segment.ytid}")  # the stem itself, too
    assert status == 200 and body == file_bytes(segment.path)


def test_range_requests(audio_corpus, audio_server):
    segment = audio_corpus.by_kind("m4a_index_at_end")
    data = file_bytes(segment.path)
    url = audio_server.url_template.format(ytid=segment.ytid)
    size = len(data)

    status, headers, body = get(url, headers={"Range": "bytes=100-199"})
    assert (status, body) == (206, data[100:200])
    assert headers["Content-Range"] == f"bytes 100-199/{size}"
    assert headers["Content-Length"] == "100"

    status, headers, body = get(url, headers={"Range": f"bytes={size - 10}-"})
    assert (status, body) == (206, data[-10:])
    status, headers, body = get(url, headers={"Range": "bytes=-7"})
    assert (status, body) == (206, data[-7:])
    assert headers["Content-Range"] == f"bytes {size - 7}-{size - 1}/{size}"
    status, headers, body = get(url, headers={"Range": f"bytes=5-{size + 1000}"})
    assert (status, body) == (206, data[5:])

    status, headers, _ = get(url, headers={"Range": f"bytes={size}-"})
    assert status == 416 and headers["Content-Range"] == f"bytes */{size}"
    # Several ranges are not supported: the whole file, as HTTP allows.
    status, _, body = get(url, headers={"Range": "bytes=0-1,5-6"})
    assert (status, body) == (200, data)


def test_head_sends_headers_only(audio_corpus, audio_server):
    segment = audio_corpus.by_kind("mp3")
    status, headers, body = get(audio_server.url_template.format(ytid=segment.ytid), method="HEAD")
    assert (status, body) == (200, b"")
    assert int(headers["Content-Length"]) == os.path.getsize(segment.path)


@pytest.mark.parametrize("path", [
    "/UNKNOWNID11", "/", "/../etc/passwd", "/%2e%2e%2fetc%2fpasswd", "/a/b", "/x.wav",
    "/..%2F..%2Fetc%2Fpasswd"])
def test_unknown_and_hostile_paths_are_404(audio_server, path):
    status, _, body = get(audio_server.base_url + path)
    assert status == 404
    assert b"root:" not in body


def test_missing_ytid_is_404(audio_corpus, audio_server):
    missing = audio_corpus.by_kind("missing")
    audio_server.reset()
    status, _, _ = get(audio_server.url_template.format(ytid=missing.ytid))
    assert status == 404
    assert [(r.ytid, r.status) for r in audio_server.requests] == [(missing.ytid, 404)]


def test_rate_limited_server_answers_429_first(audio_corpus, rate_limited_server):
    segment = audio_corpus.by_kind("ogg_vorbis")
    url = rate_limited_server.url_template.format(ytid=segment.ytid)
    statuses = [get(url)[0] for _ in range(RATE_LIMITED_REQUESTS + 2)]
    assert statuses == [429] * RATE_LIMITED_REQUESTS + [200, 200]
    assert rate_limited_server.request_count == RATE_LIMITED_REQUESTS + 2
    rate_limited_server.reset(fail_first=1)  # re-armed, with a new count
    status, headers, _ = get(url)
    assert status == 429 and headers["Retry-After"] == "1"
    assert get(url)[0] == 200


def test_server_without_ranges_ignores_them(audio_corpus, make_audio_server):
    server = make_audio_server(ranges=False)
    segment = audio_corpus.by_kind("m4a_index_at_end")
    status, headers, body = get(server.url_template.format(ytid=segment.ytid),
                                headers={"Range": "bytes=100-199"})
    assert (status, body) == (200, file_bytes(segment.path))
    assert headers["Accept-Ranges"] == "none"


def get_eventually(url: str, seconds: float = 5.0):
    """The first answer other than 404 within ``seconds`` (the index is refreshed at most once a second)."""
    deadline = time.monotonic() + seconds
    while True:
        answer = get(url)
        if answer[0] != 404 or time.monotonic() > deadline:
            return answer
        time.sleep(0.1)


def test_files_added_later_are_found(tmp_path):
    with AudioServer(str(tmp_path)) as server:
        url = server.url_template.format(ytid="abcdefghijk")
        assert get(url)[0] == 404
        (tmp_path / "abcdefghijk.opus").write_bytes(b"OggS-not-really")
        status, headers, body = get_eventually(url)
        assert (status, body) == (200, b"OggS-not-really")
        assert headers["Content-Type"] == "audio/ogg"
    with pytest.raises(RuntimeError):
        _ = server.base_url  # stopped


class CountingServer(AudioServer):
    """Counts the directory scans."""

    scans = 0

    def _rescan(self) -> None:
        self.scans += 1
        super()._rescan()


def test_a_flood_of_unknown_ids_costs_no_directory_scan(tmp_path):
    (tmp_path / "abcdefghijk.wav").write_bytes(b"RIFF")
    an_hour_ago = time.time() - 3600
    os.utime(tmp_path, (an_hour_ago, an_hour_ago))  # a directory that has not changed lately
    with CountingServer(str(tmp_path)) as server:
        assert server.scans == 1
        statuses = {get(server.url_template.format(ytid=f"unknown{n:04d}"))[0] for n in range(50)}
        assert statuses == {404} and server.scans == 1  # the directory did not change: no scan
        (tmp_path / "bcdefghijkl.wav").write_bytes(b"RIFF")
        assert get_eventually(server.url_template.format(ytid="bcdefghijkl"))[0] == 200
        assert server.scans == 2
        started, before = time.monotonic(), server.scans
        for n in range(40):
            (tmp_path / f"new{n:08d}.wav").write_bytes(b"RIFF")  # the directory changes all the time
            get(server.url_template.format(ytid="nothing"))
        assert server.scans - before <= 1 + time.monotonic() - started  # at most one scan a second


@pytest.mark.parametrize("name", ["abcdefghijk.txt", "abcdefghijk.m3u8", "abcdefghijk", "abcdefghijk.py",
                                  ".abcdefghijk.wav", "Yabcdefghijk.json"])
def test_only_audio_files_are_served(tmp_path, name):
    (tmp_path / name).write_bytes(b"secret notes")
    with AudioServer(str(tmp_path)) as server:
        status, _, body = get(server.url_template.format(ytid="abcdefghijk"))
        assert status == 404 and b"secret" not in body


def test_a_symbolic_link_is_served_only_inside_the_directory(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    (tmp_path / "outside.wav").write_bytes(b"outside the directory")
    (served / "inside0000a.wav").write_bytes(b"inside")
    (served / "abcdefghijk.wav").symlink_to(tmp_path / "outside.wav")
    (served / "bcdefghijkl.wav").symlink_to(served / "inside0000a.wav")
    (served / "cdefghijklm.wav").write_bytes(b"swapped for a link after the index was built")
    with AudioServer(str(served)) as server:
        (served / "cdefghijklm.wav").unlink()
        (served / "cdefghijklm.wav").symlink_to(tmp_path / "outside.wav")
        assert get(server.url_template.format(ytid="abcdefghijk"))[0] == 404
        assert get(server.url_template.format(ytid="cdefghijklm"))[0] == 404
        assert get(server.url_template.format(ytid="bcdefghijkl"))[:3:2] == (200, b"inside")


def test_a_file_name_cannot_add_response_headers(tmp_path):
    (tmp_path / "abcdefghijk.wav\r\nX-Injected: yes").write_bytes(b"RIFF")
    (tmp_path / 'bcdefghijkl.wav').write_bytes(b"RIFF")
    with AudioServer(str(tmp_path)) as server:
        status, headers, _ = get(server.url_template.format(ytid="abcdefghijk"))
        assert status == 404 and "X-Injected" not in headers
        status, headers, _ = get(server.url_template.format(ytid="bcdefghijkl"))
        assert status == 200 and headers["Content-Disposition"] == 'inline; filename="bcdefghijkl.wav"'


def test_a_fifo_named_like_audio_is_not_opened(tmp_path):
    os.mkfifo(tmp_path / "abcdefghijk.wav")  # opening it for reading would block until a writer comes
    with AudioServer(str(tmp_path)) as server:
        assert get(server.url_template.format(ytid="abcdefghijk"))[0] == 404


def closed_within(connection: socket.socket, seconds: float) -> float | None:
    """Seconds until the server closed ``connection`` (reading what it sends), None if it did not."""
    started = time.monotonic()
    connection.settimeout(seconds)
    try:
        while connection.recv(65536):
            pass
    except TimeoutError:
        return None
    return time.monotonic() - started


def test_silent_and_idle_connections_are_closed_after_the_timeout(tmp_path):
    (tmp_path / "abcdefghijk.wav").write_bytes(b"RIFF")
    with AudioServer(str(tmp_path), timeout=0.5) as server:
        with socket.create_connection(("127.0.0.1", server.port)) as silent:
            silent.sendall(b"GET /abcdefghijk HTTP/1.1\r\n")  # and never the rest
            assert closed_within(silent, 5.0) is not None
        with socket.create_connection(("127.0.0.1", server.port)) as idle:  # keep-alive, then nothing
            idle.sendall(b"GET /abcdefghijk HTTP/1.1\r\nHost: x\r\n\r\n")
            assert closed_within(idle, 5.0) is not None


def test_plain_name_wins_over_y_prefixed(tmp_path):
    (tmp_path / "Yabcdefghijk.wav").write_bytes(b"prefixed")
    (tmp_path / "abcdefghijk.mp3").write_bytes(b"plain")
    with AudioServer(str(tmp_path)) as server:
        assert get(server.url_template.format(ytid="abcdefghijk"))[2] == b"plain"


def test_rejects_bad_arguments(tmp_path):
    with pytest.raises(NotADirectoryError):
        AudioServer(str(tmp_path / "nope"))
    with pytest.raises(ValueError):
        AudioServer(str(tmp_path), timeout=0)
    with pytest.raises(TypeError):
        AudioServer(str(tmp_path), fail_first=1)  # a test knob: tests.loopback_server.LoopbackServer
    with pytest.raises(ValueError):
        LoopbackServer(str(tmp_path), fail_first=-1)


def test_command_line(audio_corpus):
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline.audio_server", audio_corpus.directory, "--port", "0",
         "--timeout", "5"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    try:
        line = process.stdout.readline().strip()
        assert line.startswith("url template: http://127.0.0.1:") and line.endswith("/{ytid}")
        template = line.removeprefix("url template: ")
        segment = audio_corpus.by_kind("short_3s")
        status, _, body = get(template.format(ytid=segment.ytid))
        assert (status, body) == (200, file_bytes(segment.path))
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_help_documents_the_mirror():
    result = subprocess.run([sys.executable, "-m", "pipeline.audio_server", "--help"],
                            capture_output=True, text=True, check=True,
                            cwd=os.path.dirname(os.path.dirname(os.path.dirname(
                                os.path.abspath(__file__)))))
    text = " ".join(result.stdout.split()).replace("- ", "-")  # argparse wraps lines at hyphens
    for option in ("--port", "--host", "--timeout", "mirror", "url-template", "audio"):
        assert option in text
    assert "--fail-first" not in result.stdout  # forced 429s are a test knob (tests/loopback_server.py)

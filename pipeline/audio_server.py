"""A small HTTP "mirror" that serves a directory of audio files under their YouTube ids.

``GET /<ytid>`` answers with the file of the directory whose stem is ``<ytid>`` or ``Y<ytid>``
(any extension: the common layouts of AudioSet copies), with an audio ``Content-Type`` and a
``Content-Disposition`` file name, so that yt-dlp's generic extractor takes it for a direct media
link of the right format. Point the pipeline at it with
``--url-template 'http://HOST:PORT/{ytid}'`` and the real yt-dlp and ffmpeg code paths run
without YouTube: this is what the tests, the demo and the benchmarks use, and what a team with an
AudioSet copy on one machine can use to feed workers elsewhere.

What it does and why:

- HTTP ``Range`` requests (single ranges, ``206 Partial Content``): ffmpeg seeks with them, for
  example to read the index at the end of an m4a before its first audio packet.
- ``404`` for an id with no file, or anything that is not a plain id (no path ever leaves the
  directory).
- ``fail_first=N`` answers ``429 Too Many Requests`` to the first ``N`` requests, to test clients'
  back-off against a rate-limiting server.
- Every request is counted (``requests``), so tests can assert that a cached segment is never
  fetched again.

From Python::

    with AudioServer("/data/audioset") as server:
        fetch(server.url_template.format(ytid="--aE2O5G5WE"))

From a shell::

    python -m pipeline.audio_server /data/audioset --port 8000
"""
from __future__ import annotations

import argparse
import dataclasses
import http.server
import logging
import mimetypes
import os
import re
import threading
import urllib.parse
from typing import Iterator

logger = logging.getLogger(__name__)

# yt-dlp's generic extractor needs an audio/* (or video/*) type to treat a URL as direct media;
# Python's mimetypes table lacks or misnames several audio formats, so these come first.
AUDIO_CONTENT_TYPES = {
    ".aac": "audio/aac",
    ".aif": "audio/aiff",
    ".aiff": "audio/aiff",
    ".flac": "audio/flac",
    ".m4a": "audio/mp4",
    ".mka": "audio/x-matroska",
    ".mp3": "audio/mpeg",
    ".mp4": "video/mp4",
    ".oga": "audio/ogg",
    ".ogg": "audio/ogg",
    ".opus": "audio/ogg",
    ".wav": "audio/wav",
    ".weba": "audio/webm",
    ".webm": "audio/webm",
    ".wma": "audio/x-ms-wma",
}

# A request path names one id: no slashes, dots or other characters that could address another file.
_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_RANGE_PATTERN = re.compile(r"^bytes=(\d*)-(\d*)$")
_COPY_CHUNK = 1 << 16


def content_type(path: str) -> str:
    """The Content-Type to serve ``path`` with: audio types first, then Python's table."""
    extension = os.path.splitext(path)[1].lower()
    if extension in AUDIO_CONTENT_TYPES:
        return AUDIO_CONTENT_TYPES[extension]
    guessed, _ = mimetypes.guess_type(path)
    return guessed or "application/octet-stream"


@dataclasses.dataclass(frozen=True)
class Request:
    """One request as the server saw it (for tests and logs)."""

    method: str
    ytid: str
    status: int
    range: str | None


class AudioServer:
    """Serves ``directory`` over HTTP on ``host:port`` in a background thread.

    ``port=0`` picks a free port; read the real one from :attr:`port` or :attr:`base_url` after
    :meth:`start` (or entering the ``with`` block).
    """

    def __init__(self, directory: str, *, host: str = "127.0.0.1", port: int = 0,
                 fail_first: int = 0, ranges: bool = True) -> None:
        if not os.path.isdir(directory):
            raise NotADirectoryError(f"audio directory {directory!r} does not exist")
        if fail_first < 0:
            raise ValueError(f"fail_first must be >= 0, got {fail_first}")
        self.directory = os.path.abspath(directory)
        self.host = host
        self.requested_port = port
        self.fail_first = fail_first
        self.ranges = ranges
        self._lock = threading.Lock()
        self._requests: list[Request] = []
        self._rate_limited = 0
        self._index: dict[str, str] = {}
        self._httpd: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._rescan()

    # ---- lookup -------------------------------------------------------------------------------

    def _rescan(self) -> None:
        """Maps ids to file names; a plain ``<ytid>.ext`` wins over ``Y<ytid>.ext``."""
        index: dict[str, str] = {}
        prefixed: dict[str, str] = {}
        with os.scandir(self.directory) as entries:
            for entry in sorted(entries, key=lambda e: e.name):
                if not entry.is_file() or entry.name.startswith("."):
                    continue
                stem = os.path.splitext(entry.name)[0]
                index.setdefault(stem, entry.name)
                if stem.startswith("Y") and len(stem) > 1:
                    prefixed.setdefault(stem[1:], entry.name)
        for ytid, name in prefixed.items():
            index.setdefault(ytid, name)
        with self._lock:
            self._index = index

    def find(self, ytid: str) -> str | None:
        """The path of the file served for ``ytid``, or None. Rescans once on a miss, so files
        added while the server runs are found."""
        if not _ID_PATTERN.match(ytid):
            return None
        for attempt in range(2):
            with self._lock:
                name = self._index.get(ytid)
            if name is not None:
                path = os.path.join(self.directory, name)
                if os.path.isfile(path):
                    return path
            if attempt == 0:
                self._rescan()
        return None

    # ---- bookkeeping --------------------------------------------------------------------------

    def _record(self, request: Request) -> None:
        with self._lock:
            self._requests.append(request)

    def _take_rate_limit_slot(self) -> bool:
        """True while the first ``fail_first`` requests are being answered with 429."""
        with self._lock:
            if self._rate_limited < self.fail_first:
                self._rate_limited += 1
                return True
            return False

    @property
    def requests(self) -> list[Request]:
        """A copy of every request answered so far, in order."""
        with self._lock:
            return list(self._requests)

    @property
    def request_count(self) -> int:
        with self._lock:
            return len(self._requests)

    def requests_for(self, ytid: str) -> list[Request]:
        return [request for request in self.requests if request.ytid == ytid]

    def reset(self, *, fail_first: int | None = None) -> None:
        """Forgets the request log and re-arms ``fail_first`` (optionally changing it)."""
        with self._lock:
            self._requests.clear()
            self._rate_limited = 0
            if fail_first is not None:
                self.fail_first = fail_first

    # ---- life cycle ---------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("the server is not running; call start() first")
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        """``http://host:port`` without a trailing slash."""
        return f"http://{self.host}:{self.port}"

    @property
    def url_template(self) -> str:
        """The ``--url-template`` that points the pipeline at this server."""
        return f"{self.base_url}/{{ytid}}"

    def start(self) -> "AudioServer":
        if self._httpd is not None:
            return self
        handler = type("BoundHandler", (_Handler,), {"audio_server": self})
        self._httpd = _QuietServer((self.host, self.requested_port), handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="audio-server",
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        logger.info("serving %s at %s", self.directory, self.base_url)
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None
        self._thread = None

    def serve_forever(self) -> None:
        """Serves in the calling thread until interrupted (the command-line mode)."""
        self.start()
        try:
            assert self._thread is not None
            while self._thread.is_alive():
                self._thread.join(timeout=0.5)
        finally:
            self.stop()

    def __enter__(self) -> "AudioServer":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class _QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        # Clients (ffmpeg above all) hang up mid-request all the time; a traceback on stderr for
        # each would drown real problems.
        logger.debug("connection from %s ended with an error", client_address, exc_info=True)


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    """(first, last) byte of a single ``bytes=`` range, or None when it cannot be satisfied.

    Raises ValueError for a header this server does not understand (several ranges, other
    units): the caller then serves the whole file, as RFC 9110 allows.
    """
    match = _RANGE_PATTERN.match(header.strip())
    if not match or (not match.group(1) and not match.group(2)):
        raise ValueError(header)
    first_text, last_text = match.groups()
    if not first_text:  # suffix range: the last N bytes
        length = int(last_text)
        if length == 0 or size == 0:
            return None
        return max(0, size - length), size - 1
    first = int(first_text)
    last = int(last_text) if last_text else size - 1
    if first >= size or last < first:
        return None
    return first, min(last, size - 1)


class _Handler(http.server.BaseHTTPRequestHandler):
    audio_server: AudioServer  # set on the per-server subclass
    protocol_version = "HTTP/1.1"
    server_version = "MyGOAudioServer/1"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (stdlib signature)
        logger.debug("%s - %s", self.address_string(), format % args)

    def do_HEAD(self) -> None:  # noqa: N802 (stdlib naming)
        self._serve(send_body=False)

    def do_GET(self) -> None:  # noqa: N802
        self._serve(send_body=True)

    def _plain(self, status: int, text: str, send_body: bool,
               headers: dict[str, str] | None = None) -> None:
        body = (text + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def _serve(self, send_body: bool) -> None:
        server = self.audio_server
        ytid = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path).lstrip("/")
        range_header = self.headers.get("Range") if server.ranges else None

        if server._take_rate_limit_slot():
            server._record(Request(self.command, ytid, 429, range_header))
            self._plain(429, "Too Many Requests", send_body, {"Retry-After": "1"})
            return

        path = server.find(ytid)
        if path is None:
            server._record(Request(self.command, ytid, 404, range_header))
            self._plain(404, f"no audio for {ytid!r}", send_body)
            return

        size = os.path.getsize(path)
        first, last, status = 0, size - 1, 200
        if range_header:
            try:
                byte_range = _parse_range(range_header, size)
            except ValueError:
                byte_range = (0, size - 1)  # not understood: the whole file, with 200
            else:
                if byte_range is None:
                    server._record(Request(self.command, ytid, 416, range_header))
                    self._plain(416, "Range Not Satisfiable", send_body,
                                {"Content-Range": f"bytes */{size}"})
                    return
                first, last = byte_range
                status = 206
        server._record(Request(self.command, ytid, status, range_header))

        length = max(0, last - first + 1)
        self.send_response(status)
        self.send_header("Content-Type", content_type(path))
        self.send_header("Content-Length", str(length))
        self.send_header("Accept-Ranges", "bytes" if server.ranges else "none")
        self.send_header("Content-Disposition", f'inline; filename="{os.path.basename(path)}"')
        if status == 206:
            self.send_header("Content-Range", f"bytes {first}-{last}/{size}")
        self.end_headers()
        if not send_body or length == 0:
            return
        try:
            with open(path, "rb") as source:
                source.seek(first)
                for chunk in _read_chunks(source, length):
                    self.wfile.write(chunk)
        except (BrokenPipeError, ConnectionResetError):
            # ffmpeg drops a connection as soon as it has what it needs (for example after
            # reading an m4a index at the end of the file): normal, not an error.
            self.close_connection = True


def _read_chunks(source, length: int) -> Iterator[bytes]:
    remaining = length
    while remaining > 0:
        chunk = source.read(min(_COPY_CHUNK, remaining))
        if not chunk:
            return
        remaining -= len(chunk)
        yield chunk


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.audio_server",
        description="Serve a directory of audio files under their YouTube ids (a local AudioSet "
                    "mirror): GET /<ytid> answers with <ytid>.* or Y<ytid>.*. Point the pipeline "
                    "at it with --url-template 'http://HOST:PORT/{ytid}'.")
    parser.add_argument("directory", help="directory holding <ytid>.<ext> or Y<ytid>.<ext> files")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1; 0.0.0.0 serves other "
                             "machines too)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 = any free)")
    parser.add_argument("--fail-first", type=int, default=0, metavar="N",
                        help="answer 429 Too Many Requests to the first N requests (to test "
                             "clients' back-off)")
    parser.add_argument("--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s")
    server = AudioServer(args.directory, host=args.host, port=args.port, fail_first=args.fail_first)
    server.start()
    # Printed on stdout so scripts can read the template (useful with --port 0).
    print(f"url template: {server.url_template}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()

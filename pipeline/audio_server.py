"""A small HTTP "mirror" that serves a directory of audio files under their YouTube ids.

``GET /<ytid>`` answers with the audio file of the directory whose stem is ``<ytid>`` or
``Y<ytid>`` (the common layouts of AudioSet copies), with an audio ``Content-Type`` and a
``Content-Disposition`` file name, so that yt-dlp's generic extractor takes it for a direct media
link of the right format. Point the pipeline at it with
``--url-template 'http://HOST:PORT/{ytid}'`` and the real yt-dlp and ffmpeg code paths run
without YouTube: this is what the tests, the demo and the benchmarks use, and what a team with an
AudioSet copy on one machine can use to feed workers elsewhere, so it is built to face a network.

What it does and why:

- HTTP ``Range`` requests (single ranges, ``206 Partial Content``): ffmpeg seeks with them, for
  example to read the index at the end of an m4a before its first audio packet.
- Only audio: files whose extension is one of :data:`AUDIO_CONTENT_TYPES` are served, nothing
  else of the directory (no notes, keys or playlists), and no hidden files.
- Nothing outside the directory: a request names an id, never a path; a symbolic link is served
  only if it resolves to a regular file inside the directory (checked when the file is opened,
  which refuses a link put in place meanwhile); sub-directories are not looked into.
- No header injection: the ``Content-Disposition`` file name is the id and its audio extension,
  both from fixed character sets, never the raw file name.
- The index of ids is built at start and rebuilt when the directory changes (its modification
  time, one ``stat`` on a miss), at most once per ``rescan_interval`` seconds, so a flood of
  requests for unknown ids costs a ``stat`` each, not a directory scan each; a file added while
  the server runs is found within that interval.
- Time-outs: a connection that sends nothing for ``timeout`` seconds (30 by default), idle
  keep-alive connections included, is closed, as is one whose client stops reading, so slow or
  stalled clients cannot hold threads for ever.
- ``404`` for an id with no audio file, or anything that is not a plain id.

Tests count requests and force ``429`` answers with a subclass (``tests/loopback_server.py``),
through the :meth:`AudioServer.intercept` and :meth:`AudioServer.record` hooks.

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
import os
import re
import stat
import threading
import time
import urllib.parse
from typing import Iterator

logger = logging.getLogger(__name__)

# yt-dlp's generic extractor needs an audio/* (or video/*) type to treat a URL as direct media;
# Python's mimetypes table lacks or misnames several audio formats. Only these are served.
AUDIO_CONTENT_TYPES = {
    ".aac": "audio/aac",
    ".aif": "audio/aiff",
    ".aiff": "audio/aiff",
    ".au": "audio/basic",
    ".caf": "audio/x-caf",
    ".flac": "audio/flac",
    ".m4a": "audio/mp4",
    ".mka": "audio/x-matroska",
    ".mkv": "video/x-matroska",
    ".mp3": "audio/mpeg",
    ".mp4": "video/mp4",
    ".oga": "audio/ogg",
    ".ogg": "audio/ogg",
    ".opus": "audio/ogg",
    ".wav": "audio/wav",
    ".weba": "audio/webm",
    ".webm": "audio/webm",
    ".wma": "audio/x-ms-wma",
    ".wv": "audio/x-wavpack",
}

# A request path names one id: no slashes, dots or other characters that could address another file.
_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_RANGE_PATTERN = re.compile(r"^bytes=(\d*)-(\d*)$")
_COPY_CHUNK = 1 << 16
MTIME_SLACK_NS = 2_000_000_000


def content_type(path: str) -> str:
    """The Content-Type to serve ``path`` with (an audio file; anything else is not served)."""
    return AUDIO_CONTENT_TYPES.get(os.path.splitext(path)[1].lower(), "application/octet-stream")


@dataclasses.dataclass(frozen=True)
class Request:
    """One request as the server saw it (for logs, and for tests through :meth:`AudioServer.record`)."""

    method: str
    ytid: str
    status: int
    range: str | None


class AudioServer:
    """Serves the audio files of ``directory`` over HTTP on ``host:port`` in a background thread.

    ``port=0`` picks a free port; read the real one from :attr:`port` or :attr:`base_url` after
    :meth:`start` (or entering the ``with`` block). ``ranges=False`` ignores Range headers (a
    server without seeking, as some mirrors are).
    """

    def __init__(self, directory: str, *, host: str = "127.0.0.1", port: int = 0, ranges: bool = True,
                 timeout: float = 30.0, rescan_interval: float = 1.0) -> None:
        if not os.path.isdir(directory):
            raise NotADirectoryError(f"audio directory {directory!r} does not exist")
        if not timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout}")
        self.directory = os.path.abspath(directory)
        self.root = os.path.realpath(directory)
        self.host = host
        self.requested_port = port
        self.ranges = ranges
        self.timeout = timeout
        self.rescan_interval = rescan_interval
        self._lock = threading.Lock()
        self._scan_lock = threading.Lock()
        self._index: dict[str, str] = {}
        self._scanned_mtime = -1
        self._scanned_at = float("-inf")
        self._scanned_wall_ns = 0
        self._httpd: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._rescan()

    # ---- lookup -------------------------------------------------------------------------------

    def _rescan(self) -> None:
        """Maps ids to the names of audio files; a plain ``<ytid>.ext`` wins over ``Y<ytid>.ext``."""
        mtime = os.stat(self.directory).st_mtime_ns
        index: dict[str, str] = {}
        prefixed: dict[str, str] = {}
        with os.scandir(self.directory) as entries:
            for entry in sorted(entries, key=lambda e: e.name):
                stem, extension = os.path.splitext(entry.name)
                if (entry.name.startswith(".") or extension.lower() not in AUDIO_CONTENT_TYPES
                        or not _ID_PATTERN.match(stem)):
                    continue
                index.setdefault(stem, entry.name)
                if stem.startswith("Y") and len(stem) > 1:
                    prefixed.setdefault(stem[1:], entry.name)
        for ytid, name in prefixed.items():
            index.setdefault(ytid, name)
        with self._lock:
            self._index = index
            self._scanned_mtime = mtime
            self._scanned_at = time.monotonic()
            self._scanned_wall_ns = time.time_ns()

    def _refresh(self) -> None:
        """Rescans if the directory changed since the last scan, at most once per
        ``rescan_interval`` and by one thread at a time (the others go on with the old index)."""
        try:
            mtime = os.stat(self.directory).st_mtime_ns
        except OSError:
            return
        with self._lock:
            # A change within a coarse clock tick of the scan (file systems with 1-2 s times) may
            # leave the time as it was: a directory changed that recently is scanned again.
            changed = mtime != self._scanned_mtime or mtime >= self._scanned_wall_ns - MTIME_SLACK_NS
            due = changed and time.monotonic() - self._scanned_at >= self.rescan_interval
        if due and self._scan_lock.acquire(blocking=False):
            try:
                self._rescan()
            finally:
                self._scan_lock.release()

    def find(self, ytid: str) -> str | None:
        """The path of the audio file served for ``ytid``, or None. On a miss the index is
        refreshed if the directory changed (see :meth:`_refresh`)."""
        if not _ID_PATTERN.match(ytid):
            return None
        for attempt in range(2):
            with self._lock:
                name = self._index.get(ytid)
            if name is not None:
                return os.path.join(self.directory, name)
            if attempt == 0:
                self._refresh()
        return None

    def open(self, path: str) -> tuple[int, int] | None:
        """(file descriptor, size) of ``path`` if it is a regular file inside the directory, with
        any symbolic link resolved first and the final file opened without following another
        (so a link swapped in after the check is refused too); None otherwise."""
        real = os.path.realpath(path)
        if not real.startswith(self.root + os.sep):
            logger.warning("refused %s: it resolves to %s, outside %s", path, real, self.root)
            return None
        try:
            descriptor = os.open(real, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
        except OSError:
            return None
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):  # a FIFO or device would block or never end
            os.close(descriptor)
            return None
        return descriptor, info.st_size

    # ---- hooks (tests/loopback_server.py) -----------------------------------------------------

    def intercept(self, method: str, ytid: str, range_header: str | None) -> tuple[int, str, dict[str, str]] | None:
        """An answer to give before looking the id up, as (status, text, headers), or None.
        The mirror has none; a test server answers 429 here."""
        return None

    def record(self, request: Request) -> None:
        """Called for every answer."""
        logger.debug("%s %s → %d%s", request.method, request.ytid, request.status,
                     f" ({request.range})" if request.range else "")

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
        handler = type("BoundHandler", (_Handler,), {"audio_server": self, "timeout": self.timeout})
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
        # Clients (ffmpeg above all) hang up mid-request all the time, and idle ones time out; a
        # traceback on stderr for each would drown real problems.
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
        shown = ytid if _ID_PATTERN.match(ytid) else "(not an id)"  # nothing of the request echoed raw
        range_header = self.headers.get("Range") if server.ranges else None

        early = server.intercept(self.command, ytid, range_header)
        if early is not None:
            status, text, headers = early
            server.record(Request(self.command, ytid, status, range_header))
            self._plain(status, text, send_body, headers)
            return

        path = server.find(ytid)
        opened = server.open(path) if path is not None else None
        if opened is None:
            server.record(Request(self.command, ytid, 404, range_header))
            self._plain(404, f"no audio for {shown}", send_body)
            return
        descriptor, size = opened
        with os.fdopen(descriptor, "rb") as source:
            self._send_file(server, source, ytid, os.path.splitext(path)[1].lower(), size, range_header, send_body)

    def _send_file(self, server: AudioServer, source, ytid: str, extension: str, size: int,
                   range_header: str | None, send_body: bool) -> None:
        first, last, status = 0, size - 1, 200
        if range_header:
            try:
                byte_range = _parse_range(range_header, size)
            except ValueError:
                byte_range = (0, size - 1)  # not understood: the whole file, with 200
            else:
                if byte_range is None:
                    server.record(Request(self.command, ytid, 416, range_header))
                    self._plain(416, "Range Not Satisfiable", send_body,
                                {"Content-Range": f"bytes */{size}"})
                    return
                first, last = byte_range
                status = 206
        server.record(Request(self.command, ytid, status, range_header))

        length = max(0, last - first + 1)
        self.send_response(status)
        self.send_header("Content-Type", AUDIO_CONTENT_TYPES[extension])
        self.send_header("Content-Length", str(length))
        self.send_header("Accept-Ranges", "bytes" if server.ranges else "none")
        # The id and the extension only: both from fixed character sets, whatever the file's name.
        self.send_header("Content-Disposition", f'inline; filename="{ytid}{extension}"')
        if status == 206:
            self.send_header("Content-Range", f"bytes {first}-{last}/{size}")
        self.end_headers()
        if not send_body or length == 0:
            return
        try:
            source.seek(first)
            for chunk in _read_chunks(source, length):
                self.wfile.write(chunk)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            # ffmpeg drops a connection as soon as it has what it needs (for example after
            # reading an m4a index at the end of the file): normal, not an error. A client that
            # stops reading runs into the time-out.
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
                    "mirror): GET /<ytid> answers with the audio file <ytid>.* or Y<ytid>.* (audio "
                    "extensions only; nothing outside DIR). Point the pipeline at it with "
                    "--url-template 'http://HOST:PORT/{ytid}'.")
    parser.add_argument("directory", help="directory holding <ytid>.<ext> or Y<ytid>.<ext> files")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1; 0.0.0.0 serves other "
                             "machines too)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 = any free)")
    parser.add_argument("--timeout", type=float, default=30.0, metavar="S",
                        help="close a connection that sends nothing, or stops reading, for S seconds "
                             "(default 30)")
    parser.add_argument("--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s")
    server = AudioServer(args.directory, host=args.host, port=args.port, timeout=args.timeout)
    server.start()
    # Printed on stdout so scripts can read the template (useful with --port 0).
    print(f"url template: {server.url_template}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()

"""Fetching one AudioSet segment into the content cache, with yt-dlp's Python API.

The cache is what makes a re-run cheap: one entry per YTID and range,

    <cache>/<ytid>_<start ms>_<end ms>.<ext>            the audio of the segment
    <cache>/<ytid>_<start ms>_<end ms>.failure.json     the last failure, when there is no audio

A cached segment is never fetched again; a recorded *permanent* failure is returned as it is
unless ``retry_failed``; a *transient* one is tried again. Downloads happen in a hidden temporary
directory inside the cache and are renamed into place only once complete and decodable, so a
killed worker never leaves an entry that a re-run would trust (``os.replace`` is atomic within a
file system).

How a segment is fetched:

1. yt-dlp extracts the media URL (best audio), and ffmpeg, run by this module, stream-copies
   [start, end] of it (``-ss/-t`` before ``-i``: no re-encoding, a few hundred kB per segment) —
   what yt-dlp's ``download_ranges`` does, but under our limits (see :func:`_download_section`:
   a wall-clock limit, ``-rw_timeout``, HTTP(S) and audio demuxers only, and no cookies or
   passwords on its command line). A stream copy cuts at packet boundaries, so such an entry may
   start up to one packet early (about 20 ms for YouTube's Opus and AAC, 93 ms for 4096-sample
   FLAC frames).
2. The result is decoded (ffmpeg, to a small mono PCM stream) to check that it holds audio. A
   section download can "succeed" with an empty or index-less file: an m4a whose ``moov`` index
   sits at the end of the file, served by a host that cannot seek, comes back as an mp4 with no
   stream at all; a range past the end of the source comes back with a packet or two.
3. When the section does not decode, holds less than was asked for (more than
   ``SHORT_TOLERANCE_S`` short: the source ends inside the segment, so its whole file is short
   and cheap), or must not be fetched by ffmpeg (its URL takes cookies or a password), the whole
   file is downloaded with yt-dlp's native HTTP downloader (whose errors carry the HTTP status,
   so they classify well) and [start, end] is cut locally with ffmpeg, re-encoded to FLAC:
   lossless with respect to the decoded samples, sample-accurate at the cut, any channel count
   up to 8 and any rate, and a container every ffmpeg reads from a pipe or a file. The cached
   file is then ``<stem>.flac``.

Limits: a range longer than ``max_seconds`` (``--max-seconds``) is a ``too_long`` failure before
anything is downloaded; every ffmpeg runs under ``ffmpeg_timeout`` (a transient ``timeout``);
a write error in the cache is a transient ``local_io`` failure, and the worker stops when the
cache takes no write at all (:class:`_LocalIo`).

``rate_limit`` applies to yt-dlp's own HTTP downloads (the whole-file path); the ffmpeg that
fetches sections is not throttled by yt-dlp, so ``sleep_interval`` is the knob that paces those.

Failures are classified from the tool's message into the failure reasons of docs/design.md by
:func:`classify_error`; transient ones are retried with exponential back-off. Cookies and proxy
credentials never leave this module: every message is passed through :func:`redact`, and each
yt-dlp run gets a private copy of the cookie file, because it writes cookies back to the file it
was given; the copy is deleted when the run ends, and copies a killed worker left behind at the
next start (:func:`_sweep_once`).
The cookie file may be remote (``gs://``: a cloud runner's workers cannot see the launching
machine's files); each worker process reads it once.

YouTube's player challenges need a JavaScript runtime: yt-dlp runs its solver (yt-dlp-ejs) in the
deno that setup.py installs, whose path is handed to yt-dlp. yt-dlp's warnings (no runtime, missing
formats) are logged as warnings, each distinct one once per process.

A ``gs://`` (or any other ``scheme://``) cache works through ``tf.io.gfile`` (TensorFlow is
imported only then); the download itself always happens in a local temporary directory.
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime
import functools
import glob
import json
import logging
import math
import os
import random
import re
import shutil
import socket
import tempfile
import threading
import time
import urllib.parse
from typing import Any, Iterator

from audioshards.audio import (AUDIO_DEMUXERS, DEFAULT_MAX_SECONDS, DecodeError, FfmpegTimeout, local_input,
                            local_input_options, run_ffmpeg)
from audioshards import storage
from audioshards.flags import setting
from pipeline.segments import YTID_PATTERN

logger = logging.getLogger(__name__)

FAILURE_SUFFIX = ".failure.json"
# Below this much decoded audio a download is treated as empty (a range past the end of the
# source comes back as a single AAC packet, about 21 ms).
MIN_AUDIO_S = 0.1
# A section shorter than asked for by more than this is fetched again whole and cut locally: the
# source may end inside the segment (then the whole file is short and cheap), or start after it
# (a section download past the end can still return a packet or two), or the section is broken.
# Stream copies cut at packet boundaries, so a good section is within a packet or two of the ask.
SHORT_TOLERANCE_S = 0.5
# Temporary download directories older than this are debris of killed workers.
STALE_TMP_S = 3600.0
# Cookie values shorter than this are not redacted one by one: replacing "1", "en" or "yes"
# everywhere would garble messages, and values that short are flags, not credentials.
MIN_SECRET_LEN = 6


@dataclasses.dataclass(frozen=True)
class FetchConfig:
    url_template: str = setting(
        "https://www.youtube.com/watch?v={ytid}", "where a YTID is fetched from (with --audio-dir and no "
        "template, segments without a local file are recorded as missing_local)", metavar="URL")
    cookies: str | None = setting(None, "cookies.txt (Netscape format) for yt-dlp's 'cookiefile', local or gs:// "
                                        "(each worker copies it); contents never logged", metavar="FILE")
    proxy: str | None = setting(None, "proxy URL for yt-dlp (credentials never logged)", metavar="URL")
    rate_limit: int | None = setting(None, "bytes per second of each yt-dlp whole-file download (section downloads "
                                           "run in ffmpeg, unthrottled: pace those with --sleep-interval)",
                                     metavar="BYTES_PER_S")
    sleep_interval: float = setting(0.0, "seconds to sleep before each download attempt", metavar="S")
    retries: int = setting(4, "attempts for transient failures (429, bot check, network), with exponential back-off",
                           metavar="N")
    backoff_s: float = setting(2.0, "first back-off in seconds, doubled each attempt", flag="--backoff", metavar="S")
    retry_failed: bool = setting(False, "retry segments whose permanent failure is recorded in the cache")
    ffmpeg_timeout: float = setting(300.0, "wall-clock limit of each ffmpeg run while fetching (section download, "
                                           "check, local cut): past it, it is killed and the attempt is a transient "
                                           "timeout", metavar="S")
    socket_timeout: float = 30.0  # yt-dlp's sockets, and ffmpeg's -rw_timeout
    # Longest segment fetched (JobConfig copies ClipSettings.max_seconds, the --max-seconds flag, here).
    max_seconds: float = DEFAULT_MAX_SECONDS
    # The worker stops after this many fetches in a row could not write to the cache (see _LocalIo).
    local_io_limit: int = 20

    def __post_init__(self) -> None:
        if self.url_template:
            try:
                probe = self.url_template.format(ytid="YTID_PROBE_")
            except (KeyError, IndexError, ValueError) as error:
                raise ValueError(f"url_template {self.url_template!r} must contain {{ytid}} and "
                                 f"no other {{...}} field ({error})") from None
            if "YTID_PROBE_" not in probe:
                raise ValueError(f"url_template {self.url_template!r} must contain {{ytid}}")
        if self.retries < 1:
            raise ValueError(f"retries must be at least 1 (one attempt, no retry), "
                             f"got {self.retries}")
        for name in ("sleep_interval", "backoff_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.socket_timeout <= 0:
            raise ValueError(f"socket_timeout must be > 0, got {self.socket_timeout}")
        if not 0 < self.ffmpeg_timeout < float("inf"):
            raise ValueError(f"--ffmpeg-timeout must be a positive number of seconds, got {self.ffmpeg_timeout}")
        if not 0 < self.max_seconds < float("inf"):
            raise ValueError(f"max_seconds must be a positive number of seconds, got {self.max_seconds}")
        if self.local_io_limit < 1:
            raise ValueError(f"local_io_limit must be at least 1, got {self.local_io_limit}")
        if self.rate_limit is not None and self.rate_limit <= 0:
            raise ValueError(f"rate_limit must be a positive number of bytes/s, "
                             f"got {self.rate_limit}")

    def __repr__(self) -> str:
        # Beam and pytest print configs; the proxy's credentials must not go with them (no field
        # holds a cookie value, so the cookie file is not read for this).
        fields = ", ".join(
            f"{field.name}={_without(repr(getattr(self, field.name)), _proxy_secrets(self.proxy))}"
            for field in dataclasses.fields(self))  # _without ends with redact_url: the template's too
        return f"FetchConfig({fields})"


@dataclasses.dataclass(frozen=True)
class Failure:
    reason: str        # failure class, see classify_error
    permanent: bool
    message: str       # the tool's message, secrets redacted
    attempts: int
    time: str          # ISO-8601 UTC


@dataclasses.dataclass(frozen=True)
class FetchResult:
    path: str | None         # cached audio file of the segment (None on failure)
    failure: Failure | None
    cached: bool             # True when nothing was downloaded this time


# ---- classification ----------------------------------------------------------------------------

# (reason, permanent, pattern) checked in order: specific YouTube texts before generic ones
# ("Private video. Sign in if you've been granted access" must not read as a login wall,
# "Video unavailable. This video has been removed by the uploader" not as plain unavailable).
# The texts are yt-dlp's messages (ExtractorError, HTTP and network errors) and YouTube's
# playability reasons that yt-dlp passes through.
_RULES: tuple[tuple[str, bool, re.Pattern[str]], ...] = tuple(
    (reason, permanent, re.compile(pattern, re.IGNORECASE)) for reason, permanent, pattern in (
        ("timeout", False, r"ffmpeg ran longer than"),
        ("bot_check", False, r"confirm you.?re not a bot|captcha"),
        ("rate_limited", False, r"HTTP Error 429|Too Many Requests|rate.?limit|"
                                r"content isn.?t available, try again later"),
        ("age_restricted", True, r"confirm your age|age.?restricted|age.?gate|"
                                 r"inappropriate for some users|offensive to some audiences"),
        ("private", True, r"private video|video is private"),
        ("members_only", True, r"members.?only|join this channel"),
        ("geo_blocked", True, r"not made this video available in your country|"
                              r"not available (?:from|in) your (?:location|country)|"
                              r"geo.?restrict|blocked it in your country"),
        ("removed", True, r"removed by the uploader|has been removed|account associated with "
                          r"this video has been terminated|copyright claim|"
                          r"violating YouTube|no longer available|HTTP Error 410"),
        ("unavailable", True, r"video unavailable|video is unavailable|"
                              r"video is not available|this content isn.?t available|"
                              r"live event will begin|premieres in"),
        ("login_required", True, r"sign in|login required|log in|"
                                 r"only available for registered users|HTTP Error 401"),
        ("not_found", True, r"HTTP Error 404|404: Not Found|Not Found \(caused by"),
        ("forbidden", False, r"HTTP Error 403|Forbidden"),
        ("unsupported", True, r"Unsupported URL|no video formats found|"
                              r"Requested format is not available|DRM protected"),
        ("server_error", False, r"HTTP Error 5\d\d|Internal Server Error|Bad Gateway|"
                                r"Service Unavailable|Gateway Time-?out"),
        ("network", False, r"timed? ?out|Connection refused|Connection reset|Connection aborted|"
                           r"Remote end closed|IncompleteRead|Broken pipe|Network is unreachable|"
                           r"No route to host|Name or service not known|name resolution|"
                           r"getaddrinfo failed|Unable to connect to proxy|ProxyError|"
                           r"SSL|TransportError|urlopen error|bytes read, \d+ more expected|"
                           r"Unable to download (?:webpage|video data|API page)"),
        ("local_io", False, r"No space left on device|Read-only file system|Permission denied|File too large|"
                            r"Disk quota exceeded|Not a directory|Errno (?:13|27|28|30|122)\b"),
        ("empty", True, r"no audio in|Output file is empty|does not contain any stream|"
                        r"contains no audio|matches no streams|empty"),
        ("decode_error", True, r"Invalid data found|moov atom not found|could not find codec|"
                               r"Error while decoding|invalid frame|Invalid argument|"
                               r"Failed to read frame|unknown format|End of file|"
                               r"could not be decoded|decode|not on whitelist"),
    ))

REASONS: dict[str, bool] = {reason: permanent for reason, permanent, _ in _RULES}
REASONS["unknown"] = False  # unknown reasons stay transient: never skip a segment for good blindly
REASONS["too_long"] = True  # a CSV range longer than --max-seconds (never fetched)


def classify_error(message: str) -> tuple[str, bool]:
    """(reason, permanent) for a yt-dlp or ffmpeg error text.

    Permanent reasons describe the video (private, removed, ...) and are not retried unless the
    user asks; transient ones describe the moment (rate limits, bot checks, the network) and are
    retried now with back-off and again on the next run. Unknown texts count as transient, so a
    message this table has never seen does not make a segment disappear for good.
    """
    for reason, permanent, pattern in _RULES:
        if pattern.search(message):
            return reason, permanent
    return "unknown", False


# ---- secrets -----------------------------------------------------------------------------------

# The authority's user part runs to its last "@": a raw "@" in a password must not end it.
_USERINFO_PATTERN = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)[^\s/?#]*@")
# A whole value of the form user[:pass]@host[:port][/...] with no scheme (a proxy may omit it).
_BARE_USERINFO_PATTERN = re.compile(r"^[^\s/?#:@]+(?::[^\s/?#]*)?@(?=[^\s/?#@]+(?:[/?#]\S*)?$)")
_ANSI_PATTERN = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _proxy_secrets(proxy: str | None) -> list[str]:
    if not proxy:
        return []
    parsed = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    userinfo = parsed.netloc.rpartition("@")[0] if "@" in parsed.netloc else ""
    secrets = [userinfo]
    for part in (parsed.username, parsed.password):
        if part:
            secrets += [part, urllib.parse.unquote(part)]
    return [secret for secret in secrets if len(secret) >= 3]


@functools.lru_cache(maxsize=4)
def _cookie_bytes(source: str) -> bytes:
    """The cookie file ``source`` (local or scheme://), read once per process: every download of
    the worker gets a private copy of these bytes (see _private_cookie_file)."""
    if not storage.exists(source):
        raise FileNotFoundError(f"cookies file {source!r} does not exist")
    return storage.read_bytes(source)


@functools.lru_cache(maxsize=4)
def _cookie_secrets(source: str) -> tuple[str, ...]:
    """Cookie values of a Netscape cookies.txt."""
    values = []
    for line in _cookie_bytes(source).decode("utf-8", errors="replace").splitlines():
        if line.startswith("#HttpOnly_"):
            line = line[len("#HttpOnly_"):]
        elif line.startswith("#") or not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) >= 7 and len(fields[6]) >= MIN_SECRET_LEN:
            values.append(fields[6])
    return tuple(values)


def _private_cookie_file(config: FetchConfig, out_dir: str) -> str:
    """A copy of the cookie file in ``out_dir``, readable by this user only: yt-dlp writes cookies
    back to the file it reads, so parallel downloads must never share one (nor the user's)."""
    path = os.path.join(out_dir, "cookies.txt")
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(_cookie_bytes(config.cookies))
    return path


def check_cookies(config: FetchConfig, local_workers: bool) -> None:
    """At launch: a missing cookie file is said once (ValueError naming the path, never the
    contents) instead of failing every worker. A local path given to a cluster's workers is read
    inside their containers, which the launcher cannot see: that only gets a warning."""
    if not config.cookies:
        return
    if not (local_workers or storage.is_remote(config.cookies)):
        logger.warning("--cookies %s is a local path: each worker reads it inside its own container, so it "
                       "must exist there (a gs:// path is copied by every worker instead)", config.cookies)
    elif not storage.exists(config.cookies):
        raise ValueError(f"--cookies {config.cookies}: no such file")


def redact(text: str, config: FetchConfig) -> str:
    """``text`` without the proxy's credentials, cookie values or any ``user:pass@`` in URLs."""
    secrets = _proxy_secrets(config.proxy)
    if config.cookies:
        secrets += _cookie_secrets(config.cookies)
    return _without(text, secrets)


def _without(text: str, secrets: list[str]) -> str:
    for secret in sorted(set(secrets), key=len, reverse=True):
        text = text.replace(secret, "***")
    return redact_url(text)


def redact_url(text: str) -> str:
    """The one redaction of URL credentials, for messages, settings and command lines alike.

    Every ``scheme://user:pass@host`` in ``text`` becomes ``scheme://***@host``; the user part
    runs to the *last* ``@`` before the host's ``/``, so a password holding a raw ``@`` goes
    whole. A ``text`` that is nothing but ``user:pass@host[:port]`` (a proxy given without its
    scheme) loses its user part too.
    """
    text = _USERINFO_PATTERN.sub(r"\g<scheme>***@", text)
    return _BARE_USERINFO_PATTERN.sub("***@", text)


def redact_value(value: Any) -> Any:
    """``value`` (a setting: a string, or lists and dicts of them) with :func:`redact_url`
    applied to every string in it, for the manifest and logs."""
    if isinstance(value, str):
        return redact_url(value)
    if isinstance(value, dict):
        return {key: redact_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact_value(item) for item in value)
    return value


def _clean_message(text: str, config: FetchConfig) -> str:
    """One readable, redacted line: no colour codes, no 'ERROR:' prefix, bounded length."""
    text = _ANSI_PATTERN.sub("", text).strip()
    text = re.sub(r"^(?:ERROR:\s*)+", "", text)
    text = re.sub(r";?\s*please report this issue on .*$", "", text, flags=re.DOTALL)
    text = " ".join(text.split())
    return redact(text, config)[:2000]


# ---- cache storage (local, or scheme:// through tf.io.gfile: audioshards.storage) -------------

def _remove_stale_temporaries(cache_dir: str, stem: str) -> None:
    """Deletes old temporary directories of this segment left by killed workers (recent ones may
    belong to a worker still running)."""
    for path in glob.glob(os.path.join(cache_dir, f".{glob.escape(stem)}.*.tmp")):
        try:
            if time.time() - os.path.getmtime(path) > STALE_TMP_S:
                shutil.rmtree(path, ignore_errors=True)
        except OSError:
            pass


def _list_stem(cache_dir: str, stem: str) -> list[str]:
    return storage.glob(storage.join(cache_dir, glob.escape(stem) + ".*"))


def _write_text_atomic(cache_dir: str, name: str, text: str, work_dir: str) -> None:
    local = os.path.join(work_dir, name)
    with open(local, "w", encoding="utf-8") as handle:
        handle.write(text)
    storage.publish(local, storage.join(cache_dir, name))


# ---- entry points ------------------------------------------------------------------------------

def segment_stem(ytid: str, start_s: float, end_s: float) -> str:
    """Cache name of a segment without extension: ``<ytid>_<start ms>_<end ms>``."""
    return f"{ytid}_{round(start_s * 1000)}_{round(end_s * 1000)}"


def validate_segment(ytid: str, start_s: float, end_s: float) -> None:
    """Refuses anything that is not AudioSet's id form or a sane range, so no CSV value can steer
    a path out of the cache or into a command."""
    if not isinstance(ytid, str) or not YTID_PATTERN.match(ytid):
        raise ValueError(f"invalid YouTube id {ytid!r}: expected 11 characters of A-Za-z0-9_-")
    if not (math.isfinite(start_s) and math.isfinite(end_s)) or start_s < 0 or end_s <= start_s:
        raise ValueError(f"invalid segment [{start_s}, {end_s}] for {ytid}: need 0 <= start < end")


def cached_segment(ytid: str, start_s: float, end_s: float, cache_dir: str) -> str | None:
    """The cached audio file of a segment, or None."""
    validate_segment(ytid, start_s, end_s)
    for path in _list_stem(cache_dir, segment_stem(ytid, start_s, end_s)):
        if not path.endswith(FAILURE_SUFFIX) and ".tmp-" not in path:
            return path
    return None


def read_failure(ytid: str, start_s: float, end_s: float, cache_dir: str) -> Failure | None:
    """The failure recorded for a segment, or None (an unreadable record counts as none)."""
    validate_segment(ytid, start_s, end_s)
    path = storage.join(cache_dir, segment_stem(ytid, start_s, end_s) + FAILURE_SUFFIX)
    if not storage.exists(path):
        return None
    try:
        record = json.loads(storage.read_bytes(path))
        return Failure(reason=str(record["reason"]), permanent=bool(record["permanent"]),
                       message=str(record["message"]), attempts=int(record["attempts"]),
                       time=str(record["time"]))
    except (ValueError, KeyError, TypeError) as error:
        logger.warning("ignoring unreadable failure record %s: %s", path, error)
        return None


def fetch_segment(ytid: str, start_s: float, end_s: float, cache_dir: str,
                  config: FetchConfig) -> FetchResult:
    """Returns the cached audio of [start_s, end_s] of ``ytid``, downloading it when needed.

    Never raises for a problem of the video, the network or the cache's disk: those come back as
    a :class:`Failure` (and are recorded in the cache when it can be written). Raises ValueError
    for an invalid id or range and FileNotFoundError for a missing cookies file (mistakes of the
    caller), and :class:`CacheUnwritable` when writes to the cache keep failing (see _LocalIo).
    """
    validate_segment(ytid, start_s, end_s)
    if not config.url_template:
        raise ValueError("FetchConfig.url_template is empty: there is nowhere to fetch from")
    if config.cookies:
        _cookie_bytes(config.cookies)  # read once per process; raises when missing
    if not storage.is_remote(cache_dir):
        cache_dir = os.path.abspath(cache_dir)  # paths handed on must not depend on the cwd
    stem = segment_stem(ytid, start_s, end_s)
    if end_s - start_s > config.max_seconds:
        # The CSV's fault, not the video's: not recorded in the cache (a larger --max-seconds
        # fetches it), and nothing is downloaded.
        return FetchResult(path=None, cached=False, failure=Failure(
            "too_long", True, f"the segment [{start_s:g}, {end_s:g}] is longer than {config.max_seconds:g} s "
            f"(--max-seconds)", 0, _now()))

    path = cached_segment(ytid, start_s, end_s, cache_dir)
    if path is not None:
        logger.debug("cached: %s", path)
        return FetchResult(path=path, failure=None, cached=True)
    previous = read_failure(ytid, start_s, end_s, cache_dir)
    if previous is not None and previous.permanent and not config.retry_failed:
        logger.debug("cached permanent failure for %s: %s", stem, previous.reason)
        return FetchResult(path=None, failure=previous, cached=True)

    work_parent = None if storage.is_remote(cache_dir) else cache_dir
    try:
        if work_parent is not None:
            os.makedirs(cache_dir, exist_ok=True)
            _remove_stale_temporaries(cache_dir, stem)
        _sweep_once(work_parent or tempfile.gettempdir())
        work_dir = tempfile.mkdtemp(prefix=f".{stem}.{_owner()}-", suffix=".tmp", dir=work_parent)
        try:
            result = _fetch_with_retries(ytid, start_s, end_s, cache_dir, stem, config, work_dir)
        finally:
            shutil.rmtree(work_dir, ignore_errors=True)
    except OSError as error:  # the cache cannot be written: a full disk, a quota, permissions
        failure = Failure("local_io", False, _clean_message(f"{type(error).__name__}: {error}", config),
                          1, _now())
        logger.warning("failed %s: local_io (transient): %s", stem, failure.message)
        _LOCAL_IO.failed(cache_dir, failure.message, config.local_io_limit)
        return FetchResult(path=None, failure=failure, cached=False)
    if result.failure is not None and result.failure.reason == "local_io":
        _LOCAL_IO.failed(cache_dir, result.failure.message, config.local_io_limit)
    else:
        _LOCAL_IO.succeeded()
    return result


class CacheUnwritable(OSError):
    """Writes to the cache kept failing: the job stops rather than record every segment as a
    local_io failure."""


class _LocalIo:
    """The rule that stops a job whose cache cannot be written: ``local_io_limit`` (20) fetches in
    a row in one worker process failed to write to the cache, with no fetch in between that
    wrote its audio or its failure record. A cache that is full now and then only costs the
    segments that met it (transient failures, retried by the next run); one that takes no write
    at all stops the job after 20 segments instead of failing every segment of the split."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.in_a_row = 0

    def failed(self, cache_dir: str, message: str, limit: int) -> None:
        with self.lock:
            self.in_a_row += 1
            if self.in_a_row < limit:
                return
            self.in_a_row = 0
        raise CacheUnwritable(f"{limit} fetches in a row could not write to the cache {cache_dir}, the last: "
                              f"{message}. Free space or fix its permissions, then run the same command again.")

    def succeeded(self) -> None:
        with self.lock:
            self.in_a_row = 0


_LOCAL_IO = _LocalIo()
# Work directories are named after their host and process, so that a sweep can tell a dead
# worker's (SIGKILL) from a running one's: .<stem>.<host>-<pid>-<random>.tmp
_HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:40] or "host"
_WORK_DIR_PATTERN = re.compile(r"^\.[^/]+_\d+_\d+\.(?:(?P<host>[A-Za-z0-9-]+)-(?P<pid>\d+)-)?[^/.]*\.tmp$")
_swept: set[str] = set()


def _owner() -> str:
    return f"{_HOST}-{os.getpid()}"  # at call time: a forked worker has its own pid


def _sweep_once(directory: str) -> None:
    """Once per process and directory (so at a worker's first fetch, i.e. when a job starts):
    deletes the work directories, with any private cookie copy in them, of workers of this host
    that are gone (killed with SIGKILL, which no ``finally`` survives). Another host's, or one
    named the old way, goes when older than STALE_TMP_S. Only names of our work directories are
    looked at (the directory may be the system's temporary directory, for a remote cache)."""
    if directory in _swept:
        return
    _swept.add(directory)
    for path in glob.glob(os.path.join(glob.escape(directory), ".*.tmp")):
        match = _WORK_DIR_PATTERN.match(os.path.basename(path))
        if not match or not os.path.isdir(path):
            continue
        try:
            if match["host"] == _HOST:
                if int(match["pid"]) != os.getpid() and not _alive(int(match["pid"])):
                    logger.info("removing %s, left by a killed worker", path)
                    shutil.rmtree(path, ignore_errors=True)
            elif time.time() - os.path.getmtime(path) > STALE_TMP_S:
                shutil.rmtree(path, ignore_errors=True)
        except OSError:
            pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


# ---- the download ------------------------------------------------------------------------------

class _FetchError(Exception):
    """A classified failure of one attempt (message already redacted)."""

    def __init__(self, message: str, reason: str | None = None, permanent: bool | None = None):
        super().__init__(message)
        self.message = message
        if reason is None:
            reason, permanent = classify_error(message)
        self.reason = reason
        self.permanent = bool(permanent)


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _fetch_with_retries(ytid: str, start_s: float, end_s: float, cache_dir: str, stem: str,
                        config: FetchConfig, work_dir: str) -> FetchResult:
    failure: Failure | None = None
    for attempt in range(1, config.retries + 1):
        if config.sleep_interval > 0:
            time.sleep(config.sleep_interval)
        attempt_dir = os.path.join(work_dir, f"attempt{attempt}")
        os.makedirs(attempt_dir)
        started = time.monotonic()
        try:
            local = _download_segment(ytid, start_s, end_s, config, attempt_dir)
        except _FetchError as error:
            failure = Failure(reason=error.reason, permanent=error.permanent, message=error.message,
                              attempts=attempt, time=_now())
            if error.permanent or error.reason == "local_io" or attempt == config.retries:
                break  # a full disk does not empty itself in seconds: the next run retries
            delay = config.backoff_s * 2 ** (attempt - 1)
            delay += random.uniform(0, 0.1 * delay)  # de-synchronises parallel workers
            logger.info("%s: %s (attempt %d of %d), retrying in %.1f s",
                        stem, error.reason, attempt, config.retries, delay)
            time.sleep(delay)
            continue
        final = storage.join(cache_dir, stem + os.path.splitext(local)[1])
        size = os.path.getsize(local)
        storage.publish(local, final)
        storage.remove(storage.join(cache_dir, stem + FAILURE_SUFFIX))  # a success ends a failure's story
        logger.debug("fetched %s (%d bytes, %.1f s, attempt %d)", final, size,
                    time.monotonic() - started, attempt)
        return FetchResult(path=final, failure=None, cached=False)

    assert failure is not None
    record = {"ytid": ytid, "start_s": start_s, "end_s": end_s, **dataclasses.asdict(failure)}
    _write_text_atomic(cache_dir, stem + FAILURE_SUFFIX, json.dumps(record, indent=1) + "\n",
                       work_dir)
    # Permanent failures are the normal fate of a share of AudioSet (videos go away): INFO, and
    # failures.jsonl has them all; running out of retries deserves a WARNING.
    logger.log(logging.INFO if failure.permanent else logging.WARNING,
               "failed %s: %s (%s, %d attempt(s)): %s", stem, failure.reason,
               "permanent" if failure.permanent else "transient", failure.attempts,
               failure.message)
    return FetchResult(path=None, failure=failure, cached=False)


# Distinct warnings already logged by this process (bounded: a warning may name its video).
_warned: set[str] = set()
MAX_WARNED = 1000


class _YtdlpLogger:
    """Routes yt-dlp's output to our logger, redacted; its errors reach us as exceptions.

    Its warnings matter (no JavaScript runtime, formats missing, a sign-in wall coming): each
    distinct one is a WARNING once per process, then DEBUG, so thousands of downloads do not
    repeat it thousands of times.
    """

    def __init__(self, config: FetchConfig) -> None:
        self.config = config

    def debug(self, message: str) -> None:
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("yt-dlp: %s", _clean_message(message, self.config))

    info = debug
    error = debug

    def warning(self, message: str) -> None:
        text = _clean_message(message, self.config)
        if text in _warned or len(_warned) >= MAX_WARNED:
            logger.debug("yt-dlp: %s", text)
            return
        _warned.add(text)
        logger.warning("yt-dlp: %s", text)


@functools.lru_cache(maxsize=1)
def _deno_path() -> str | None:
    """The deno binary of the deno wheel setup.py installs. yt-dlp looks for deno only beside this
    Python and on PATH; ``pip install --user`` or ``--target`` puts it elsewhere."""
    try:
        from deno import find_deno_bin
    except ImportError:
        return None
    try:
        return find_deno_bin()
    except FileNotFoundError:
        return None


def _ytdlp_options(config: FetchConfig, out_dir: str, name: str) -> dict[str, Any]:
    options: dict[str, Any] = {
        "format": "bestaudio/best",
        "outtmpl": {"default": os.path.join(out_dir, f"{name}.%(ext)s")},
        "quiet": True,
        "verbose": logger.isEnabledFor(logging.DEBUG),
        "no_warnings": True,
        "noprogress": True,
        "logger": _YtdlpLogger(config),
        "noplaylist": True,
        "overwrites": True,
        "cachedir": False,           # no shared ~/.cache state between parallel workers
        "socket_timeout": config.socket_timeout,
        # One place decides about retries and back-off: here, with the classified reason.
        "retries": 0,
        "fragment_retries": 0,
        "extractor_retries": 0,
        "file_access_retries": 0,
    }
    if _deno_path():
        options["js_runtimes"] = {"deno": {"path": _deno_path()}}  # else yt-dlp's default: deno on PATH
    # yt-dlp may post-process with ffmpeg (e.g. fix-ups of an m4a): ours, never.
    options["fixup"] = "never"
    if config.cookies:
        options["cookiefile"] = _private_cookie_file(config, out_dir)
    if config.proxy:
        options["proxy"] = config.proxy
    if config.rate_limit:
        options["ratelimit"] = int(config.rate_limit)
    return options


def _run_ytdlp(url: str, options: dict[str, Any], config: FetchConfig) -> None:
    """Runs one yt-dlp download; raises _FetchError with a classified, redacted message."""
    import yt_dlp

    with _ytdlp_errors(options, config), yt_dlp.YoutubeDL(options) as ydl:
        ydl.download([url])


@contextlib.contextmanager
def _ytdlp_errors(options: dict[str, Any], config: FetchConfig) -> Iterator[None]:
    """Around a yt-dlp call: its errors become a _FetchError with a classified, redacted message,
    and the private cookie copy is deleted whatever happens."""
    import yt_dlp

    try:
        yield
    except yt_dlp.utils.DownloadError as error:
        raise _FetchError(_clean_message(str(error), config)) from None
    except Exception as error:  # yt-dlp wraps most errors; whatever escapes must not leak secrets
        raise _FetchError(_clean_message(f"{type(error).__name__}: {error}", config)) from None
    finally:
        _forget_cookie_copy(options)


def _forget_cookie_copy(options: dict[str, Any]) -> None:
    """Deletes the private cookie copy as soon as yt-dlp has closed it (written back), so it lives
    for one yt-dlp run, not for the whole fetch."""
    if options.get("cookiefile"):
        try:
            os.remove(options["cookiefile"])
        except FileNotFoundError:
            pass


def _downloaded_file(out_dir: str, name: str) -> str | None:
    for path in sorted(glob.glob(os.path.join(out_dir, glob.escape(name) + ".*"))):
        if not path.endswith((".part", ".ytdl", ".temp")) and os.path.getsize(path) > 0:
            return path
    return None


def _ffmpeg(args: list[str], config: FetchConfig, env: dict[str, str] | None = None) -> bytes:
    """One ffmpeg run with the fetch's wall-clock limit; failures as classified _FetchErrors
    (a timeout is transient), without our temporary paths (they differ on every run)."""
    try:
        return run_ffmpeg(args, config.ffmpeg_timeout, env=env)
    except FfmpegTimeout as error:
        raise _FetchError(str(error), "timeout", False) from None
    except DecodeError as error:
        text = re.sub(r"(?:file:)?\S*\.tmp/attempt\d+/", "", str(error))
        raise _FetchError(_clean_message(text, config)) from None


def _decoded_duration(path: str, config: FetchConfig) -> float:
    """Seconds of audio that actually decode from ``path`` (its first audio stream), up to the cap.

    Decoding rather than reading the container's header: an index-less file can announce a
    duration it does not hold. 8 kHz mono 16-bit keeps this to ~160 kB per 10 s.
    """
    options = local_input_options()
    args = [*_flat(options), "-i", local_input(path), "-map", "0:a:0", "-t", f"{config.max_seconds + 1:.3f}",
            "-f", "s16le", "-acodec", "pcm_s16le", "-ac", "1", "-ar", "8000", "pipe:"]
    return len(_ffmpeg(args, config)) / (2 * 8000)


def _flat(options: dict[str, str]) -> list[str]:
    return [item for key, value in options.items() for item in (f"-{key}", value)]


def _cut_locally(source: str, start_s: float, end_s: float, out_path: str,
                 config: FetchConfig) -> None:
    """[start_s, end_s] of ``source`` re-encoded to FLAC (why FLAC: see the module docstring)."""
    args = [*_flat(local_input_options()), "-ss", f"{start_s:.3f}", "-t", f"{end_s - start_s:.3f}",
            "-i", local_input(source), "-map", "0:a:0", "-acodec", "flac", "-map_metadata", "-1",
            "-f", "flac", "-y", local_input(out_path)]
    _ffmpeg(args, config)


#: Containers a section is stream-copied into, by the extension yt-dlp reports (yt-dlp's own
#: mapping); any other extension is fetched whole by yt-dlp and cut locally.
_SECTION_MUXERS = {"m4a": "ipod", "mp4": "mp4", "webm": "webm", "weba": "webm", "mka": "matroska",
                   "mkv": "matroska", "ogg": "ogg", "oga": "ogg", "opus": "opus", "mp3": "mp3",
                   "flac": "flac", "wav": "wav", "aac": "adts"}
#: What a section download may open: the media URL over HTTP(S), through an HTTP proxy.
_NETWORK_PROTOCOLS = "http,https,tcp,tls,httpproxy"


def _media_of(url: str, config: FetchConfig, out_dir: str) -> tuple[dict[str, Any], str | None]:
    """yt-dlp's extraction only: the chosen format (URL, extension, headers), and why ffmpeg must
    not fetch it (None when it may)."""
    import yt_dlp

    options = _ytdlp_options(config, out_dir, "section")
    with _ytdlp_errors(options, config), yt_dlp.YoutubeDL(options) as ydl:
        info = ydl.extract_info(url, download=False)
        media_url = str(info.get("url") or "")
        has_cookies = bool(media_url.startswith(("http:", "https:"))
                           and ydl.cookiejar.get_cookies_for_url(media_url))
    headers = info.get("http_headers") or {}
    if info.get("requested_formats") or info.get("protocol") not in ("http", "https"):
        return info, f"the format's protocol is {info.get('protocol')}, not a single HTTP(S) file"
    if info.get("ext") not in _SECTION_MUXERS:
        return info, f"the format's extension is {info.get('ext')!r}"
    if has_cookies:
        return info, "the media URL takes cookies, which are never handed to ffmpeg"
    if urllib.parse.urlsplit(media_url).username is not None or any(
            key.lower() in ("cookie", "authorization", "proxy-authorization") for key in headers):
        return info, "the media URL carries credentials, which are never handed to ffmpeg"
    if config.proxy and not re.match(r"https?://", config.proxy):
        return info, "ffmpeg takes HTTP proxies only"
    return info, None


def _download_section(info: dict[str, Any], start_s: float, end_s: float, config: FetchConfig,
                      out_dir: str) -> str:
    """[start_s, end_s] of the media URL stream-copied by ffmpeg, run here (not inside yt-dlp) so
    that it gets our limits: ``-rw_timeout`` (a server that stalls), the wall-clock limit, HTTP(S)
    only and the audio demuxers only.

    What ffmpeg is never given: cookies and credentials. ffmpeg 5 reads options from its command
    line only (``-cookies``, ``-headers``; reading an option from a file, ``-/opt``, came with
    ffmpeg 7), and a command line is readable by every local user in ``/proc/PID/cmdline``; so a
    section whose URL would need cookies or a password is not downloaded by ffmpeg at all
    (:func:`_media_of` says why) but whole by yt-dlp's own downloader, where they stay inside this
    process, and cut locally. YouTube's media URLs (googlevideo.com) take no cookies of
    youtube.com, so its sections are still section downloads. A proxy, with its password, goes
    in the environment (``http_proxy``), which only this user can read, as yt-dlp does it.
    """
    ext = str(info["ext"])
    headers = "".join(f"{key}: {value}\r\n" for key, value in (info.get("http_headers") or {}).items()
                      if "\r" not in f"{key}{value}" and "\n" not in f"{key}{value}")
    out_path = os.path.join(out_dir, f"section.{ext}")
    args = ["-rw_timeout", str(int(config.socket_timeout * 1e6)), "-protocol_whitelist", _NETWORK_PROTOCOLS,
            "-format_whitelist", AUDIO_DEMUXERS]
    if headers:
        args += ["-headers", headers]
    args += ["-ss", str(float(start_s)), "-t", str(float(end_s - start_s)), "-i", str(info["url"]),
             "-map", "0:a:0", "-c", "copy", "-f", _SECTION_MUXERS[ext], "-y", local_input(out_path)]
    env = None
    if config.proxy:
        env = {**os.environ, "http_proxy": config.proxy, "HTTP_PROXY": config.proxy}
    _ffmpeg(args, config, env=env)
    return out_path


def _download_segment(ytid: str, start_s: float, end_s: float, config: FetchConfig,
                      out_dir: str) -> str:
    """One attempt: section download, check, and the whole-file fallback. Returns a local path."""
    url = config.url_template.format(ytid=ytid)
    wanted = end_s - start_s

    # Errors of the extraction (HTTP status, YouTube's reasons) are final for this attempt.
    info, section_problem = _media_of(url, config, out_dir)
    if section_problem is None:
        try:
            path = _download_section(info, start_s, end_s, config, out_dir)
        except _FetchError as error:
            # A stalled or slow transfer and a full disk would only repeat with the whole file;
            # anything else (a host that cannot seek, an index at the end) may work whole.
            if error.reason in ("timeout", "local_io"):
                raise
            section_problem = f"the section download failed ({error.message})"
        else:
            try:
                seconds = _decoded_duration(path, config)
            except _FetchError as error:
                if error.reason in ("timeout", "local_io"):
                    raise
                section_problem = f"the section does not decode ({error.message})"
            else:
                if seconds < MIN_AUDIO_S:
                    section_problem = f"the section holds {seconds:.3f} s of audio"
                elif seconds < wanted - SHORT_TOLERANCE_S:
                    section_problem = (f"the section holds {seconds:.2f} s of audio where "
                                       f"{wanted:.2f} s were asked for")
                else:
                    return path

    logger.info("%s [%.3f, %.3f]: %s; downloading the whole file to cut it locally",
                ytid, start_s, end_s, section_problem)
    _run_ytdlp(url, _ytdlp_options(config, out_dir, "whole"), config)
    whole = _downloaded_file(out_dir, "whole")
    if whole is None:
        raise _FetchError(f"the download of {ytid} produced an empty file", "empty", True)
    cut = os.path.join(out_dir, "cut.flac")
    _cut_locally(whole, start_s, end_s, cut, config)
    seconds = _decoded_duration(cut, config)
    if seconds < MIN_AUDIO_S:
        raise _FetchError(f"no audio in [{start_s:.3f}, {end_s:.3f}] of {ytid} "
                          f"({seconds:.3f} s decoded)", "empty", True)
    return cut

"""One attempt at a segment, with yt-dlp's Python API and ffmpeg: the download strategy.

yt-dlp extracts the media URL; ffmpeg, run here under our limits, stream-copies the section; the
section is decoded to check that it holds the audio asked for; when it does not, or when ffmpeg
must not fetch it (its URL takes cookies or a password), yt-dlp downloads the whole file and
ffmpeg cuts the segment locally, to FLAC (the steps and their reasons: :mod:`pipeline.fetch`).
Every failure comes out as a classified, redacted :class:`~pipeline.fetch.errors.FetchError`;
retrying is not decided here.

yt-dlp's output goes to this module's logger, redacted; its warnings (no JavaScript runtime,
missing formats) are logged as warnings, each distinct one once per process.
"""
from __future__ import annotations

import contextlib
import functools
import glob
import logging
import os
import re
import urllib.parse
from typing import Any, Iterator

from audioshards.audio import (AUDIO_DEMUXERS, DecodeError, FfmpegTimeout, local_input, local_input_options,
                               run_ffmpeg)
from pipeline.fetch.config import FetchConfig
from pipeline.fetch.credentials import clean_message, private_cookie_file
from pipeline.fetch.errors import FetchError

logger = logging.getLogger(__name__)

# Below this much decoded audio a download is treated as empty (a range past the end of the
# source comes back as a single AAC packet, about 21 ms).
MIN_AUDIO_S = 0.1
# A section shorter than asked for by more than this is fetched again whole and cut locally: the
# source may end inside the segment (then the whole file is short and cheap), or start after it
# (a section download past the end can still return a packet or two), or the section is broken.
# Stream copies cut at packet boundaries, so a good section is within a packet or two of the ask.
SHORT_TOLERANCE_S = 0.5
#: Most distinct yt-dlp warnings one process remembers (a warning may name its video).
MAX_WARNED = 1000


class WarnedOnce:
    """Distinct warnings already logged by a process, so that each is logged once. Bounded, since a
    warning may name its video: once ``limit`` texts are remembered, new ones count as seen."""

    def __init__(self, limit: int = MAX_WARNED) -> None:
        self.limit = limit
        self.texts: set[str] = set()

    def first(self, text: str) -> bool:
        """True the first time ``text`` is seen while fewer than ``limit`` texts are remembered."""
        if text in self.texts or len(self.texts) >= self.limit:
            return False
        self.texts.add(text)
        return True


#: The yt-dlp warnings this process has logged at WARNING (a fresh worker process starts empty).
YTDLP_WARNINGS = WarnedOnce()


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
            logger.debug("yt-dlp: %s", clean_message(message, self.config))

    info = debug
    error = debug

    def warning(self, message: str) -> None:
        text = clean_message(message, self.config)
        if not YTDLP_WARNINGS.first(text):
            logger.debug("yt-dlp: %s", text)
            return
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


def ytdlp_options(config: FetchConfig, out_dir: str, name: str) -> dict[str, Any]:
    """The options of one yt-dlp run writing ``out_dir/name.<ext>``: best audio, quiet but logged
    through our logger, no retries of its own, no shared cache, no post-processing, the deno that
    setup.py installs, and a private copy of the cookie file (the run deletes it when it ends)."""
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
        # One place decides about retries and back-off: pipeline.fetch.retry, with the classified reason.
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
        options["cookiefile"] = private_cookie_file(config, out_dir)
    if config.proxy:
        options["proxy"] = config.proxy
    if config.rate_limit:
        options["ratelimit"] = int(config.rate_limit)
    return options


def _run_ytdlp(url: str, options: dict[str, Any], config: FetchConfig) -> None:
    """Runs one yt-dlp download; raises FetchError with a classified, redacted message."""
    import yt_dlp

    with _ytdlp_errors(options, config), yt_dlp.YoutubeDL(options) as ydl:
        ydl.download([url])


@contextlib.contextmanager
def _ytdlp_errors(options: dict[str, Any], config: FetchConfig) -> Iterator[None]:
    """Around a yt-dlp call: its errors become a FetchError with a classified, redacted message,
    and the private cookie copy is deleted whatever happens."""
    import yt_dlp

    try:
        yield
    except yt_dlp.utils.DownloadError as error:
        raise FetchError(clean_message(str(error), config)) from None
    except Exception as error:  # yt-dlp wraps most errors; whatever escapes must not leak secrets
        raise FetchError(clean_message(f"{type(error).__name__}: {error}", config)) from None
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
    """One ffmpeg run with the fetch's wall-clock limit; failures as classified FetchErrors
    (a timeout is transient), without our temporary paths (they differ on every run)."""
    try:
        return run_ffmpeg(args, config.ffmpeg_timeout, env=env)
    except FfmpegTimeout as error:
        raise FetchError(str(error), "timeout", False) from None
    except DecodeError as error:
        text = re.sub(r"(?:file:)?\S*\.tmp/attempt\d+/", "", str(error))
        raise FetchError(clean_message(text, config)) from None


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
    """[start_s, end_s] of ``source`` re-encoded to FLAC (why FLAC: see :mod:`pipeline.fetch`)."""
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

    options = ytdlp_options(config, out_dir, "section")
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


def download_segment(ytid: str, start_s: float, end_s: float, config: FetchConfig,
                      out_dir: str) -> str:
    """One attempt: section download, check, and the whole-file fallback. Returns a local path."""
    url = config.url_template.format(ytid=ytid)
    wanted = end_s - start_s

    # Errors of the extraction (HTTP status, YouTube's reasons) are final for this attempt.
    info, section_problem = _media_of(url, config, out_dir)
    if section_problem is None:
        try:
            path = _download_section(info, start_s, end_s, config, out_dir)
        except FetchError as error:
            # A stalled or slow transfer and a full disk would only repeat with the whole file;
            # anything else (a host that cannot seek, an index at the end) may work whole.
            if error.reason in ("timeout", "local_io"):
                raise
            section_problem = f"the section download failed ({error.message})"
        else:
            try:
                seconds = _decoded_duration(path, config)
            except FetchError as error:
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
    _run_ytdlp(url, ytdlp_options(config, out_dir, "whole"), config)
    whole = _downloaded_file(out_dir, "whole")
    if whole is None:
        raise FetchError(f"the download of {ytid} produced an empty file", "empty", True)
    cut = os.path.join(out_dir, "cut.flac")
    _cut_locally(whole, start_s, end_s, cut, config)
    seconds = _decoded_duration(cut, config)
    if seconds < MIN_AUDIO_S:
        raise FetchError(f"no audio in [{start_s:.3f}, {end_s:.3f}] of {ytid} "
                          f"({seconds:.3f} s decoded)", "empty", True)
    return cut

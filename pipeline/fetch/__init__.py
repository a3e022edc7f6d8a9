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

1. yt-dlp extracts the media URL (best audio), and ffmpeg, run by this package, stream-copies
   [start, end] of it (``-ss/-t`` before ``-i``: no re-encoding, a few hundred kB per segment) —
   what yt-dlp's ``download_ranges`` does, but under our limits (see :mod:`pipeline.fetch.download`:
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
cache takes no write at all (:class:`CacheUnwritable`).

``rate_limit`` applies to yt-dlp's own HTTP downloads (the whole-file path); the ffmpeg that
fetches sections is not throttled by yt-dlp, so ``sleep_interval`` is the knob that paces those.

Failures are classified from the tool's message into the failure reasons of docs/design.md by
:func:`classify_error`; transient ones are retried with exponential back-off. Cookies and proxy
credentials never leave this package: every message is passed through :func:`redact`, and each
yt-dlp run gets a private copy of the cookie file, because it writes cookies back to the file it
was given; the copy is deleted when the run ends, and copies a killed worker left behind at the
next start (see :mod:`pipeline.fetch.cache`).
The cookie file may be remote (``gs://``: a cloud runner's workers cannot see the launching
machine's files); each worker process reads it once.

YouTube's player challenges need a JavaScript runtime: yt-dlp runs its solver (yt-dlp-ejs) in the
deno that setup.py installs, whose path is handed to yt-dlp. yt-dlp's warnings (no runtime, missing
formats) are logged as warnings, each distinct one once per process.

A ``gs://`` (or any other ``scheme://``) cache works through ``tf.io.gfile`` (TensorFlow is
imported only then); the download itself always happens in a local temporary directory.

The package, one module per job:

- :mod:`~pipeline.fetch.config`: the settings (``FetchConfig``) and what a fetch returns
  (``Failure``, ``FetchResult``);
- :mod:`~pipeline.fetch.errors`: the failure reasons, and which message means which;
- :mod:`~pipeline.fetch.credentials`: cookies and proxy credentials, and their redaction;
- :mod:`~pipeline.fetch.cache_writes`: writing to a local or remote cache, and giving up on it;
- :mod:`~pipeline.fetch.cache`: the cache's layout, its reads, and the work directories;
- :mod:`~pipeline.fetch.download`: one attempt, with yt-dlp and ffmpeg;
- :mod:`~pipeline.fetch.retry`: the attempts and their back-off;
- :mod:`~pipeline.fetch.segment_fetch`: :func:`fetch_segment`, the entry point.
"""
from __future__ import annotations

from pipeline.fetch.cache import (FAILURE_SUFFIX, STALE_TMP_S, cached_segment, read_failure, segment_stem,
                                  validate_segment)
from pipeline.fetch.cache_writes import CacheUnwritable
from pipeline.fetch.config import Failure, FetchConfig, FetchResult
from pipeline.fetch.credentials import MIN_SECRET_LEN, check_cookies, redact, redact_url, redact_value
from pipeline.fetch.download import MAX_WARNED, MIN_AUDIO_S, SHORT_TOLERANCE_S
from pipeline.fetch.errors import REASONS, classify_error
from pipeline.fetch.segment_fetch import fetch_segment

__all__ = ["FAILURE_SUFFIX", "MAX_WARNED", "MIN_AUDIO_S", "MIN_SECRET_LEN", "REASONS", "SHORT_TOLERANCE_S",
           "STALE_TMP_S", "CacheUnwritable", "Failure", "FetchConfig", "FetchResult", "cached_segment",
           "check_cookies", "classify_error", "fetch_segment", "read_failure", "redact", "redact_url",
           "redact_value", "segment_stem", "validate_segment"]

"""The fetch's settings and what a fetch returns.

:class:`FetchConfig` holds the ``fetch.*`` flags (checked when built, printed without the proxy's
credentials); :class:`Failure` is both what a failed fetch returns and the cache's failure record;
:class:`FetchResult` is what :func:`pipeline.fetch.fetch_segment` returns.
"""
from __future__ import annotations

import dataclasses

from audioshards.audio import DEFAULT_MAX_SECONDS
from audioshards.flags import setting
from pipeline.fetch.credentials import proxy_secrets, without_secrets


@dataclasses.dataclass(frozen=True)
class FetchConfig:
    """How segments are fetched: where from, with which credentials, how fast, how often, within
    which limits. One per job, copied to every worker."""

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
    # The worker stops after this many fetches in a row could not write to the cache (see
    # pipeline.fetch.cache_writes.LocalIoCounter).
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
            f"{field.name}={without_secrets(repr(getattr(self, field.name)), proxy_secrets(self.proxy))}"
            for field in dataclasses.fields(self))  # without_secrets ends with redact_url: the template's too
        return f"FetchConfig({fields})"


@dataclasses.dataclass(frozen=True)
class Failure:
    """Why a segment has no audio: returned by a fetch, and recorded in the cache so that the next
    run knows whether to try again (``permanent``)."""

    reason: str        # failure class, see classify_error
    permanent: bool
    message: str       # the tool's message, secrets redacted
    attempts: int
    time: str          # ISO-8601 UTC


@dataclasses.dataclass(frozen=True)
class FetchResult:
    """The outcome of one fetch: the cached audio or a failure, and whether the cache alone
    answered."""

    path: str | None         # cached audio file of the segment (None on failure)
    failure: Failure | None
    cached: bool             # True when nothing was downloaded this time

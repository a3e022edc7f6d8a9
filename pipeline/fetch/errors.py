"""Failure reasons: which failure a yt-dlp or ffmpeg message describes, and whether it is for good.

The reasons are those of docs/design.md. A *permanent* reason describes the video (private,
removed, ...): it is recorded in the cache and not tried again unless ``retry_failed``. A
*transient* one describes the moment (rate limits, bot checks, the network, a full disk): it is
retried with back-off now, and again on the next run.
"""
from __future__ import annotations

import re

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


class FetchError(Exception):
    """A classified failure of one attempt (message already redacted): raised by the download,
    turned into a :class:`pipeline.fetch.Failure` by the retries."""

    def __init__(self, message: str, reason: str | None = None, permanent: bool | None = None):
        super().__init__(message)
        self.message = message
        if reason is None:
            reason, permanent = classify_error(message)
        self.reason = reason
        self.permanent = bool(permanent)

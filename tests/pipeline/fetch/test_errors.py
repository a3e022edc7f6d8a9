"""pipeline.fetch.errors: yt-dlp's and ffmpeg's messages classified into the failure reasons."""
from __future__ import annotations

import pytest

from pipeline.fetch import REASONS, classify_error
from pipeline.fetch.errors import FetchError


# Messages as yt-dlp prints them (YouTube's playability texts pass through it unchanged).
MESSAGES = [
    ("ERROR: [youtube] dQw4w9WgXcQ: Video unavailable", "unavailable", True),
    ("ERROR: [youtube] dQw4w9WgXcQ: Video unavailable. This video is unavailable",
     "unavailable", True),
    ("ERROR: [youtube] dQw4w9WgXcQ: Private video. Sign in if you've been granted access to this "
     "video. Use --cookies-from-browser or --cookies for the authentication.", "private", True),
    ("ERROR: [youtube] dQw4w9WgXcQ: Video unavailable. This video has been removed by the uploader",
     "removed", True),
    ("ERROR: [youtube] dQw4w9WgXcQ: Video unavailable. This video is no longer available because "
     "the YouTube account associated with this video has been terminated.", "removed", True),
    ("ERROR: [youtube] dQw4w9WgXcQ: Video unavailable. This video is no longer available due to a "
     "copyright claim by Someone", "removed", True),
    ("ERROR: [youtube] dQw4w9WgXcQ: This video has been removed for violating YouTube's Terms of "
     "Service", "removed", True),
    ("ERROR: [youtube] dQw4w9WgXcQ: Video unavailable. The uploader has not made this video "
     "available in your country", "geo_blocked", True),
    ("ERROR: [youtube] dQw4w9WgXcQ: The uploader has not made this video available in your "
     "country. This video is available in US.", "geo_blocked", True),
    ("ERROR: [youtube] dQw4w9WgXcQ: Sign in to confirm your age. This video may be inappropriate "
     "for some users. Use --cookies-from-browser or --cookies for the authentication.",
     "age_restricted", True),
    ("ERROR: [youtube] dQw4w9WgXcQ: Sign in to confirm you\u2019re not a bot. Use "
     "--cookies-from-browser or --cookies for the authentication.", "bot_check", False),
    ("ERROR: [youtube] dQw4w9WgXcQ: Sign in to confirm you're not a bot. This helps protect our "
     "community. Learn more", "bot_check", False),
    ("ERROR: [youtube] dQw4w9WgXcQ: Join this channel to get access to members-only content like "
     "this video, and other exclusive perks.", "members_only", True),
    ("ERROR: [youtube] dQw4w9WgXcQ: This content isn't available, try again later. The current "
     "session has been rate-limited by YouTube for up to an hour.", "rate_limited", False),
    ("ERROR: [youtube] dQw4w9WgXcQ: Unable to download API page: HTTP Error 429: Too Many Requests "
     "(caused by <HTTPError 429: Too Many Requests>)", "rate_limited", False),
    ("ERROR: [generic] abc: Unable to download webpage: HTTP Error 404: Not Found (caused by "
     "<HTTPError 404: Not Found>)", "not_found", True),
    ("ERROR: unable to download video data: HTTP Error 403: Forbidden", "forbidden", False),
    ("ERROR: unable to download video data: HTTP Error 503: Service Unavailable",
     "server_error", False),
    ("ERROR: [generic] abc: Unable to download webpage: <urlopen error [Errno 111] Connection "
     "refused> (caused by TransportError('<urlopen error [Errno 111] Connection refused>'))",
     "network", False),
    ("ERROR: [youtube] abc: Unable to download webpage: ('Unable to connect to proxy', "
     "OSError('Tunnel connection failed: 407 Proxy Authentication Required'))", "network", False),
    ("ERROR: unable to download video data: The read operation timed out", "network", False),
    ("ERROR: [Errno 104] Connection reset by peer", "network", False),
    ("ERROR: 5242880 bytes read, 1048576 more expected", "network", False),
    ("ERROR: [youtube] abc: Requested format is not available. Use --list-formats for a list of "
     "available formats", "unsupported", True),
    ("ERROR: Unsupported URL: https://example.com/", "unsupported", True),
    ("whole.m4a: Invalid data found when processing input", "decode_error", True),
    ("[mov,mp4,m4a,3gp,3g2,mj2 @ 0x5581] moov atom not found", "decode_error", True),
    ("Output file does not contain any stream", "empty", True),
    ("ERROR: [Errno 28] No space left on device", "local_io", False),
    ("something nobody has seen before", "unknown", False),
]


@pytest.mark.parametrize("message, reason, permanent", MESSAGES)
def test_classify_error(message, reason, permanent):
    assert classify_error(message) == (reason, permanent)
    assert REASONS[reason] is permanent


def test_design_reasons_are_all_known():
    for reason in ("unavailable", "private", "removed", "geo_blocked", "age_restricted",
                   "rate_limited", "bot_check", "network", "decode_error", "empty"):
        assert reason in REASONS
    assert [reason for reason, permanent in REASONS.items() if not permanent] == [
        "timeout", "bot_check", "rate_limited", "forbidden", "server_error", "network", "local_io", "unknown"]


def test_a_fetch_error_classifies_its_message_unless_told():
    error = FetchError("HTTP Error 404: Not Found")
    assert (error.message, error.reason, error.permanent) == ("HTTP Error 404: Not Found", "not_found", True)
    told = FetchError("ffmpeg ran longer than 2 s and was stopped (timeout)", "timeout", False)
    assert (told.reason, told.permanent) == ("timeout", False)
    assert str(told) == told.message

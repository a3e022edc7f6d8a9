"""Cookies and proxy credentials: read, handed to yt-dlp, and kept out of every message.

Cookies and proxy credentials never leave the fetch: every message is passed through
:func:`redact` (:func:`clean_message` for a tool's output), and each yt-dlp run gets a private
copy of the cookie file (:func:`private_cookie_file`), because yt-dlp writes cookies back to the
file it was given; the copy is deleted when the run ends, and copies a killed worker left behind
at the next start (see :mod:`pipeline.fetch.cache`). The cookie file may be remote (``gs://``: a
cloud runner's workers cannot see the launching machine's files); each worker process reads it
once (:func:`cookie_bytes`).

:func:`redact_url` is also the one redaction of URL credentials for the rest of the job (its
settings, manifest and command lines): a ``scheme://user:pass@host`` anywhere, or a bare
``user:pass@host`` (a proxy given without its scheme).
"""
from __future__ import annotations

import functools
import logging
import os
import re
import urllib.parse
from typing import TYPE_CHECKING, Any

from audioshards import storage

if TYPE_CHECKING:
    from pipeline.fetch.config import FetchConfig

logger = logging.getLogger(__name__)

# Cookie values shorter than this are not redacted one by one: replacing "1", "en" or "yes"
# everywhere would garble messages, and values that short are flags, not credentials.
MIN_SECRET_LEN = 6

# The authority's user part runs to its last "@": a raw "@" in a password must not end it.
_USERINFO_PATTERN = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)[^\s/?#]*@")
# A whole value of the form user[:pass]@host[:port][/...] with no scheme (a proxy may omit it).
_BARE_USERINFO_PATTERN = re.compile(r"^[^\s/?#:@]+(?::[^\s/?#]*)?@(?=[^\s/?#@]+(?:[/?#]\S*)?$)")
_ANSI_PATTERN = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def proxy_secrets(proxy: str | None) -> list[str]:
    """The texts of ``proxy`` to hide: its whole user part, and its user name and password, raw and
    percent-decoded (parts shorter than 3 characters are left: they would garble messages)."""
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
def cookie_bytes(source: str) -> bytes:
    """The cookie file ``source`` (local or scheme://), read once per process: every download of
    the worker gets a private copy of these bytes (see :func:`private_cookie_file`). Raises
    FileNotFoundError when it is missing."""
    if not storage.exists(source):
        raise FileNotFoundError(f"cookies file {source!r} does not exist")
    return storage.read_bytes(source)


@functools.lru_cache(maxsize=4)
def _cookie_secrets(source: str) -> tuple[str, ...]:
    """Cookie values of a Netscape cookies.txt."""
    values = []
    for line in cookie_bytes(source).decode("utf-8", errors="replace").splitlines():
        if line.startswith("#HttpOnly_"):
            line = line[len("#HttpOnly_"):]
        elif line.startswith("#") or not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) >= 7 and len(fields[6]) >= MIN_SECRET_LEN:
            values.append(fields[6])
    return tuple(values)


def private_cookie_file(config: FetchConfig, out_dir: str) -> str:
    """A copy of the cookie file in ``out_dir``, readable by this user only: yt-dlp writes cookies
    back to the file it reads, so parallel downloads must never share one (nor the user's)."""
    path = os.path.join(out_dir, "cookies.txt")
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(cookie_bytes(config.cookies))
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
    secrets = proxy_secrets(config.proxy)
    if config.cookies:
        secrets += _cookie_secrets(config.cookies)
    return without_secrets(text, secrets)


def without_secrets(text: str, secrets: list[str]) -> str:
    """``text`` with every one of ``secrets`` (longest first) replaced by ``***``, then
    :func:`redact_url`."""
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


def clean_message(text: str, config: FetchConfig) -> str:
    """One readable, redacted line of a tool's output: no colour codes, no 'ERROR:' prefix, no
    request to report a bug to yt-dlp, one line, at most 2000 characters."""
    text = _ANSI_PATTERN.sub("", text).strip()
    text = re.sub(r"^(?:ERROR:\s*)+", "", text)
    text = re.sub(r";?\s*please report this issue on .*$", "", text, flags=re.DOTALL)
    text = " ".join(text.split())
    return redact(text, config)[:2000]

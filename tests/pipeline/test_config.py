"""Credentials in settings and command lines: one redaction for the manifest, logs and messages."""
from __future__ import annotations

import json

import pytest

from pipeline.config import JobConfig, redact_argv
from pipeline.fetch import FetchConfig, redact, redact_url

TEMPLATE = "http://mirror-user:t3mplate-secret@mirror.example:8000/{ytid}"
PROXIES = ["http://bob:p@ss-w0rd@proxy.example:3128",   # a raw "@" in the password
           "socks5://bob:p@ss-w0rd@proxy.example:1080",
           "bob:p@ss-w0rd@proxy.example:3128"]          # no scheme


def secrets_in(text: str) -> list[str]:
    return [secret for secret in ("t3mplate-secret", "mirror-user", "p@ss-w0rd", "ss-w0rd", "bob:")
            if secret in text]


@pytest.mark.parametrize("proxy", PROXIES)
def test_manifest_settings_hold_no_url_credentials(proxy):
    config = JobConfig(split="train", out="o", cache="c", segments=("s.csv",),
                       fetch=FetchConfig(url_template=TEMPLATE, proxy=proxy))
    public = config.public_dict()
    assert secrets_in(json.dumps(public)) == []
    assert public["fetch"]["url_template"] == "http://***@mirror.example:8000/{ytid}"
    assert public["fetch"]["proxy"].endswith("***@proxy.example:" + proxy.rsplit(":", 1)[1])
    assert public["out"] == "o" and public["segments"] == ("s.csv",)  # nothing else touched
    assert secrets_in(repr(config)) == [] and secrets_in(repr(config.fetch)) == []


@pytest.mark.parametrize("proxy", PROXIES)
def test_command_line_holds_no_url_credentials(proxy):
    argv = ["pipeline", "--url-template", TEMPLATE, "--proxy", proxy, f"--proxy={proxy}",
            f"--url-template={TEMPLATE}", "--out", "shards/x"]
    safe = redact_argv(argv)
    assert secrets_in(" ".join(safe)) == []
    assert safe[2] == "http://***@mirror.example:8000/{ytid}"
    assert safe[4].endswith("***@proxy.example:" + proxy.rsplit(":", 1)[1])
    assert safe[5].startswith("--proxy=") and safe[5].endswith(safe[4].rsplit("@", 1)[1])
    assert safe[-2:] == ["--out", "shards/x"]


def test_messages_lose_a_password_with_a_raw_at_sign():
    config = FetchConfig(proxy=PROXIES[0])
    message = f"Unable to connect to proxy {PROXIES[0]} and {TEMPLATE.format(ytid='x')}: refused"
    assert secrets_in(redact(message, config)) == []
    assert redact_url(message) == ("Unable to connect to proxy http://***@proxy.example:3128 and "
                                   "http://***@mirror.example:8000/x: refused")
    # Text that only looks alike is left alone.
    for text in ("gs://bucket/a@b.wav", "http://host/path?user=a@b", "see a@b for help", "/data/x@y"):
        assert redact_url(text) == text

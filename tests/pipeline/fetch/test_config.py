"""pipeline.fetch.config: the settings are checked when built, and printed without credentials."""
from __future__ import annotations

import pytest

from pipeline.fetch import FetchConfig


@pytest.mark.parametrize("overrides, message", [
    ({"url_template": "http://127.0.0.1:1/"}, "must contain {ytid}"),
    ({"url_template": "http://127.0.0.1:1/{id}"}, "must contain {ytid}"),
    ({"retries": 0}, "retries must be at least 1"),
    ({"backoff_s": -1.0}, "backoff_s must be >= 0"),
    ({"sleep_interval": -0.5}, "sleep_interval must be >= 0"),
    ({"socket_timeout": 0}, "socket_timeout must be > 0"),
    ({"rate_limit": 0}, "rate_limit must be a positive"),
])
def test_bad_config_is_refused(overrides, message):
    with pytest.raises(ValueError, match=message.replace("{", r"\{").replace("}", r"\}")):
        FetchConfig(**overrides)


@pytest.mark.parametrize("overrides, message", [({"ffmpeg_timeout": 0}, "--ffmpeg-timeout"),
                                                ({"max_seconds": float("inf")}, "max_seconds")])
def test_bad_limits_are_refused(overrides, message):
    with pytest.raises(ValueError, match=message):
        FetchConfig(**overrides)


def test_repr_hides_the_proxy_credentials_and_those_of_the_url_template():
    config = FetchConfig(url_template="http://mirror:t3mplate-pass@127.0.0.1:1/{ytid}",
                         proxy="carol:pr0xy-pass@10.0.0.1:3128")
    text = repr(config)
    for secret in ("carol", "pr0xy-pass", "mirror", "t3mplate-pass"):
        assert secret not in text
    assert "10.0.0.1:3128" in text and "127.0.0.1:1/{ytid}" in text
    assert text.startswith("FetchConfig(url_template=") and "retries=4" in text

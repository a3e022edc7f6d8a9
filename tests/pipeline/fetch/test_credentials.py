"""pipeline.fetch.credentials: cookies and proxy credentials never appear in a message, a record or
a repr, and yt-dlp only ever sees a private copy of the cookie file. The unit tests of the
redaction at the end need no network."""
from __future__ import annotations

import logging
import os
import re
import stat
import time
from pathlib import Path

import pytest

from pipeline.fetch import (FAILURE_SUFFIX, MIN_SECRET_LEN, FetchConfig, check_cookies, fetch_segment, redact,
                            redact_url, redact_value, segment_stem)
from pipeline.fetch.credentials import clean_message, private_cookie_file, proxy_secrets
from tests.pipeline.fetch.helpers import config_for


# ---- through a fetch ------------------------------------------------------------------------------

def test_proxy_credentials_never_appear(audio_corpus, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    # Port 9 (discard) is closed here: every attempt fails at the proxy, a transient failure.
    config = FetchConfig(url_template="http://127.0.0.1:9/{ytid}",
                         proxy="http://alice-user:pr0xy-s3cret@127.0.0.1:9", retries=2,
                         backoff_s=0.01, socket_timeout=5.0)
    segment = audio_corpus.by_kind("mp3")
    result = fetch_segment(segment.ytid, 0.0, 10.0, str(tmp_path), config)

    failure = result.failure
    assert (failure.reason, failure.permanent) == ("network", False)
    assert failure.attempts == 2
    record = (tmp_path / (segment_stem(segment.ytid, 0.0, 10.0) + FAILURE_SUFFIX)).read_text()
    for text in (failure.message, caplog.text, record, repr(config), repr(result)):
        assert "pr0xy-s3cret" not in text and "alice-user" not in text
    assert caplog.text.count("yt-dlp:") > 0  # yt-dlp's own lines were logged, redacted


def test_cookie_values_never_appear_and_the_cookie_file_is_not_rewritten(
        audio_corpus, make_audio_server, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    server = make_audio_server(fail_first=1)  # one failure, so a message is logged
    cookies = tmp_path / "cookies.txt"
    cookies.write_text("# Netscape HTTP Cookie File\n"
                       "127.0.0.1\tFALSE\t/\tFALSE\t0\tSID\tc00kie-value-secret-123\n"
                       "#HttpOnly_.youtube.com\tTRUE\t/\tTRUE\t0\tHSID\thttponly-secret-456\n")
    before = cookies.read_bytes()
    segment = audio_corpus.by_kind("short_3s")
    config = config_for(server, cookies=str(cookies), retries=2)
    result = fetch_segment(segment.ytid, 0.0, 10.0, str(tmp_path / "cache"), config)
    assert result.failure is None
    assert "rate_limited" in caplog.text
    assert "c00kie-value-secret-123" not in caplog.text
    assert cookies.read_bytes() == before
    assert redact("a c00kie-value-secret-123 b httponly-secret-456", config) == "a *** b ***"

    with pytest.raises(FileNotFoundError):
        fetch_segment(segment.ytid, 0.0, 10.0, str(tmp_path / "cache"),
                      config_for(server, cookies=str(tmp_path / "nope.txt")))


COOKIES = ("# Netscape HTTP Cookie File\n"
           "127.0.0.1\tFALSE\t/\tFALSE\t0\tSID\tremote-c00kie-secret-789\n")


def test_cookie_file_is_read_once_and_each_download_gets_a_private_copy(tmp_path):
    source = tmp_path / "cookies.txt"
    source.write_text(COOKIES)
    config = FetchConfig(cookies=str(source))
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = private_cookie_file(config, str(tmp_path / "a"))
    source.write_text("# changed while the job runs\n")  # this process read it already
    second = private_cookie_file(config, str(tmp_path / "b"))

    assert first != second and str(source) not in (first, second)
    for copy in (first, second):
        assert Path(copy).read_text() == COOKIES
        assert stat.S_IMODE(os.stat(copy).st_mode) == 0o600  # other users cannot read it


def test_cookie_file_on_a_remote_file_system(audio_corpus, make_audio_server, tmp_path, caplog):
    """A gs:// cookie file (TensorFlow's in-memory file system stands in for GCS) is fetched with."""
    tf = pytest.importorskip("tensorflow")
    caplog.set_level(logging.DEBUG)
    cookies = f"ram://cookies-{os.getpid()}-{time.time_ns()}.txt"
    with tf.io.gfile.GFile(cookies, "w") as handle:
        handle.write(COOKIES)
    config = config_for(make_audio_server(fail_first=1), cookies=cookies, retries=2)
    segment = audio_corpus.by_kind("short_3s")
    check_cookies(config, local_workers=False)
    assert fetch_segment(segment.ytid, 0.0, 10.0, str(tmp_path), config).failure is None
    assert "rate_limited" in caplog.text and "remote-c00kie-secret-789" not in caplog.text
    assert redact("a remote-c00kie-secret-789 b", config) == "a *** b"


def test_missing_cookie_file_is_refused_at_launch_without_its_contents(tmp_path, caplog):
    missing = str(tmp_path / "nope.txt")
    for path in (missing, f"ram://nope-{time.time_ns()}.txt"):
        with pytest.raises(ValueError, match=f"--cookies {re.escape(path)}: no such file"):
            check_cookies(FetchConfig(cookies=path), local_workers=True)
    with pytest.raises(ValueError, match="no such file"):
        check_cookies(FetchConfig(cookies=f"ram://nope-{time.time_ns()}.txt"), local_workers=False)
    # A cluster's workers read a local path inside their containers: not checkable from here.
    with caplog.at_level(logging.WARNING, logger="pipeline.fetch"):
        check_cookies(FetchConfig(cookies=missing), local_workers=False)
    assert "must exist there" in caplog.text and "gs://" in caplog.text


def test_redact():
    config = FetchConfig(proxy="http://bob:hunter2%21x@proxy.example:3128")
    text = ("Unable to connect to proxy http://bob:hunter2%21x@proxy.example:3128 "
            "(user bob, password hunter2!x) and socks5://eve:pw@10.0.0.1:1080")
    cleaned = redact(text, config)
    for secret in ("hunter2", "bob", "eve:pw"):
        assert secret not in cleaned
    assert "proxy.example:3128" in cleaned and "10.0.0.1:1080" in cleaned
    assert redact("nothing to hide", FetchConfig()) == "nothing to hide"


# ---- the redaction, unit by unit -----------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("http://user:pass@host.example/a", "http://***@host.example/a"),
    ("see https://alice:pw@h.example:8080/p and socks5://eve:pw@10.0.0.1:1080 now",
     "see https://***@h.example:8080/p and socks5://***@10.0.0.1:1080 now"),
    # A raw "@" in the password: the user part runs to the last "@" of the authority.
    ("http://u:p@ss@host/x?y=a@b", "http://***@host/x?y=a@b"),
    ("gs://bucket/a@b", "gs://bucket/a@b"),  # an "@" in a path is no user part
    ("http://host/path@x", "http://host/path@x"),
    ("nothing to hide", "nothing to hide"),
])
def test_redact_url_hides_the_user_part_of_every_url(text, expected):
    assert redact_url(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("bob:hunter22@proxy.example:3128", "***@proxy.example:3128"),  # a proxy given without its scheme
    ("user:pass@host/path?q", "***@host/path?q"),
    ("bob@example.com", "***@example.com"),
    ("mail me at bob@example.com", "mail me at bob@example.com"),  # only a whole value is a bare URL
])
def test_redact_url_hides_a_bare_user_part(text, expected):
    assert redact_url(text) == expected


def test_redact_value_reaches_every_string_of_a_setting():
    value = {"proxy": "http://u:p@h/", "more": ["x://q:w@e", ("y://r:t@f",)], "n": 3, "none": None}
    assert redact_value(value) == {"proxy": "http://***@h/", "more": ["x://***@e", ("y://***@f",)], "n": 3,
                                   "none": None}
    assert type(redact_value(("a://b:c@d",))) is tuple
    assert redact_value(7) == 7


def test_proxy_secrets_are_its_user_part_and_its_decoded_password():
    secrets = proxy_secrets("http://alice:s3cr%40t@proxy:8080")
    assert {"alice:s3cr%40t", "alice", "s3cr%40t", "s3cr@t"} <= set(secrets)
    assert set(proxy_secrets("bob:hunter22@proxy:1")) == {"bob:hunter22", "bob", "hunter22"}  # no scheme
    assert proxy_secrets("ab:cd@proxy:1") == ["ab:cd"]  # parts shorter than 3 characters are left
    assert proxy_secrets(None) == [] and proxy_secrets("http://proxy:1") == []


def test_redact_hides_proxy_credentials_wherever_they_appear():
    config = FetchConfig(proxy="http://alice:s3cr%40t@proxy.example:8080")
    text = "via http://alice:s3cr%40t@proxy.example:8080: user alice, password s3cr@t (s3cr%40t)"
    assert redact(text, config) == "via http://***@proxy.example:8080: user ***, password *** (***)"


def write_cookies(path: Path, *values: str) -> str:
    path.write_text("# Netscape HTTP Cookie File\n" + "".join(
        f"127.0.0.1\tFALSE\t/\tFALSE\t0\tNAME{index}\t{value}\n" for index, value in enumerate(values)))
    return str(path)


def test_cookie_values_shorter_than_min_secret_len_are_not_redacted(tmp_path):
    long_enough, too_short = "x" * MIN_SECRET_LEN, "y" * (MIN_SECRET_LEN - 1)
    config = FetchConfig(cookies=write_cookies(tmp_path / "cookies.txt", long_enough, too_short, "1", "en"))
    assert redact(f"a {long_enough} b {too_short} c 1 en", config) == f"a *** b {too_short} c 1 en"


def test_clean_message_is_one_redacted_line_without_colour_codes():
    config = FetchConfig(proxy="http://alice:pr0xy-pass@127.0.0.1:9")
    text = ("\x1b[0;31mERROR:\x1b[0m ERROR: [youtube] x: no  route via http://alice:pr0xy-pass@127.0.0.1:9\n"
            "next line; please report this issue on https://github.com/yt-dlp/yt-dlp/issues , filling out")
    assert clean_message(text, config) == "[youtube] x: no route via http://***@127.0.0.1:9 next line"
    assert len(clean_message("x" * 5000, config)) == 2000


def test_no_cookie_file_is_nothing_to_check():
    check_cookies(FetchConfig(), local_workers=False)
    check_cookies(FetchConfig(), local_workers=True)

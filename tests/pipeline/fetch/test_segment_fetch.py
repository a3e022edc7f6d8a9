"""pipeline.fetch.segment_fetch: what fetch_segment refuses before anything is downloaded, and the
paths it hands on."""
from __future__ import annotations

import os

import pytest

from audioshards.audio import ClipSettings
from pipeline.config import JobConfig
from pipeline.fetch import FetchConfig, fetch_segment
from tests.pipeline.fetch.helpers import config_for, single_attempt_config


@pytest.mark.parametrize("end", [36000.0, 1e300, 600.5])
def test_a_segment_longer_than_the_cap_is_too_long_and_not_fetched(end, audio_corpus, make_audio_server, tmp_path):
    server = make_audio_server()
    segment = audio_corpus.by_kind("long_35s")
    result = fetch_segment(segment.ytid, 0.0, end, str(tmp_path), single_attempt_config(server.url_template))
    assert (result.failure.reason, result.failure.permanent, result.cached) == ("too_long", True, False)
    assert "longer than 600 s (--max-seconds)" in result.failure.message
    assert server.request_count == 0
    assert not tmp_path.exists() or os.listdir(tmp_path) == []  # not recorded: a larger cap fetches it
    # The cap is one setting (--max-seconds, ClipSettings), which the fetch config follows.
    for cap, reason in ((30.0, "too_long"), (40.0, None)):
        job = JobConfig(split="train", out="o", cache="c", segments=("s.csv",), fetch=single_attempt_config(server.url_template),
                        clips=ClipSettings(max_seconds=cap))
        assert job.fetch.max_seconds == cap
        fetched = fetch_segment(segment.ytid, 0.0, 35.0, str(tmp_path), job.fetch)
        assert (fetched.failure and fetched.failure.reason) == reason


def test_relative_cache_dir_gives_absolute_paths(audio_corpus, audio_server, tmp_path,
                                                 monkeypatch):
    monkeypatch.chdir(tmp_path)
    segment = audio_corpus.by_kind("short_3s")
    result = fetch_segment(segment.ytid, 0.0, 10.0, "cache", config_for(audio_server))
    assert os.path.isabs(result.path)
    assert os.path.dirname(result.path) == str(tmp_path / "cache")


def test_an_empty_url_template_is_refused(tmp_path):
    with pytest.raises(ValueError, match="url_template is empty: there is nowhere to fetch from"):
        fetch_segment("--aE2O5G5WE", 0.0, 10.0, str(tmp_path / "cache"), FetchConfig(url_template=""))
    assert not (tmp_path / "cache").exists()

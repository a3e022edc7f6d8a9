"""Settings of one sharding job, as a frozen dataclass the command line fills in."""
from __future__ import annotations

import dataclasses
import os
import re
from typing import Any

from pipeline.audio import ClipSettings
from pipeline.fetch import FetchConfig, redact_url
from pipeline.segments import PACKAGED_LABELS
from pipeline.spectrogram import SpectrogramConfig

YOUTUBE_TEMPLATE = "https://www.youtube.com/watch?v={ytid}"


@dataclasses.dataclass(frozen=True)
class JobConfig:
    """Everything a worker needs to turn segments into shards (picklable, no secrets logged)."""

    split: str
    out: str
    cache: str
    segments: tuple[str, ...] = ()
    labels: str = PACKAGED_LABELS
    audio_dir: str | None = None
    num_shards: int | None = None  # None: aim at ~200 MB per shard
    limit: int | None = None
    workers: int = dataclasses.field(default_factory=lambda: os.cpu_count() or 1)
    skip_bad_rows: bool = False
    allow_any_id: bool = False
    fetch: FetchConfig = FetchConfig()
    clips: ClipSettings = ClipSettings()
    spectrogram: SpectrogramConfig = SpectrogramConfig()

    def __post_init__(self) -> None:
        if self.split not in ("train", "eval"):
            raise ValueError(f"--split must be train or eval, not {self.split!r}")
        if not self.segments and not self.audio_dir:
            raise ValueError("give --segments CSV (AudioSet segments) or --audio-dir DIR (local audio), or both")
        if self.num_shards is not None and self.num_shards < 1:
            raise ValueError("--num-shards must be at least 1")
        if self.limit is not None and self.limit < 1:
            raise ValueError("--limit must be at least 1")

    def public_dict(self) -> dict[str, Any]:
        """The settings with credentials removed, for the manifest and logs."""
        values = dataclasses.asdict(self)
        if self.fetch.proxy:
            values["fetch"]["proxy"] = redact_proxy(self.fetch.proxy)
        return values


def redact_proxy(proxy: str) -> str:
    """``[scheme://]user:secret@host`` → ``[scheme://]***@host`` (a proxy may omit the scheme)."""
    return re.sub(r"^((?:[A-Za-z][A-Za-z0-9+.-]*://)?)[^/@]*@", r"\1***@", proxy)


def redact_argv(argv: list[str]) -> list[str]:
    """A command line safe to store: URLs lose their credentials, --proxy values included."""
    safe = []
    for index, argument in enumerate(argv):
        if argument.startswith("--proxy="):
            argument = "--proxy=" + redact_proxy(argument[len("--proxy=") :])
        elif index and argv[index - 1] == "--proxy":
            argument = redact_proxy(argument)
        safe.append(redact_url(argument))
    return safe

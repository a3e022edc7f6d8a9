"""Settings of one sharding job, as a frozen dataclass the command line fills in."""
from __future__ import annotations

import dataclasses
import os
import re
from typing import Any

from pipeline.audio import ClipSettings
from pipeline.fetch import FetchConfig
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
        values["fetch"]["proxy"] = redact_url(self.fetch.proxy)
        return values


_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")


def redact_url(text: str | None) -> str | None:
    """``http://user:secret@host`` → ``http://***@host``."""
    if text is None:
        return None
    return _CREDENTIALS.sub(r"\g<scheme>***@", text)


def redact_argv(argv: list[str]) -> list[str]:
    """A command line safe to store: URLs lose their credentials, --proxy values included."""
    return [redact_url(argument) or "" for argument in argv]

"""Settings of one sharding job, as a frozen dataclass; ``python -m pipeline``'s flags are generated from it
(:mod:`audioshards.flags`). The spectrogram has no flags: the model card fixes it."""
from __future__ import annotations

import dataclasses
import os
from typing import Any

from audioshards.audio import DECODE_TIMEOUT_S, ClipSettings
from pipeline.fetch import FetchConfig, redact_url, redact_value
from audioshards.flags import setting
from pipeline.segments import PACKAGED_LABELS
from audioshards.spectrogram import SpectrogramConfig


@dataclasses.dataclass(frozen=True)
class JobConfig:
    """Everything a worker needs to turn segments into shards (picklable, no secrets logged)."""

    split: str = setting(help="split these segments become", choices=("train", "eval"))
    out: str = setting(help="shard directory (shared by both splits; refused if built with other settings)",
                       metavar="SHARD_DIR")
    cache: str = setting(help="downloaded audio and recorded failures: what makes a re-run cheap; may be shared "
                              "by any number of jobs", metavar="CACHE_DIR")
    segments: tuple[str, ...] = setting((), "AudioSet segment CSVs (YTID, start, end, labels); may be gs:// paths",
                                        metavar="CSV")
    labels: str = setting(PACKAGED_LABELS, "class_labels_indices.csv", metavar="CSV",
                          shown="the copy shipped with MyGO, 527 classes")
    audio_dir: str | None = setting(None, "local audio: matched to --segments by YTID (Y<ytid>.wav, "
                                          "<ytid>_<start>.flac, <ytid>.m4a, ...), or without --segments every audio "
                                          "file becomes unlabelled clips", metavar="DIR")
    num_shards: int | None = setting(None, "shard count (default: about 200 MB per shard)", metavar="N")
    limit: int | None = setting(None, "only the first N segments", metavar="N")
    workers: int = setting(help="local worker processes (the DirectRunner's; other runners size their own)",
                           metavar="N", default_factory=lambda: os.cpu_count() or 1, shown="one per core")
    skip_bad_rows: bool = setting(False, "log and skip CSV rows that cannot be parsed instead of stopping")
    allow_any_id: bool = setting(False, "accept IDs that are not AudioSet's 11-character YTIDs (still single safe "
                                        "path parts)")
    decode_timeout: float = setting(DECODE_TIMEOUT_S, "wall-clock limit of each ffmpeg that decodes (a batch of up "
                                                      "to 16 files, then each file alone): past it, it is killed and "
                                                      "the file is a transient timeout failure", metavar="S")
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
        if not 0 < self.decode_timeout < float("inf"):
            raise ValueError(f"--decode-timeout must be a positive number of seconds, not {self.decode_timeout}")
        if self.fetch.max_seconds != self.clips.max_seconds:
            # One flag (--max-seconds, in ClipSettings: it shapes what becomes clips and is recorded
            # with them); fetch_segment sees only FetchConfig, so it gets a copy, to refuse an
            # over-long CSV range before downloading it.
            object.__setattr__(self, "fetch", dataclasses.replace(self.fetch, max_seconds=self.clips.max_seconds))

    def public_dict(self) -> dict[str, Any]:
        """The settings with credentials removed, for the manifest and logs: every string setting
        goes through the one redaction (:func:`pipeline.fetch.redact_url`), so a URL-shaped
        setting (``--url-template``, ``--proxy``, any later one) cannot be written in clear."""
        return redact_value(dataclasses.asdict(self))


#: Beam's Dask runner (extra apache-beam[dask]), which Beam 2.77 knows only by its class path.
DASK_RUNNER = "apache_beam.runners.dask.dask_runner.DaskRunner"
#: Runner names of our own, beside Beam's (case-insensitive): --runner DaskRunner, --runner dask.
RUNNER_ALIASES = {"daskrunner": DASK_RUNNER, "dask": DASK_RUNNER}


def runner_name(runner: str | None) -> str | None:
    """``runner`` with our aliases replaced by the class path Beam takes."""
    return RUNNER_ALIASES.get(runner.lower(), runner) if runner else runner


def with_runner_aliases(beam_args: list[str]) -> list[str]:
    """Beam's arguments with the value of ``--runner`` (``--runner X`` or ``--runner=X``) through
    :func:`runner_name`."""
    args = list(beam_args)
    for index, argument in enumerate(args):
        if argument == "--runner" and index + 1 < len(args):
            args[index + 1] = runner_name(args[index + 1])
        elif argument.startswith("--runner="):
            args[index] = "--runner=" + runner_name(argument.split("=", 1)[1])
    return args


def is_dask_runner(runner: str | None) -> bool:
    return bool(runner) and runner_name(runner).rsplit(".", 1)[-1] == "DaskRunner"


def redact_argv(argv: list[str]) -> list[str]:
    """A command line safe to store: each argument, and the value of a ``--flag=value``, through
    the same redaction as the settings (a proxy without scheme is a whole argument, or a value)."""
    safe = []
    for argument in argv:
        flag, equals, value = argument.partition("=")
        if argument.startswith("--") and equals:
            safe.append(f"{flag}={redact_url(value)}")
        else:
            safe.append(redact_url(argument))
    return safe

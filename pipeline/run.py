"""Launching a sharding job: check the output directory, size the shards, pick the runner, run."""
from __future__ import annotations

import logging
import platform
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

from audioshards import shards, storage
from pipeline.config import JobConfig, redact_argv
from pipeline.fetch import check_cookies
from pipeline.segments import file_sha256, load_vocabulary

log = logging.getLogger(__name__)
SETUP_FILE = Path(__file__).resolve().parent.parent / "setup.py"
LOCAL_RUNNERS = ("DirectRunner", "direct")  # whose workers see this machine's files


def prepare_output(config: JobConfig, num_shards: int) -> None:
    """Create or check the shard directory before any work, so a mismatch costs nothing.

    Refused: a directory whose manifest has another format version, spectrogram config, label
    vocabulary or clip settings; shard files of this split with another shard count (they would
    mix with the new ones). Removed: temporary files a killed run of this split left behind, and
    only those: the other split's job may be running on the same directory, its temporaries about
    to be renamed into place (untagged manifest temporaries of older versions go after an hour).
    """
    out = config.out.rstrip("/")
    storage.makedirs(out)
    labels = load_vocabulary(config.labels).to_manifest()
    clips = config.clips.to_dict()
    manifest = shards.read_manifest(out)
    if manifest is None:
        storage.write_json_atomic(shards.manifest_path(out), shards.new_manifest(config.spectrogram, labels, clips),
                                  tag=config.split)
    else:
        shards.check_compatible(manifest, config.spectrogram, directory=out, labels=labels, clips=clips)
    for name in storage.listdir(out):
        if shards.is_own_debris(name, config.split) or _old_untagged_manifest_temporary(f"{out}/{name}"):
            storage.remove(f"{out}/{name}")  # gone meanwhile (renamed or removed) is fine
            continue
        parsed = shards.parse_shard_file_name(name)
        if parsed and parsed[0] == config.split and parsed[2] != num_shards:
            raise shards.ShardDirectoryMismatch(
                f"{out} holds {config.split} shards of another count ({name}, this run writes {num_shards}); "
                "they would mix. Pass --num-shards "
                f"{parsed[2]} to rebuild them, use another --out, or delete them."
            )


_UNTAGGED_MANIFEST_TEMPORARY = re.compile(r"^manifest\.json\.tmp-[0-9a-f]{32}$")


def _old_untagged_manifest_temporary(path: str, max_age_s: float = 3600.0) -> bool:
    """A manifest.json temporary without a split tag (written by an older version) and older than
    ``max_age_s``: no running job still renames it."""
    if not _UNTAGGED_MANIFEST_TEMPORARY.match(path.rsplit("/", 1)[-1]):
        return False
    age = storage.age_s(path)
    return age is not None and age > max_age_s


def software_versions() -> dict[str, str]:
    import importlib.metadata as metadata
    import subprocess

    versions = {"python": platform.python_version()}
    for package in ("mygo", "apache-beam", "tensorflow", "yt-dlp", "librosa", "numpy", "scipy", "ffmpeg-python"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    try:
        first = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True, check=True).stdout.splitlines()[0]
        versions["ffmpeg"] = first.split()[2]
    except (OSError, subprocess.CalledProcessError, IndexError):
        versions["ffmpeg"] = "not found"
    return versions


def beam_options(config: JobConfig, beam_args: list[str]) -> Any:
    """Beam options: the user's, plus the local defaults (DirectRunner named explicitly so it
    never tries to download the Prism runner; multi-processing with one worker per core)."""
    from apache_beam.options.pipeline_options import PipelineOptions

    args = list(beam_args)
    if not any(a == "--runner" or a.startswith("--runner=") for a in args):
        args += ["--runner=DirectRunner"]
    options = PipelineOptions(args)
    runner = options.get_all_options()["runner"] or "DirectRunner"
    extra: dict[str, Any] = {}
    if runner in LOCAL_RUNNERS:
        if options.get_all_options().get("direct_running_mode") in (None, "in_memory"):
            extra["direct_running_mode"] = "multi_processing"
        extra["direct_num_workers"] = config.workers
        if not options.get_all_options().get("default_sdk_harness_log_level"):
            # Worker processes print to this console: their progress lines, not Beam's chatter.
            extra["default_sdk_harness_log_level"] = "WARNING"
            extra["sdk_harness_log_level_overrides"] = {"pipeline": "INFO"}
    else:
        if not options.get_all_options().get("setup_file") and SETUP_FILE.exists():
            extra["setup_file"] = str(SETUP_FILE)  # remote workers install this project
        if not options.get_all_options().get("requirements_file") and SETUP_FILE.exists():
            # --setup_file installs the project without extras: the pipeline role's packages
            # (yt-dlp and its solver, ...) reach the workers as requirements, installed from PyPI
            # there ("skip": nothing is downloaded here first).
            extra["requirements_file"] = worker_requirements_file()
            if not options.get_all_options().get("requirements_cache"):
                extra["requirements_cache"] = "skip"
    return PipelineOptions(args, **extra)


def worker_requirements(role: str = "pipeline") -> list[str]:
    """setup.py's extra for ``role``: the packages remote workers need beyond the core install."""
    import runpy
    from unittest import mock

    captured: dict[str, Any] = {}
    with mock.patch("setuptools.setup", lambda **arguments: captured.update(arguments)):
        runpy.run_path(str(SETUP_FILE))
    return list(captured["extras_require"][role])


def worker_requirements_file() -> str:
    with tempfile.NamedTemporaryFile("w", prefix="mygo-workers-", suffix=".txt", delete=False) as handle:
        handle.write("".join(line + "\n" for line in worker_requirements()))
    return handle.name


def run(config: JobConfig, beam_args: list[str], argv: list[str] | None = None) -> Any:
    """Shard ``config.split``; blocks until the job finishes and returns Beam's result."""
    import apache_beam as beam

    from pipeline.job import build, plan_segments

    options = beam_options(config, beam_args)
    check_cookies(config.fetch, local_workers=options.get_all_options()["runner"] in LOCAL_RUNNERS)
    plan = plan_segments(config)
    if not plan.total:
        raise ValueError("no segments to shard (empty CSV, empty --audio-dir, or everything skipped)")
    num_shards = config.num_shards or shards.default_num_shards(plan.total)
    prepare_output(config, num_shards)
    split_info = {
        "segments": plan.total,
        "sources": [{"path": p, "sha256": file_sha256(p)} for p in config.segments]
        + ([{"audio_dir": config.audio_dir}] if config.audio_dir else []),
        "labels_file": {"path": config.labels, "sha256": file_sha256(config.labels)},
        "command": redact_argv(list(argv if argv is not None else sys.argv)),
        "settings": config.public_dict(),
        "software": software_versions(),
        "started": shards.utc_now(),
    }
    log.info("sharding %d segments of %s into %d %s shards in %s (runner %s)", plan.total,
             ", ".join(config.segments) or config.audio_dir, num_shards, config.split, config.out,
             options.get_all_options()["runner"])
    pipeline = beam.Pipeline(options=options)
    build(pipeline, config, plan, num_shards, split_info)
    result = pipeline.run()
    result.wait_until_finish()
    log_counters(result)
    return result


def log_counters(result: Any) -> None:
    from pipeline.job import NAMESPACE

    try:
        counters = result.metrics().query()["counters"]
    except (AttributeError, KeyError, NotImplementedError):
        return
    totals: dict[str, int] = {}
    for counter in counters:
        if counter.key.metric.namespace == NAMESPACE:
            totals[counter.key.metric.name] = totals.get(counter.key.metric.name, 0) + (counter.committed or 0)
    log.info("counters: %s", ", ".join(f"{k}={v}" for k, v in sorted(totals.items())))


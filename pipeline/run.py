"""Launching a sharding job: check the output directory, size the shards, pick the runner, run."""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import platform
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

from audioshards import shards, storage
from pipeline.config import JobConfig, is_dask_runner, redact_argv, with_runner_aliases
from pipeline.fetch import check_cookies
from pipeline.segments import file_sha256, load_vocabulary

log = logging.getLogger(__name__)
SETUP_FILE = Path(__file__).resolve().parent.parent / "setup.py"
LOCAL_RUNNERS = ("DirectRunner", "direct")  # whose workers see this machine's files
#: On the Dask runner, whose Reshuffle does nothing, the segments are spread over the workers by
#: the partitions of the job's first Create: this many per thread of the cluster's workers. Every
#: GroupByKey shuffles all partitions (a Dask task shuffle: about partitions x 32 tasks per stage
#: of 32), so more would cost the scheduler more than it balances.
DASK_PARTITIONS_PER_THREAD = 4
#: Partitions when the cluster's threads are not known (--dask_partition_size given).
DASK_BATCHES = 64


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
    for package in ("mygo", "apache-beam", "tensorflow", "yt-dlp", "numpy", "numba", "ffmpeg-python"):
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


def beam_options(config: JobConfig, beam_args: list[str], dask_partitions: int | None = None) -> Any:
    """Beam options: the user's, plus the local defaults (DirectRunner named explicitly so it
    never tries to download the Prism runner; multi-processing with one worker per core)."""
    from apache_beam.options.pipeline_options import PipelineOptions

    args = with_runner_aliases(beam_args)
    if not any(a == "--runner" or a.startswith("--runner=") for a in args):
        args += ["--runner=DirectRunner"]
    options = PipelineOptions(args)
    runner = options.get_all_options()["runner"] or "DirectRunner"
    extra: dict[str, Any] = {}
    if runner in LOCAL_RUNNERS:
        # Beam's own default is in_memory (one process); ours is a worker per core. A mode named on
        # the command line is kept: in_memory runs the job inside the calling process (tests, tools).
        if not any(a.startswith("--direct_running_mode") for a in args):
            extra["direct_running_mode"] = "multi_processing"
        extra["direct_num_workers"] = config.workers
        if not options.get_all_options().get("default_sdk_harness_log_level"):
            # Worker processes print to this console: their progress lines, not Beam's chatter.
            extra["default_sdk_harness_log_level"] = "WARNING"
            extra["sdk_harness_log_level_overrides"] = {"pipeline": "INFO"}
    elif is_dask_runner(runner):
        # The partitions of every Create (Beam's default packs 128 elements in one): the batches
        # of segments are spread over the workers by them (dask_partitions).
        if dask_partitions and not any(a.startswith(("--dask_npartitions", "--dask_partition_size")) for a in args):
            extra["npartitions"] = dask_partitions
    elif options.get_all_options().get("sdk_container_image"):
        pass  # the pipeline image has this project and its role installed: nothing to install on workers
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

    from pipeline.job import build, plan_segments, spread_batches

    options = beam_options(config, beam_args)
    runner = options.get_all_options()["runner"]
    if is_dask_runner(runner):
        config = absolute_paths(config)
        partitions = dask_partitions(options)
        options = beam_options(config, beam_args, dask_partitions=partitions)
    check_cookies(config.fetch, local_workers=runner in LOCAL_RUNNERS)
    plan = plan_segments(config)
    if not plan.total:
        raise ValueError("no segments to shard (empty CSV, empty --audio-dir, or everything skipped)")
    if is_dask_runner(runner):
        plan = spread_batches(plan, partitions)
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
    try:
        result.wait_until_finish()
    finally:
        client = getattr(result, "client", None)  # the Dask runner's connection to the scheduler
        if client is not None:
            client.close()
    log_counters(result)
    log_outcome(config, split_info["started"])
    return result


def dask_partitions(options: Any) -> int:
    """Partitions of the job's Creates on the Dask runner: --dask_npartitions, or
    DASK_PARTITIONS_PER_THREAD per thread of the cluster's workers (asked from its scheduler; the
    workers that join later get shards to write but no segments to fetch)."""
    settings = options.get_all_options()
    if settings.get("npartitions"):
        return settings["npartitions"]
    if settings.get("partition_size"):
        return DASK_BATCHES
    address = settings.get("address") or settings.get("scheduler_file")
    threads = os.cpu_count() or 1  # no address: Beam starts a local cluster, a worker per core
    if address:
        import distributed

        timeout = settings.get("timeout") if isinstance(settings.get("timeout"), int) else 30
        kind = "address" if settings.get("address") else "scheduler_file"
        with distributed.Client(**{kind: address}, timeout=timeout, set_as_default=False) as client:
            threads = sum(client.nthreads().values())
        if not threads:
            log.warning("the Dask cluster at %s has no worker yet", address)
    log.info("Dask: %d worker threads, %d partitions", threads, DASK_PARTITIONS_PER_THREAD * max(threads, 1))
    return DASK_PARTITIONS_PER_THREAD * max(threads, 1)


def absolute_paths(config: JobConfig) -> JobConfig:
    """The local paths of ``config`` made absolute: a Dask worker runs in its own directory, so
    shared storage must be mounted at the same path on every machine (or be gs://)."""

    def absolute(path: str | None) -> str | None:
        return path if not path or storage.is_remote(path) else os.path.abspath(path)

    return dataclasses.replace(
        config, out=absolute(config.out), cache=absolute(config.cache), labels=absolute(config.labels),
        audio_dir=absolute(config.audio_dir), segments=tuple(absolute(path) for path in config.segments),
        fetch=dataclasses.replace(config.fetch, cookies=absolute(config.fetch.cookies)))


def log_counters(result: Any) -> None:
    """Beam's counters of the job (fetched, cached, ...), where the runner has them: the Dask
    runner has none (its metrics() raises NotImplementedError); log_outcome says what happened."""
    from pipeline.job import NAMESPACE

    try:
        counters = result.metrics().query()["counters"]
    except (AttributeError, KeyError, NotImplementedError):
        log.info("counters: none from this runner (the manifest and the failures file say what was done)")
        return
    totals: dict[str, int] = {}
    for counter in counters:
        if counter.key.metric.namespace == NAMESPACE:
            totals[counter.key.metric.name] = totals.get(counter.key.metric.name, 0) + (counter.committed or 0)
    log.info("counters: %s", ", ".join(f"{k}={v}" for k, v in sorted(totals.items())))


def log_outcome(config: JobConfig, started: str) -> None:
    """What the job wrote, from what it wrote (manifest.json and failures-<split>.jsonl), whatever
    the runner: examples, shards, segments, failures by reason and how many a re-run retries."""
    out = config.out.rstrip("/")
    manifest = shards.read_manifest(out) or {}
    entry = manifest.get("splits", {}).get(config.split)
    if not entry or entry.get("started") != started:
        log.warning("the job ended without writing its entry into %s", shards.manifest_path(out))
        return
    transient = 0
    failures_path = f"{out}/{entry['failures_file']}"
    if storage.exists(failures_path):
        lines = storage.read_bytes(failures_path).decode("utf-8").splitlines()
        transient = sum(1 for line in lines if line.strip() and not json.loads(line)["permanent"])
    failed = sum(entry["failures"].values())
    reasons = ", ".join(f"{reason} {count}" for reason, count in entry["failures"].items())
    log.info("done: %d examples in %d %s shards from %d segments; %d failed%s%s", entry["examples"],
             len(entry["shards"]), config.split, entry["segments"], failed, f" ({reasons})" if reasons else "",
             f", {transient} of them transient (the same command retries them)" if transient else "")


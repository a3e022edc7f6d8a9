"""The Beam job: segments → fetched audio in the cache → shards of log-mel examples + manifest.

Graph (each element's shape in the comments):

    SegmentBatch ─ReadSegments─► Segment ─Spread─► Fetch ─► (shard, FetchedSegment) | failure dict
    (shard, FetchedSegment) + (shard, None) for every shard ─GroupByShard─► (shard, [FetchedSegment])
        ─WriteShard─► ShardSummary | failure dict
    fetch failures + WriteShard's results ─GatherResults─► manifest.json, failures-<split>.jsonl

Every transform has one output, split by type with ``beam.Filter`` where two consumers need
different parts, and the manifest step gets its inputs through a GroupByKey, not side inputs: the
same graph runs on every runner, including Beam's Dask runner, which has neither tagged outputs
nor side inputs that are computed once (docs/dask.md).

Memory stays bounded whatever the number of segments: only small segment records are grouped;
a shard's spectrograms exist only inside the worker that writes that shard (≤ one shard, ~200 MB).
Segments are read from the CSVs by the workers themselves (``ReadSegments``), each batch from
its own byte range, so a job of two million segments sends a thousand small batch descriptions
through the job graph, not the segments, and no worker parses a whole CSV.

A re-run with the same inputs and cache rewrites byte-identical shards: every shard is produced
from its sorted segments, examples are sorted by ``clip_id``, and the per-band statistics are
summed shard by shard in index order.
"""
from __future__ import annotations

import array
import dataclasses
import functools
import hashlib
import json
import logging
import os
import tempfile
import threading
import time
import uuid
from typing import Any, Iterable, Iterator

import apache_beam as beam
import numpy as np
from apache_beam.metrics import Metrics

from audioshards import shards, storage, tfds_metadata
from audioshards.audio import DecodeError, DecodeRequest, UnusableAudio, decode_many, make_clips
from pipeline.config import JobConfig
from pipeline.fetch import Failure, FetchResult, fetch_segment
from pipeline import segments as segments_module
from pipeline.segments import (LabelVocabulary, Segment, SegmentError, directory_segment, list_audio_files,
                               load_vocabulary, match_local_files)
from audioshards.spectrogram import log_mel

log = logging.getLogger(__name__)
NAMESPACE = "mygo"
SEGMENT_BATCH = 2_000  # segments per ReadSegments element


@dataclasses.dataclass(frozen=True)
class FetchedSegment:
    segment: Segment
    path: str  # audio of the segment (cache entry or local file)
    from_cache: bool  # a local file or an existing cache entry holds the whole segment as it is


@dataclasses.dataclass
class ShardSummary:
    index: int
    file: str
    examples: int
    segments: int
    stats: shards.BandStats


# --------------------------------------------------------------------------------------------
# Segments
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SegmentBatch:
    """Where one ReadSegments element's segments are: ``count`` segments of the CSV ``source``
    from byte ``offset`` (line ``line``) on, after the first ``skip`` there, or (``source`` None)
    of the --audio-dir listing from file number ``offset + skip`` on. A worker reads just that
    range, never a whole CSV."""

    source: str | None
    offset: int
    line: int
    count: int
    skip: int = 0  # a part of a batch (spread_batches): the segments of the batch before it


@dataclasses.dataclass(frozen=True)
class SegmentPlan:
    """What the launcher learnt from one pass over the inputs: the segment count (after --limit)
    and the batches the workers read."""

    total: int
    batches: tuple[SegmentBatch, ...]


def plan_segments(config: JobConfig) -> SegmentPlan:
    """One pass over the CSVs (or the --audio-dir listing) in the launcher: rows are checked (a
    bad row stops the job here, before any work, or is skipped), duplicates found, --limit applied
    (nothing after the limit is read), and the batch boundaries noted, holding one batch of
    segments and 8 bytes per segment (a hash, for the duplicate check) at a time."""
    if not config.segments:
        count = len(_audio_files(config.audio_dir))
        total = count if config.limit is None else min(count, config.limit)
        return SegmentPlan(total, tuple(SegmentBatch(None, first, 0, min(SEGMENT_BATCH, total - first))
                                        for first in range(0, total, SEGMENT_BATCH)))
    vocabulary = load_vocabulary(config.labels)
    batches: list[SegmentBatch] = []
    hashes = array.array("Q")
    unmatched = 0
    limit = config.limit if config.limit is not None else float("inf")
    for path in config.segments:
        if len(hashes) >= limit:
            break
        pending: list[Segment] = []
        start: tuple[int, int] | None = None
        for row in segments_module.csv_rows(path, vocabulary, allow_any_id=config.allow_any_id):
            if row.error is not None:
                segments_module.check_row(path, row, config.skip_bad_rows)
                continue
            if row.segment is None:
                continue
            if start is None:
                start = (row.offset, row.line)
            pending.append(row.segment)
            hashes.append(_key_hash(row.segment.key))
            if len(pending) == SEGMENT_BATCH or len(hashes) >= limit:
                batches.append(SegmentBatch(path, *start, len(pending)))
                unmatched += _count_unmatched(pending, config)
                pending, start = [], None
                if len(hashes) >= limit:
                    break
        if pending:
            batches.append(SegmentBatch(path, *start, len(pending)))
            unmatched += _count_unmatched(pending, config)
    _check_duplicates(hashes, batches, config, vocabulary)
    if unmatched:
        log.warning("%d of %d segments have no file in %s", unmatched, len(hashes), config.audio_dir)
    return SegmentPlan(len(hashes), tuple(batches))


def spread_batches(plan: SegmentPlan, at_least: int) -> SegmentPlan:
    """The plan with each batch cut into equal parts, so that there are ``at_least`` batches (or
    one per segment). For the Dask runner, whose Reshuffle does nothing: the job's parallelism is
    the number of partitions its first Create makes (run.py's dask_partitions), and a partition
    needs a batch of its own. The segments, and so the shards, are the same."""
    if len(plan.batches) >= at_least:
        return plan
    size = max(1, plan.total // at_least)  # so that there are at least total / size >= at_least parts
    batches = []
    for batch in plan.batches:
        batches += [dataclasses.replace(batch, skip=batch.skip + first, count=min(size, batch.count - first))
                    for first in range(0, batch.count, size)]
    return SegmentPlan(plan.total, tuple(batches))


def _key_hash(key: str) -> int:
    return int.from_bytes(hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest(), "big")


def _count_unmatched(segments: list[Segment], config: JobConfig) -> int:
    if not config.audio_dir:
        return 0
    return len(match_local_files(segments, config.audio_dir)[1])


def _check_duplicates(hashes: array.array, batches: list[SegmentBatch], config: JobConfig,
                      vocabulary: LabelVocabulary) -> None:
    """A segment listed twice would become two examples with one clip_id: refuse it, naming it.
    Equal hashes are rare, so only then are the batches read again to find the keys."""
    values = np.sort(np.frombuffer(hashes, dtype=np.uint64)) if hashes else np.zeros(0, np.uint64)
    suspects = set(values[1:][values[1:] == values[:-1]].tolist())
    if not suspects:
        return
    seen: dict[str, Segment] = {}
    for batch in batches:
        for segment in _read_csv_batch(batch, config, vocabulary):
            if _key_hash(segment.key) not in suspects:
                continue
            if segment.key in seen:
                raise SegmentError(f"duplicate segment {segment.key} (YTID {segment.ytid} at {segment.start_s} s "
                                   "listed twice)")
            seen[segment.key] = segment


@functools.lru_cache(maxsize=2)
def _audio_files(directory: str) -> tuple[str, ...]:
    """The --audio-dir listing, once per process."""
    return tuple(list_audio_files(directory))


def _read_csv_batch(batch: SegmentBatch, config: JobConfig, vocabulary: LabelVocabulary) -> list[Segment]:
    assert batch.source is not None
    found: list[Segment] = []
    skip = batch.skip
    rows = segments_module.csv_rows(batch.source, vocabulary, allow_any_id=config.allow_any_id,
                                    offset=batch.offset, line=batch.line)
    for row in rows:
        if row.error is not None:  # the launcher logged the skip already
            segments_module.check_row(batch.source, row, config.skip_bad_rows, log_skip=False)
        elif row.segment is not None and skip:
            skip -= 1
        elif row.segment is not None:
            found.append(row.segment)
            if len(found) == batch.count:
                return found
    raise SegmentError(f"{batch.source} changed while the job ran: {len(found)} segments from line {batch.line} on, "
                       f"{batch.count} when the job started")


def read_segment_batch(batch: SegmentBatch, config: JobConfig) -> Iterator[Segment]:
    """The segments of one batch, with their local files attached (--audio-dir)."""
    if batch.source is None:
        first = batch.offset + batch.skip
        files = _audio_files(config.audio_dir)[first : first + batch.count]
        yield from (directory_segment(config.audio_dir, relative) for relative in files)
        return
    segments = _read_csv_batch(batch, config, load_vocabulary(config.labels))
    if config.audio_dir:
        matched, _ = match_local_files(segments, config.audio_dir)
        by_key = {s.key: s for s in matched}
        segments = [by_key.get(s.key, s) for s in segments]
    yield from segments


# --------------------------------------------------------------------------------------------
# Fetch
# --------------------------------------------------------------------------------------------


def failure_record(segment: Segment, failure: Failure) -> dict[str, Any]:
    """One line of failures-<split>.jsonl."""
    return {
        "ytid": segment.ytid,
        "start_s": segment.start_s,
        "end_s": segment.end_s,
        "reason": failure.reason,
        "permanent": failure.permanent,
        "message": failure.message,
        "attempts": failure.attempts,
        "time": failure.time,
    }


class Progress:
    """Counts and rates logged every ``every_s`` seconds from one worker (its threads share it)."""

    def __init__(self, what: str, every_s: float = 30.0) -> None:
        self.what, self.every_s = what, every_s
        self.started = self.last = time.monotonic()
        self.counts: dict[str, int] = {}
        self.lock = threading.Lock()

    def add(self, key: str) -> None:
        with self.lock:
            self.counts[key] = self.counts.get(key, 0) + 1
            now = time.monotonic()
            if now - self.last < self.every_s:
                return
            self.last = now
            total = sum(self.counts.values())
            detail = ", ".join(f"{k} {v}" for k, v in sorted(self.counts.items()))
        log.info("%s: %d done (%.1f/s in this worker): %s", self.what, total, total / (now - self.started), detail)


_progress: dict[tuple[str, str], Progress] = {}
_progress_lock = threading.Lock()


def job_progress(what: str, job: str) -> Progress:
    """The Progress of ``what`` for the job ``job`` in this worker process. A DoFn's setup() runs
    once per DoFn instance, which is once per process on the DirectRunner and Dataflow but once
    per bundle on the Dask runner, whose workers are long-lived processes running bundle after
    bundle of job after job: counts and rates belong to the process and the job, not the bundle."""
    with _progress_lock:
        if (what, job) not in _progress:
            while len(_progress) >= 16:  # earlier jobs' (the two splits' jobs may share the workers)
                del _progress[next(iter(_progress))]
            _progress[(what, job)] = Progress(what)
        return _progress[(what, job)]


class FetchAudio(beam.DoFn):
    """Segment → (shard, FetchedSegment), or a failure dict (split apart by :func:`is_failure`).

    setup() is cheap and keeps nothing of its own: on the Dask runner it runs for every bundle.
    yt-dlp and ffmpeg are started per segment (per batch of segments for ffmpeg), never kept."""

    def __init__(self, config: JobConfig, num_shards: int) -> None:
        self.config, self.num_shards = config, num_shards
        self.job = uuid.uuid4().hex  # made by the launcher: one per job, the same in every worker

    def setup(self) -> None:
        self.progress = job_progress("fetch", self.job)
        self.counters = {name: Metrics.counter(NAMESPACE, name) for name in ("fetched", "cached", "local", "failed")}

    def process(self, segment: Segment) -> Iterator[Any]:
        shard = shards.shard_index(segment.key, self.num_shards)
        if segment.path is not None:
            self._count("local")
            yield shard, FetchedSegment(segment, segment.path, from_cache=True)
            return
        if self.config.audio_dir and not self.config.fetch.url_template:
            failure = Failure("missing_local", True, f"no file for {segment.ytid} in --audio-dir", 0, shards.utc_now())
        else:
            try:
                result = fetch_segment(segment.ytid, segment.start_s, segment.end_s, self.config.cache, self.config.fetch)
            except ValueError as error:  # an id fetch cannot take (--allow-any-id with a URL template)
                result = FetchResult(None, Failure("invalid_id", True, str(error), 0, shards.utc_now()), False)
            failure = result.failure
            if failure is None:
                self._count("cached" if result.cached else "fetched")
                yield shard, FetchedSegment(segment, result.path, from_cache=result.cached)
                return
        self._count("failed")
        Metrics.counter(NAMESPACE, f"failed_{failure.reason}").inc()
        yield failure_record(segment, failure)

    def _count(self, name: str) -> None:
        self.counters[name].inc()
        self.progress.add(name)


# --------------------------------------------------------------------------------------------
# Shards
# --------------------------------------------------------------------------------------------


#: Segments decoded by one ffmpeg process (its start-up costs several clips' worth of decoding).
DECODE_BATCH = 16


def decode_request(item: FetchedSegment, *, whole: bool = False) -> DecodeRequest:
    """What to decode for a segment. A cache entry or a pre-cut local file is the segment itself;
    another local file is taken to be the whole source and [start, end] is cut from it."""
    segment = item.segment
    duration = None if segment.end_s is None else segment.end_s - segment.start_s
    if segment.path is not None and not segment.precut and not whole:
        return DecodeRequest(item.path, segment.start_s, duration)
    return DecodeRequest(item.path, None, duration)


def segment_audio(items: list[FetchedSegment], config: JobConfig) -> list[np.ndarray | DecodeError]:
    """Decoded audio of each segment (or its DecodeError), a batch per ffmpeg process.

    A local file that ends before the segment's end (the decoded range is short by more than
    0.5 s) was not the whole source but the segment already cut, as many AudioSet copies store
    it under ``<ytid>.wav``: it is decoded again whole. This replaces a probe of every file.
    """
    with tempfile.TemporaryDirectory(prefix="mygo-remote-") as scratch:
        items = [local_copy(item, f"{scratch}/{index}") for index, item in enumerate(items)]
        requests = [decode_request(item) for item in items]
        audio = decode_many(requests, config.spectrogram, **decode_limits(config))
        for index, (item, request) in enumerate(zip(items, requests)):
            if request.start_s and isinstance(audio[index], np.ndarray):
                expected = request.duration_s * config.spectrogram.sample_rate
                if audio[index].shape[0] < expected - 0.5 * config.spectrogram.sample_rate:
                    (audio[index],) = decode_many([decode_request(item, whole=True)], config.spectrogram,
                                                  **decode_limits(config))
    return audio


def decode_limits(config: JobConfig) -> dict[str, float]:
    """The job's caps on every decode: ``--max-seconds`` (the decoder's default is only 600 s,
    so a raised cap must reach it) and ``--decode-timeout``."""
    return {"max_seconds": config.clips.max_seconds, "timeout_s": config.decode_timeout}


def local_copy(item: FetchedSegment, scratch: str) -> FetchedSegment:
    """ffmpeg reads local files: a cache entry or an --audio-dir file on gs:// (or another remote
    file system) is copied into the folder ``scratch`` first (an m4a with its index at the end
    cannot be read from a pipe). One folder per item: two files of an --audio-dir may share a name."""
    if not storage.is_remote(item.path):
        return item
    os.makedirs(scratch, exist_ok=True)
    local = os.path.join(scratch, item.path.rsplit("/", 1)[-1])
    storage.copy(item.path, local)
    return dataclasses.replace(item, path=local)


def shard_examples(
    items: Iterable[FetchedSegment], config: JobConfig
) -> tuple[list[shards.ClipExample], list[dict[str, Any]]]:
    """Examples of one shard sorted by clip_id, and the failures met on the way."""
    examples, failures = [], []
    items = sorted(items, key=lambda i: i.segment.key)
    for first in range(0, len(items), DECODE_BATCH):
        batch = items[first : first + DECODE_BATCH]
        for item, audio in zip(batch, segment_audio(batch, config)):
            segment = item.segment
            try:
                if isinstance(audio, DecodeError):
                    raise audio
                clips = make_clips(audio, config.spectrogram, config.clips)
            except DecodeError as error:  # its own reason: too_long (permanent), timeout (transient), ...
                failures.append(_decode_failure(segment, error.reason, str(error), error.permanent))
                continue
            except UnusableAudio as error:
                failures.append(_decode_failure(segment, error.reason, str(error)))
                continue
            end_s = segment.end_s if segment.end_s is not None else segment.start_s + clips_duration(clips, config)
            for chunk, clip in enumerate(clips):
                examples.append(
                    shards.ClipExample(
                        clip_id=shards.clip_id(segment.ytid, segment.start_s, chunk),
                        ytid=segment.ytid,
                        start_s=segment.start_s,
                        end_s=end_s,
                        chunk=chunk,
                        labels=segment.labels,
                        logmel=log_mel(clip, config.spectrogram).astype(np.float16),
                    )
                )
    examples.sort(key=lambda e: e.clip_id)
    for before, after in zip(examples, examples[1:]):
        if before.clip_id == after.clip_id:
            raise ValueError(f"duplicate clip_id {before.clip_id}")
    return examples, failures


def clips_duration(clips: list[np.ndarray], config: JobConfig) -> float:
    return len(clips) * config.spectrogram.clip_seconds


def _decode_failure(segment: Segment, reason: str, message: str, permanent: bool = True) -> dict[str, Any]:
    """A failure met while decoding; a transient one (a timeout) is tried again by the next run."""
    return failure_record(segment, Failure(reason, permanent, message, 1, shards.utc_now()))


class WriteShard(beam.DoFn):
    """(shard, [FetchedSegment | None]) → its failure dicts, then its ShardSummary."""

    def __init__(self, config: JobConfig, num_shards: int) -> None:
        self.config, self.num_shards = config, num_shards

    def setup(self) -> None:
        self.examples_written = Metrics.counter(NAMESPACE, "examples_written")
        self.shards_written = Metrics.counter(NAMESPACE, "shards_written")

    def process(self, element: tuple[int, Iterable[FetchedSegment | None]]) -> Iterator[Any]:
        index, items = element
        items = [item for item in items if item is not None]
        started = time.monotonic()
        examples, failures = shard_examples(items, self.config)
        stats = shards.BandStats.empty(self.config.spectrogram.n_mels)
        for example in examples:
            stats.add_example(example.logmel)
        name = shards.shard_file_name(self.config.split, index, self.num_shards)
        shards.write_shard(f"{self.config.out.rstrip('/')}/{name}", (e.serialize() for e in examples))
        self.examples_written.inc(len(examples))
        self.shards_written.inc()
        for failure in failures:
            Metrics.counter(NAMESPACE, f"failed_{failure['reason']}").inc()
            yield failure
        elapsed = time.monotonic() - started
        log.info("%s: %d examples from %d segments in %.1f s (%.1f segments/s)", name, len(examples), len(items),
                 elapsed, len(items) / max(elapsed, 1e-9))
        yield ShardSummary(index, name, len(examples), len(items), stats)


# --------------------------------------------------------------------------------------------
# Manifest
# --------------------------------------------------------------------------------------------


def write_manifest(
    _: Any,
    summaries: list[ShardSummary],
    failures: list[dict[str, Any]],
    config: JobConfig,
    split_info: dict[str, Any],
) -> None:
    """Merge this split into manifest.json and write failures-<split>.jsonl (deterministic order)."""
    summaries = sorted(summaries, key=lambda s: s.index)
    stats = shards.BandStats.empty(config.spectrogram.n_mels)
    for summary in summaries:
        stats.merge(summary.stats)
    mean, std = stats.mean_std()
    failures = sorted(failures, key=lambda f: (f["ytid"], f["start_s"]))
    reasons: dict[str, int] = {}
    for failure in failures:
        reasons[failure["reason"]] = reasons.get(failure["reason"], 0) + 1
    out = config.out.rstrip("/")
    failures_name = shards.failures_file_name(config.split)
    storage.write_text_atomic(f"{out}/{failures_name}", "".join(json.dumps(f, sort_keys=True) + "\n" for f in failures),
                             tag=config.split)

    entry = {
        "shards": [{"file": s.file, "examples": s.examples, "segments": s.segments} for s in summaries],
        "examples": sum(s.examples for s in summaries),
        "segments": split_info["segments"],
        "failures": dict(sorted(reasons.items())),
        "failures_file": failures_name,
        "band_mean": mean,
        "band_std": std,
        **{key: value for key, value in split_info.items() if key != "segments"},
        "completed": shards.utc_now(),
    }
    # The other split's job may be merging its entry at this moment: update_manifest says how
    # neither loses the other's.
    base = shards.new_manifest(config.spectrogram, load_vocabulary(config.labels).to_manifest(), config.clips.to_dict())
    shards.update_manifest(out, config.split, base, entry)
    tfds_metadata.write_metadata(out, tag=config.split)  # dataset_info.json etc.: tfds.builder_from_directory(out)
    log.info("manifest: %s split has %d examples in %d shards; %d failures %s", config.split,
             entry["examples"], len(summaries), len(failures), reasons or "")


def write_manifest_of_results(
    keyed: tuple[int, Iterable[ShardSummary | dict[str, Any]]], config: JobConfig, split_info: dict[str, Any]
) -> None:
    """write_manifest with the job's results gathered under one key: the ShardSummaries and the
    failure dicts, in any order."""
    summaries: list[ShardSummary] = []
    failures: list[dict[str, Any]] = []
    for result in keyed[1]:
        (failures if is_failure(result) else summaries).append(result)
    write_manifest(None, summaries, failures, config, split_info)


# --------------------------------------------------------------------------------------------
# The graph
# --------------------------------------------------------------------------------------------


def is_failure(element: Any) -> bool:
    """A failure dict (failures-<split>.jsonl's line), among fetched segments or shard summaries."""
    return isinstance(element, dict)


def is_fetched(element: Any) -> bool:
    return not is_failure(element)


def under_one_key(element: Any) -> tuple[int, Any]:
    """Gathers everything into one group. The key is an int: the Dask runner's GroupByKey sends
    elements to partitions by Python's hash(), which for None and str is not the same in every
    process."""
    return 0, element


def shard_placeholder(index: int) -> tuple[int, None]:
    """Makes every shard exist, even one that no segment hashes to."""
    return index, None


def build(pipeline: beam.Pipeline, config: JobConfig, plan: SegmentPlan, num_shards: int, split_info: dict[str, Any]) -> None:
    segments = (
        pipeline
        | "SegmentBatches" >> beam.Create(list(plan.batches))  # SegmentBatch: where to read
        | "ReadSegments" >> beam.FlatMap(read_segment_batch, config)  # Segment
        | "Spread" >> beam.Reshuffle()  # Segment, spread over workers for parallel fetching
    )
    outcomes = segments | "Fetch" >> beam.ParDo(FetchAudio(config, num_shards))  # (shard, FetchedSegment) | dict
    fetched = outcomes | "Fetched" >> beam.Filter(is_fetched)  # (shard, FetchedSegment)
    fetch_failures = outcomes | "FetchFailures" >> beam.Filter(is_failure)  # failure dict
    placeholders = (
        pipeline
        | "ShardNumbers" >> beam.Create(list(range(num_shards)))
        | "Placeholders" >> beam.Map(shard_placeholder)  # (shard, None)
    )
    written = (
        (fetched, placeholders)
        | "WithPlaceholders" >> beam.Flatten()
        | "GroupByShard" >> beam.GroupByKey()  # (shard, [FetchedSegment | None])
        | "WriteShard" >> beam.ParDo(WriteShard(config, num_shards))
    )  # ShardSummary | failure dict
    (
        (fetch_failures, written)
        | "AllResults" >> beam.Flatten()  # ShardSummary | failure dict
        | "UnderOneKey" >> beam.Map(under_one_key)
        | "GatherResults" >> beam.GroupByKey()  # (0, [ShardSummary | failure dict]): one group, even with no failure
        | "WriteManifest" >> beam.Map(write_manifest_of_results, config=config, split_info=split_info)
    )

"""What the job does for the Dask runner before anything runs: the runner's short name, and the
segment batches cut into parts (its Reshuffle spreads nothing: the first Create's partitions do)."""
from __future__ import annotations

import pickle
import threading

import pytest

from pipeline import job
from pipeline.__main__ import parser, unknown_arguments
from pipeline.config import DASK_RUNNER, JobConfig, is_dask_runner, with_runner_aliases
from pipeline.segments import parse_segments_csv, load_vocabulary
from pipeline.run import DASK_BATCHES, beam_options, dask_partitions
from tests.pipeline.test_read_segments import HEADER, read_all, rows


def test_dask_runner_has_a_short_name_and_its_options_are_known():
    assert with_runner_aliases(["--runner", "DaskRunner", "--runner=dask"]) == ["--runner", DASK_RUNNER,
                                                                               f"--runner={DASK_RUNNER}"]
    assert with_runner_aliases(["--runner", "DataflowRunner"]) == ["--runner", "DataflowRunner"]
    assert is_dask_runner("DaskRunner") and is_dask_runner(DASK_RUNNER) and not is_dask_runner("DirectRunner")
    args = ["--runner", "DaskRunner", "--dask_client_address", "tcp://127.0.0.1:8786"]
    assert unknown_arguments(parser(), with_runner_aliases(args)) == []


def test_dask_partitions_are_the_jobs_unless_told(tmp_path):
    config = JobConfig(split="train", out=str(tmp_path / "out"), cache=str(tmp_path / "cache"), segments=("x.csv",))
    args = ["--runner", "DaskRunner", "--dask_client_address", "tcp://127.0.0.1:8786"]
    options = beam_options(config, args, dask_partitions=12)
    assert options.get_all_options()["runner"] == DASK_RUNNER
    assert options.get_all_options()["npartitions"] == 12
    options = beam_options(config, ["--runner", "DaskRunner", "--dask_npartitions", "8"], dask_partitions=12)
    assert options.get_all_options()["npartitions"] == 8 and dask_partitions(options) == 8
    options = beam_options(config, ["--runner", "DaskRunner", "--dask_partition_size", "3"], dask_partitions=12)
    assert not options.get_all_options()["npartitions"] and dask_partitions(options) == DASK_BATCHES


@pytest.mark.parametrize("count", [1, 7, DASK_BATCHES + 3, 3 * job.SEGMENT_BATCH + 5])
def test_spread_batches_are_the_same_segments_in_the_same_order(tmp_path, count):
    csv = tmp_path / "a.csv"
    csv.write_text(HEADER + rows(0, count))
    config = JobConfig(split="train", out=str(tmp_path / "out"), cache=str(tmp_path / "cache"), segments=(str(csv),))
    plan = job.plan_segments(config)
    spread = job.spread_batches(plan, DASK_BATCHES)
    assert spread.total == plan.total == count
    assert len(spread.batches) >= min(count, DASK_BATCHES) and sum(b.count for b in spread.batches) == count
    assert read_all(spread, config) == read_all(plan, config) == parse_segments_csv(str(csv), load_vocabulary())


def test_spread_batches_of_an_audio_directory(tmp_path):
    audio = tmp_path / "audio"
    audio.mkdir()
    for number in range(5):
        (audio / f"clip{number}.wav").write_bytes(b"")
    config = JobConfig(split="train", out=str(tmp_path / "out"), cache=str(tmp_path / "cache"), audio_dir=str(audio))
    plan = job.plan_segments(config)
    spread = job.spread_batches(plan, DASK_BATCHES)
    assert len(spread.batches) == 5
    assert [s.ytid for s in read_all(spread, config)] == [s.ytid for s in read_all(plan, config)]


def test_fetch_progress_belongs_to_the_process_and_job_not_to_the_bundle(tmp_path):
    # The Dask runner unpickles a DoFn and calls setup() for every bundle, in threads of workers
    # that run job after job: each bundle's copy counts into the same Progress of its job.
    config = JobConfig(split="train", out=str(tmp_path / "out"), cache=str(tmp_path / "cache"), segments=("x.csv",))
    first = job.FetchAudio(config, 3)
    bundles = [pickle.loads(pickle.dumps(first)) for _ in range(3)]
    for fn in [first, *bundles]:
        fn.setup()
    assert all(fn.progress is first.progress for fn in bundles)
    threads = [threading.Thread(target=lambda fn=fn: [fn.progress.add("cached") for _ in range(1000)]) for fn in bundles]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert first.progress.counts == {"cached": 3000}
    next_job = job.FetchAudio(config, 3)
    next_job.setup()
    assert next_job.progress is not first.progress and next_job.progress.counts == {}

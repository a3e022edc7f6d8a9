"""manifest.json shared by two jobs (train and eval on one --out at once), and damaged manifests."""
from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

from pipeline import __main__ as cli
from audioshards import shards
from pipeline import job, run
from pipeline.config import JobConfig

ROW = 'abcdefghijk, 0.000, 10.000, "/m/09x0r"\n'


def config_for(out: Path, split: str, csv: str = "unused.csv") -> JobConfig:
    return JobConfig(split=split, out=str(out), cache=str(out.parent / "cache"), segments=(csv,))


def test_a_job_removes_only_its_own_splits_temporaries(tmp_path):
    out = tmp_path / "shards"
    out.mkdir()
    own = ["train-00000-of-00001.tfrecord.tmp-0a1b", "failures-train.jsonl.tmp-train-0a1b",
           "manifest.json.tmp-train-0a1b", "manifest-train.json.tmp-train-0a1b"]
    others = ["eval-00000-of-00002.tfrecord.tmp-0a1b", "failures-eval.jsonl.tmp-eval-0a1b",
              "manifest.json.tmp-eval-0a1b", "manifest-eval.json.tmp-eval-0a1b"]
    for name in own + others:
        (out / name).write_text("half written")
    run.prepare_output(config_for(out, "train"), num_shards=1)
    assert sorted(p.name for p in out.iterdir()) == sorted(others + ["manifest.json"])


def summary(index: int, examples: int) -> job.ShardSummary:
    stats = shards.BandStats.empty(256)
    return job.ShardSummary(index, shards.shard_file_name("x", index, 2), examples, examples, stats)


def write_rounds(out: str, split: str, rounds: int, barrier, lost) -> None:
    """One split's job finishing ``rounds`` times, each time at the same moment as the other's
    (a barrier), with another segment count; after each round, whether manifest.json lost one."""
    config = config_for(Path(out), split)
    for number in range(1, rounds + 1):
        barrier.wait()
        job.write_manifest(None, [summary(0, number)], [], config, {"segments": number})
        barrier.wait()
        written = json.loads((Path(out) / "manifest.json").read_text())  # as any reader of the file sees it
        if {s: e["segments"] for s, e in written["splits"].items()} != {"train": number, "eval": number}:
            with lost.get_lock():
                lost.value += 1
        barrier.wait()


def test_two_jobs_finishing_at_once_both_keep_their_split_in_the_manifest(tmp_path):
    out = tmp_path / "shards"
    run.prepare_output(config_for(out, "train"), num_shards=1)
    context = multiprocessing.get_context("spawn")
    barrier, lost, rounds = context.Barrier(2), context.Value("i", 0), 30
    writers = [context.Process(target=write_rounds, args=(str(out), split, rounds, barrier, lost))
               for split in ("train", "eval")]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=300)
        assert writer.exitcode == 0
    assert lost.value == 0  # rounds (counted by both jobs) in which manifest.json lacked a split's entry
    written = json.loads((out / "manifest.json").read_text())
    assert written["splits"] == shards.read_manifest(str(out))["splits"]
    assert {split: entry["segments"] for split, entry in written["splits"].items()} == {"train": rounds, "eval": rounds}
    assert not [p.name for p in out.iterdir() if ".tmp" in p.name]


def test_split_files_are_overlaid_on_a_manifest_a_killed_job_left_behind(tmp_path):
    out = tmp_path / "shards"
    run.prepare_output(config_for(out, "eval"), num_shards=1)
    job.write_manifest(None, [summary(0, 3)], [], config_for(out, "eval"), {"segments": 3})
    written = json.loads((out / "manifest.json").read_text())
    assert set(written["split_files"]) == {"eval"}  # the version of manifest-eval.json it was built from
    stale = json.loads(json.dumps(written))
    del stale["splits"]["eval"], stale["split_files"]["eval"]  # as if killed between the two files
    (out / "manifest.json").write_text(json.dumps(stale))
    assert shards.read_manifest(str(out))["splits"]["eval"]["segments"] == 3
    stale["splits"]["eval"] = {**written["splits"]["eval"], "segments": 2}
    stale["split_files"]["eval"] = "0" * 32  # an earlier run's entry: the split file's is newer
    (out / "manifest.json").write_text(json.dumps(stale))
    assert shards.read_manifest(str(out))["splits"]["eval"]["segments"] == 3
    edited = json.loads(json.dumps(written))
    edited["splits"]["eval"]["band_mean"] = []  # edited by hand (as the trainer's tests do): kept
    (out / "manifest.json").write_text(json.dumps(edited))
    assert shards.read_manifest(str(out))["splits"]["eval"]["band_mean"] == []
    (out / "manifest.json").unlink()  # only the split file left
    alone = shards.read_manifest(str(out))
    assert alone["splits"]["eval"] == written["splits"]["eval"] and alone["labels"] == written["labels"]
    assert "written" not in alone


@pytest.mark.parametrize("text, problem", [
    ('{"format_version": 1, "splits": {', "not valid JSON (Expecting"),
    ("[1, 2]", "not a shard manifest"),
    ('{"splits": {"train": 3}}', "split 'train' is int, not an object"),
    (b"\xff\xfe{\x00}\x00", "not UTF-8 text"),
])
def test_a_damaged_manifest_is_named_with_what_is_wrong(tmp_path, text, problem):
    path = tmp_path / "manifest.json"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(shards.ManifestError) as error:
        shards.read_manifest(str(tmp_path))
    assert str(error.value).startswith(f"{path}: ") and problem in str(error.value)


def test_the_pipeline_names_a_damaged_manifest_and_exits_2(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(cli, "configure_logging", lambda level: None)
    csv = tmp_path / "segments.csv"
    csv.write_text(ROW)
    out = tmp_path / "shards"
    out.mkdir()
    (out / "manifest.json").write_text('{"format_version": 1, "spl')
    code = cli.main(["--segments", str(csv), "--split", "train", "--out", str(out), "--cache", str(tmp_path / "c")])
    assert code == 2
    assert f"{out}/manifest.json: not valid JSON" in caplog.text
    assert not [p for p in out.iterdir() if p.name != "manifest.json"]

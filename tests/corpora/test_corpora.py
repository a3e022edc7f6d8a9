"""The offline corpora (corpora/): the small versions, built for real with espeak-ng,
FluidSynth and the Debian sound packages, then checked with ffmpeg, the pipeline's own segment
parser and its local mirror server.

The builder runs as a subprocess (as ``make corpora`` runs it): it forks workers, which a test
process that may hold TensorFlow's threads should not do itself.
"""
from __future__ import annotations

import collections
import concurrent.futures
import csv
import hashlib
import json
import os
import subprocess
import sys
import urllib.request

import numpy as np
import pytest

from corpora import music, packages, scenes, speech
from pipeline.audio_server import AudioServer
from pipeline.segments import YTID_PATTERN, load_vocabulary, parse_segments_csv
from tests.corpora.conftest import CORPORA, REPO, build
from tests.loopback_server import LoopbackServer


def read_csv(path: str) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def decode(path: str) -> np.ndarray:
    """The file as ffmpeg decodes it: float32 mono at 48 kHz."""
    result = subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-i", path, "-f", "f32le", "-ac", "1",
                             "-ar", "48000", "-"], capture_output=True, check=True, timeout=60)
    return np.frombuffer(result.stdout, np.float32)


def audio_files(manifest: dict) -> list[str]:
    return [path for path in manifest["files"] if path.endswith(".flac")]


# ------------------------------------------------------------------------------------------


def test_every_file_decodes_to_the_stated_duration_and_is_not_silent(corpora):
    out, manifests = corpora
    jobs = [(name, path) for name, manifest in manifests.items() for path in audio_files(manifest)]
    assert len(jobs) == 24 + 3 * 20 + 2 * 16

    def check(job):
        name, path = job
        samples = decode(os.path.join(out, name, path))
        level = 10 * np.log10(np.mean(samples.astype(np.float64) ** 2) + 1e-20)
        return name, path, len(samples) / 48000, level

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        for name, path, seconds, level in pool.map(check, jobs):
            assert seconds == pytest.approx(manifests[name]["clip_seconds"], abs=1e-3), (name, path)
            assert level > -50, f"{name}/{path} is (nearly) silent: {level:.1f} dBFS"


def test_segments_csv_is_audioset_format_and_parses_with_the_pipeline(corpora):
    out, manifests = corpora
    folder = os.path.join(out, "pretrain")
    lines = open(os.path.join(folder, "segments.csv")).read().splitlines()
    assert [line[0] for line in lines[:3]] == ["#"] * 3 and not lines[3].startswith("#")
    assert lines[2] == "# YTID, start_seconds, end_seconds, positive_labels"
    vocabulary = load_vocabulary()
    segments = parse_segments_csv(os.path.join(folder, "segments.csv"), vocabulary)  # strict: unknown mid raises
    assert len(segments) == manifests["pretrain"]["clips"] == 24
    records = [json.loads(line) for line in open(os.path.join(folder, "clips.jsonl"))]
    mid_of = {index: mid for index, mid, _ in vocabulary.entries}
    for segment, record in zip(segments, records):
        assert segment.ytid == record["ytid"]
        assert (segment.start_s, segment.end_s) == (0.0, 10.0)
        assert segment.labels, f"{segment.ytid} has no label"
        assert {mid_of[i] for i in segment.labels} == set(record["labels"])
    counts = collections.Counter(mid for record in records for mid in record["labels"])
    assert {mid: entry["count"] for mid, entry in manifests["pretrain"]["label_counts"].items()} == counts
    assert set(manifests["pretrain"]["recipes"]) == set(scenes.RECIPES)  # every kind of clip, even small
    for kind in ("/m/09x0r", "/m/04rlf", "/m/02hnl", "/m/05zppz", "/m/02zsn"):  # speech, music, drums, sexes
        assert counts[kind] > 0, kind


def test_ytids_are_valid_unique_and_served_by_the_mirror(corpora):
    out, _ = corpora
    folder = os.path.join(out, "pretrain")
    segments = parse_segments_csv(os.path.join(folder, "segments.csv"), load_vocabulary())
    ids = [segment.ytid for segment in segments]
    assert len(set(ids)) == len(ids)
    assert all(YTID_PATTERN.match(i) for i in ids)
    assert sorted(os.listdir(os.path.join(folder, "audio"))) == sorted(f"{i}.flac" for i in ids)
    with AudioServer(os.path.join(folder, "audio")) as server:
        for ytid in ids[:3]:
            with urllib.request.urlopen(server.url_template.format(ytid=ytid), timeout=10) as response:
                body = response.read()
                assert response.headers["Content-Type"] == "audio/flac"
            assert body == open(os.path.join(folder, "audio", f"{ytid}.flac"), "rb").read()


def test_keyword_folds_hold_out_speakers_and_voices(corpora):
    out, manifests = corpora
    folder = os.path.join(out, "keywords")
    rows = read_csv(os.path.join(folder, "speakers.csv"))
    labels = read_csv(os.path.join(folder, "labels.csv"))
    assert [(r["path"], r["fold"]) for r in rows] == [(r["path"], r["fold"]) for r in labels]
    speakers, voices = collections.defaultdict(set), collections.defaultdict(set)
    for row in rows:
        speakers[row["fold"]].add(row["speaker"])
        voices[row["fold"]].add(row["variant"])
    assert len(speakers) >= 2
    for fold in speakers:
        others = set().union(*(s for f, s in speakers.items() if f != fold))
        other_voices = set().union(*(v for f, v in voices.items() if f != fold))
        assert not speakers[fold] & others, f"fold {fold} shares speakers with training folds"
        assert not voices[fold] & other_voices, f"fold {fold} shares voices with training folds"
    assert manifests["keywords"]["folds"] == {f: sorted(s) for f, s in sorted(speakers.items())}
    by_fold = collections.defaultdict(collections.Counter)
    for row in labels:
        assert row["path"].split("/")[1] == row["label"]  # folder per class
        by_fold[row["fold"]][row["label"]] += 1
    for fold, counts in by_fold.items():
        assert set(counts) == set(speech.KEYWORDS), f"fold {fold} lacks words"


def test_instrument_folds_are_different_soundfonts_playing_the_same_notes(corpora):
    out, manifests = corpora
    folder = os.path.join(out, "instruments")
    rows = read_csv(os.path.join(folder, "clips.csv"))
    labels = read_csv(os.path.join(folder, "labels.csv"))
    assert [(r["path"], r["family"], r["fold"]) for r in rows] == [(r["path"], r["label"], r["fold"]) for r in labels]
    fonts = collections.defaultdict(set)
    for row in rows:
        fonts[row["fold"]].add(row["soundfont"])
        assert row["family"] == music.FAMILIES[int(row["program"]) // 8]
        assert row["path"].split("/")[1] == row["family"]
    assert fonts == {"1": {"FluidR3_GM"}, "2": {"TimGM6mb"}}
    for fold in ("1", "2"):
        assert {r["family"] for r in rows if r["fold"] == fold} == set(music.FAMILIES)
    train = {(r["program"], r["phrase"]): r["path"] for r in rows if r["fold"] == "1"}
    test = {(r["program"], r["phrase"]): r["path"] for r in rows if r["fold"] == "2"}
    assert train.keys() == test.keys()
    files = manifests["instruments"]["files"]
    assert all(files[train[key]] != files[test[key]] for key in train)
    recorded = manifests["instruments"]["folds"]
    assert recorded["1"]["sha256"] != recorded["2"]["sha256"]


def test_manifest_checksums_match_the_files(corpora):
    out, manifests = corpora
    for name, manifest in manifests.items():
        folder = os.path.join(out, name)
        on_disk = {}
        for root, _, files in os.walk(folder):
            for file in files:
                relative = os.path.relpath(os.path.join(root, file), folder)
                if relative != "manifest.json":
                    on_disk[relative] = hashlib.sha256(open(os.path.join(root, file), "rb").read()).hexdigest()
        assert on_disk == manifest["files"], name
        lines = "".join(f"{digest}  {path}\n" for path, digest in sorted(on_disk.items()))
        assert manifest["files_digest"] == hashlib.sha256(lines.encode()).hexdigest()
        assert all(manifest["packages"]["debian"][package] for package in packages.DEBIAN), name
        assert manifest["packages"]["pypi"]["pyfluidsynth"] == packages.PYPI["pyfluidsynth"]
        assert "--size small" in manifest["command"]
        assert sum(entry["count"] if isinstance(entry, dict) else entry
                   for entry in manifest["label_counts"].values()) >= manifest["clips"]


def test_same_seed_gives_identical_files_and_another_seed_different(corpora, tmp_path):
    _, first = corpora
    again = build(str(tmp_path / "again"))
    for name in CORPORA:
        assert again[name]["files"] == first[name]["files"], f"{name} is not deterministic"
    other = build(str(tmp_path / "other"), seed=1, what="keywords")
    assert other["keywords"]["files_digest"] != first["keywords"]["files_digest"]


def test_missing_debian_packages_are_named_with_the_install_command(monkeypatch):
    versions = {name: version for name, (version, _) in packages.DEBIAN.items()}
    versions["timgm6mb-soundfont"] = None
    monkeypatch.setattr(packages, "debian_versions", lambda names=packages.DEBIAN: versions)
    with pytest.raises(RuntimeError, match=r"apt-get install --no-install-recommends timgm6mb-soundfont\n"):
        packages.check_installed()


def test_the_pipeline_shards_the_corpus_through_its_mirror(corpora, tmp_path):
    """The real pipeline (yt-dlp, ffmpeg, Beam) fetches the corpus by YTID like YouTube."""
    out, _ = corpora
    folder = os.path.join(out, "pretrain")
    with LoopbackServer(os.path.join(folder, "audio")) as server:  # counts the requests
        result = subprocess.run(
            [sys.executable, "-m", "pipeline", "--segments", os.path.join(folder, "segments.csv"),
             "--split", "train", "--out", str(tmp_path / "shards"), "--cache", str(tmp_path / "cache"),
             "--url-template", server.url_template, "--limit", "6", "--workers", "1", "--direct_running_mode",
             "in_memory"],
            cwd=REPO, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
        assert server.request_count > 0
    manifest = json.load(open(tmp_path / "shards" / "manifest.json"))
    assert manifest["splits"]["train"]["examples"] == 6
    assert manifest["splits"]["train"]["failures"] == {}


def test_full_size_keyword_folds_are_voice_disjoint_and_balanced():
    """The full corpus reuses voice variants with other accents: a variant stays in one fold."""
    from corpora import build as builder

    speakers = builder.keyword_speakers(seed=0, count=builder.SIZES["keywords"]["full"])
    assert len({s["speaker"] for s in speakers}) == len(speakers)
    fold_of_variant = {}
    for speaker in speakers:
        assert fold_of_variant.setdefault(speaker["variant"], speaker["fold"]) == speaker["fold"], speaker
    assert len(fold_of_variant) < len(speakers)  # variants are reused, so the check above matters
    per_fold = collections.Counter((s["fold"], s["sex"]) for s in speakers)
    assert set(per_fold) == {(f, sex) for f in range(1, 6) for sex in "FM"}
    assert max(per_fold.values()) - min(per_fold.values()) <= 4


def test_a_soundfont_that_renders_silence_gives_no_file_and_is_recorded(tmp_path):
    """TimGM6mb has no samples for program 78's keys in one phrase of the full set (found when a
    probe met a silent clip): the clip is dropped, not written silent."""
    from corpora import build as builder

    jobs = builder.instrument_jobs(0, builder.SIZES["instruments"]["full"], small=False)
    job = next(j for j in jobs if j["soundfont"] == "TimGM6mb" and j["program"] == 78 and j["phrase"] == 3)
    result = builder.make_instrument_clip(job, str(tmp_path))
    assert result["silent"] is True
    assert not (tmp_path / job["path"]).exists()
    twin = next(j for j in jobs if j["soundfont"] == "FluidR3_GM" and j["program"] == 78 and j["phrase"] == 3)
    assert "silent" not in builder.make_instrument_clip(twin, str(tmp_path))
    assert (tmp_path / twin["path"]).exists()

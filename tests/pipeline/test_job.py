"""The whole job, end to end: real CLI, real Beam runner, real yt-dlp and ffmpeg, a local server.

One uninterrupted run into ``reference`` is checked in detail; other runs are compared to it.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import librosa
import numpy as np
import pytest

from audioshards import shards
from pipeline.segments import load_vocabulary
from audioshards.spectrogram import DEFAULT_CONFIG

SHAPE = DEFAULT_CONFIG.shape
NUM_SHARDS = 3
#: Beam's DirectRunner inside the job's own process, for the runs whose subject is not the runner
#: (the reference run keeps the default, a worker process per core; its bytes are what the others
#: must reproduce).
IN_ONE_PROCESS = ("--workers", "1", "--direct_running_mode", "in_memory")


def pipeline_command(corpus, out, cache, template, *extra, num_shards=NUM_SHARDS):
    return [
        sys.executable, "-m", "pipeline", "--segments", corpus.csv_path, "--split", "train",
        "--out", str(out), "--cache", str(cache), "--url-template", template,
        "--num-shards", str(num_shards), "--workers", "2", "--backoff", "0.05", *extra,
    ]


def run_pipeline(*command, check=True):
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if check and result.returncode != 0:
        raise AssertionError(f"pipeline failed ({result.returncode}):\n{result.stderr[-4000:]}")
    return result


def shard_files(directory):
    return sorted(p for p in Path(directory).glob("train-*.tfrecord"))


def all_examples(directory):
    return {e.clip_id: e for path in shard_files(directory) for e in shards.read_examples(str(path), SHAPE)}


@pytest.fixture(scope="module")
def reference(tmp_path_factory, audio_corpus, audio_url_template):
    root = tmp_path_factory.mktemp("reference")
    run_pipeline(*pipeline_command(audio_corpus, root / "shards", root / "cache", audio_url_template))
    return root


def test_every_segment_becomes_its_expected_chunks(reference, audio_corpus):
    examples = all_examples(reference / "shards")
    per_ytid = {}
    for example in examples.values():
        per_ytid[example.ytid] = per_ytid.get(example.ytid, 0) + 1
    expected = {s.ytid: s.chunks for s in audio_corpus.segments.values() if s.chunks}
    assert per_ytid == expected
    manifest = shards.read_manifest(str(reference / "shards"))
    split = manifest["splits"]["train"]
    assert split["examples"] == audio_corpus.expected_examples == len(examples)
    assert [s["file"] for s in split["shards"]] == [p.name for p in shard_files(reference / "shards")]
    assert len(split["shards"]) == NUM_SHARDS
    for entry in split["shards"]:
        assert entry["examples"] == len(shards.read_examples(str(reference / "shards" / entry["file"]), SHAPE))


def test_examples_have_the_contract_shape_ids_order_and_membership(reference, audio_corpus):
    for path in shard_files(reference / "shards"):
        _, index, count = shards.parse_shard_file_name(path.name)
        examples = shards.read_examples(str(path), SHAPE)
        assert [e.clip_id for e in examples] == sorted(e.clip_id for e in examples)
        for example in examples:
            assert example.logmel.shape == SHAPE and example.logmel.dtype == np.float16
            assert np.all(np.isfinite(example.logmel))
            assert example.clip_id == f"{example.ytid}_{int(example.start_s * 1000)}_{example.chunk}"
            assert shards.shard_index(shards.segment_key(example.ytid, example.start_s), count) == index
            segment = audio_corpus.segments[example.ytid]
            assert (example.start_s, example.end_s) == (segment.start_s, segment.end_s)


def test_labels_are_indices_of_the_vocabulary(reference, audio_corpus):
    vocabulary = load_vocabulary()
    manifest = shards.read_manifest(str(reference / "shards"))
    assert manifest["labels"] == vocabulary.to_manifest() and len(manifest["labels"]) == 527
    for example in all_examples(reference / "shards").values():
        mids = audio_corpus.segments[example.ytid].labels
        assert example.labels == tuple(sorted(vocabulary.index_of[mid] for mid in mids))
        assert example.labels


def ffmpeg_decode(path, seconds):
    raw = subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-i", path, "-t", str(seconds), "-f", "f32le",
         "-ac", "2", "-ar", "48000", "pipe:"], capture_output=True, check=True).stdout
    return np.frombuffer(raw, "<f4").reshape(-1, 2)


@pytest.mark.parametrize("kind", ["wav_s16_mono_16k", "flac_s24_stereo_96k", "six_channels", "long_35s"])
def test_values_match_librosa_on_the_source_audio(reference, audio_corpus, kind):
    segment = audio_corpus.by_kind(kind)
    audio = ffmpeg_decode(segment.path, segment.end_s)
    examples = all_examples(reference / "shards")
    for chunk in range(segment.chunks):
        clip = audio[chunk * 480_000 : (chunk + 1) * 480_000]
        clip = np.tile(clip, (-(-480_000 // len(clip)), 1))[:480_000]  # the looped remainder
        stored = examples[f"{segment.ytid}_0_{chunk}"].logmel.astype(np.float32)
        for channel in range(2):
            reference_db = librosa.power_to_db(
                librosa.feature.melspectrogram(y=clip[:, channel], sr=48_000, n_fft=4096, hop_length=2048,
                                               n_mels=256, fmin=60.0, fmax=12_000.0),
                amin=1e-10, top_db=None)
            # float16 storage rounds to ~0.03 dB at these levels; the audio went through
            # yt-dlp's section download, so allow a little more at the clip's edges.
            difference = np.abs(stored[..., channel] - reference_db)
            assert np.median(difference) < 0.05
            assert np.percentile(difference, 99) < 0.5
        # The loudest band is one of the file's tones (the down-mix of six channels mixes several).
        tones = [segment.tones_hz[chunk]] if kind == "long_35s" else segment.tones_hz
        band = int(np.argmax(stored[:, 10:-10, 0].mean(axis=1)))
        mel_centres = librosa.mel_frequencies(n_mels=258, fmin=60.0, fmax=12_000.0)[1:-1]
        assert min(abs(mel_centres[band] - tone) / tone for tone in tones) < 0.05


def test_failures_are_recorded_with_reason_and_permanence(reference, audio_corpus):
    lines = (reference / "shards" / "failures-train.jsonl").read_text().splitlines()
    recorded = {json.loads(line)["ytid"]: json.loads(line) for line in lines}
    expected = {s.ytid: s.failure for s in audio_corpus.segments.values() if s.failure}
    assert {ytid: (f["reason"], f["permanent"]) for ytid, f in recorded.items()} == expected
    for failure in recorded.values():
        assert failure["message"] and failure["attempts"] >= 1 and failure["time"]
    counts = shards.read_manifest(str(reference / "shards"))["splits"]["train"]["failures"]
    reasons = [reason for reason, _ in expected.values()]
    assert counts == {reason: reasons.count(reason) for reason in reasons}


def test_manifest_statistics_equal_the_examples(reference):
    values = np.stack([e.logmel.astype(np.float64) for e in all_examples(reference / "shards").values()])
    per_band = values.transpose(1, 0, 2, 3).reshape(SHAPE[0], -1)
    split = shards.read_manifest(str(reference / "shards"))["splits"]["train"]
    np.testing.assert_allclose(split["band_mean"], per_band.mean(axis=1), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(split["band_std"], per_band.std(axis=1), rtol=1e-7, atol=1e-7)


def test_rerun_fetches_nothing_and_writes_identical_bytes(reference, tmp_path, audio_corpus, audio_server):
    audio_server.reset()
    run_pipeline(*pipeline_command(audio_corpus, tmp_path / "again", reference / "cache", audio_server.url_template,
                                   *IN_ONE_PROCESS))
    assert audio_server.request_count == 0  # cached audio and cached permanent failures
    for ours, theirs in zip(shard_files(tmp_path / "again"), shard_files(reference / "shards"), strict=True):
        assert ours.name == theirs.name and ours.read_bytes() == theirs.read_bytes()
    again = shards.read_manifest(str(tmp_path / "again"))["splits"]["train"]
    first = shards.read_manifest(str(reference / "shards"))["splits"]["train"]
    assert again["band_mean"] == first["band_mean"] and again["band_std"] == first["band_std"]


def test_killed_run_resumes_to_identical_bytes_without_refetching(reference, tmp_path, audio_corpus, make_audio_server):
    server = make_audio_server()
    out, cache = tmp_path / "shards", tmp_path / "cache"
    command = pipeline_command(audio_corpus, out, cache, server.url_template, "--sleep-interval", "1", *IN_ONE_PROCESS)
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    while len([p for p in cache.glob("*") if not p.name.startswith(".")]) < 3:
        assert process.poll() is None, "the job ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.1)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    cached_before = {p.name[:11] for p in cache.iterdir() if p.is_file() and ".tmp" not in p.name}
    assert not (out / "failures-train.jsonl").exists()  # it really was stopped halfway
    server.reset()
    run_pipeline(*pipeline_command(audio_corpus, out, cache, server.url_template, *IN_ONE_PROCESS))
    refetched = {request.ytid for request in server.requests}
    assert cached_before and refetched and not cached_before & refetched
    for ours, theirs in zip(shard_files(out), shard_files(reference / "shards"), strict=True):
        assert ours.name == theirs.name and ours.read_bytes() == theirs.read_bytes()
    resumed = shards.read_manifest(str(out))["splits"]["train"]
    first = shards.read_manifest(str(reference / "shards"))["splits"]["train"]
    assert resumed["band_mean"] == first["band_mean"] and resumed["band_std"] == first["band_std"]
    assert not [p for p in out.iterdir() if ".tmp" in p.name]


def test_directory_built_with_other_settings_is_refused(reference, tmp_path, audio_corpus, audio_url_template):
    other_count = run_pipeline(
        *pipeline_command(audio_corpus, reference / "shards", reference / "cache", audio_url_template, num_shards=5),
        check=False)
    assert other_count.returncode == 2
    assert "train shards of another count" in other_count.stderr
    manifest = shards.read_manifest(str(reference / "shards"))
    changed = tmp_path / "changed"
    changed.mkdir()
    manifest["spectrogram"]["n_mels"] = 128
    (changed / "manifest.json").write_text(json.dumps(manifest))
    refused = run_pipeline(*pipeline_command(audio_corpus, changed, reference / "cache", audio_url_template), check=False)
    assert refused.returncode == 2
    assert "built with other settings" in refused.stderr and "n_mels: 128 != 256" in refused.stderr
    assert not shard_files(changed)


def test_malformed_row_names_its_line(tmp_path, audio_corpus, audio_url_template):
    bad = tmp_path / "bad.csv"
    bad.write_text(audio_corpus.csv_text + "abcdefghijk, 0.000, ten, \"/m/09x0r\"\n")
    lines = len(audio_corpus.csv_text.splitlines()) + 1
    result = run_pipeline(sys.executable, "-m", "pipeline", "--segments", str(bad), "--split", "train",
                          "--out", str(tmp_path / "out"), "--cache", str(tmp_path / "cache"), check=False)
    assert result.returncode == 2
    assert f"{bad}, line {lines}: end time 'ten' is not a number" in result.stderr


def test_local_copy_is_sharded_without_downloading(tmp_path, audio_corpus, reference):
    run_pipeline(sys.executable, "-m", "pipeline", "--segments", audio_corpus.csv_path, "--audio-dir",
                 audio_corpus.directory, "--split", "eval", "--out", str(tmp_path / "local"),
                 "--cache", str(tmp_path / "cache"), *IN_ONE_PROCESS)
    manifest = shards.read_manifest(str(tmp_path / "local"))
    assert manifest["splits"]["eval"]["examples"] == audio_corpus.expected_examples
    assert manifest["splits"]["eval"]["failures"]["missing_local"] == 1
    assert not list((tmp_path / "cache").glob("**/*.*"))  # nothing was downloaded


def test_directory_without_csv_gives_unlabelled_chunks(tmp_path, audio_corpus):
    audio = tmp_path / "audio"
    audio.mkdir()
    long_file = Path(audio_corpus.by_kind("long_35s").path)
    (audio / "recording.flac").write_bytes(long_file.read_bytes())
    run_pipeline(sys.executable, "-m", "pipeline", "--audio-dir", str(audio), "--split", "train",
                 "--out", str(tmp_path / "out"), "--cache", str(tmp_path / "cache"), *IN_ONE_PROCESS)
    examples = all_examples(tmp_path / "out")
    assert sorted(examples) == [f"recording.flac_0_{chunk}" for chunk in range(4)]
    assert all(e.labels == () and e.ytid == "recording.flac" for e in examples.values())


def test_proxy_credentials_appear_nowhere(tmp_path, audio_corpus, audio_url_template):
    secret = "hunter2secret"
    result = run_pipeline(*pipeline_command(
        audio_corpus, tmp_path / "out", tmp_path / "cache", audio_url_template,
        "--proxy", f"http://user:{secret}@127.0.0.1:9", "--retries", "1", "--limit", "2", *IN_ONE_PROCESS,
        num_shards=1))
    failures = (tmp_path / "out" / "failures-train.jsonl").read_text()
    manifest = (tmp_path / "out" / "manifest.json").read_text()
    assert len(failures.splitlines()) == 2  # the proxy refuses: nothing is fetched
    assert all(json.loads(line)["permanent"] is False for line in failures.splitlines())
    for text in (failures, manifest, result.stderr, result.stdout):
        assert secret not in text
    assert "http://***@127.0.0.1:9" in manifest

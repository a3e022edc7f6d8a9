"""The linear probe: shards (multi-label, mAP/AUC) and labelled audio (accuracy), with baselines."""
import argparse
import json

import numpy as np
import pytest

from tests.signals import write_silence, write_tone
from tests.training.conftest import AUDIO_RATE
from training.probe import logmel_statistics, read_labelled_audio, run


def probe(**kwargs):
    defaults = dict(shards=None, eval_shards=None, audio=None, baselines=True, out=None, seed=0, checkpoint_steps=[])
    return run(argparse.Namespace(**{**defaults, **kwargs}))


def test_shards_probe_reports_map_and_auc_for_every_feature_set(run_dir, shard_dir, tmp_path, capsys):
    report = probe(run=str(run_dir), shards=str(shard_dir), out=str(tmp_path / "report.json"))
    assert set(report["results"]) == {"lejepa", "random_init", "logmel_stats"}
    assert report["train_examples"] == report["eval_examples"] == 36
    for values in report["results"].values():
        assert 0.0 <= values["mAP"] <= 1.0 and 0.0 <= values["AUC"] <= 1.0
        assert values["classes_evaluated"] == 3
    # Tones, noise and chirps are told apart by their log-mel statistics alone.
    assert report["results"]["logmel_stats"]["mAP"] > 0.95
    assert json.loads((tmp_path / "report.json").read_text())["results"] == report["results"]
    table = capsys.readouterr().out
    assert "logmel_stats" in table and "mAP" in table
    again = probe(run=str(run_dir), shards=str(shard_dir))
    assert again["results"] == report["results"]  # seeded


def test_audio_folder_per_class_gives_cross_validated_accuracy(run_dir, labelled_audio):
    report = probe(run=str(run_dir), audio=str(labelled_audio))
    assert report["files"] == 12 and report["classes"] == 2
    assert report["validation"] == "stratified 5-fold"
    assert report["results"]["logmel_stats"]["accuracy"] == 1.0
    for values in report["results"].values():
        assert len(values["accuracy_per_fold"]) == 5
        assert 0.0 <= values["accuracy"] <= 1.0


def test_audio_csv_with_folds_is_validated_leave_one_fold_out(run_dir, labelled_audio):
    report = probe(run=str(run_dir), audio=str(labelled_audio / "meta.csv"), baselines=False)
    assert set(report["results"]) == {"lejepa"}
    assert report["validation"] == "leave-one-fold-out"
    assert len(report["results"]["lejepa"]["accuracy_per_fold"]) == 3


def test_bad_labelled_audio_is_refused_with_a_reason(tmp_path):
    (tmp_path / "only").mkdir()
    write_tone(tmp_path / "only" / "a.wav", 3.0, frequency=440, rate=AUDIO_RATE)
    with pytest.raises(ValueError, match="at least two classes"):
        read_labelled_audio(str(tmp_path))
    (tmp_path / "bad.csv").write_text("file,class\na.wav,x\n")
    with pytest.raises(ValueError, match="needs columns path,label"):
        read_labelled_audio(str(tmp_path / "bad.csv"))


def test_logmel_statistics_are_band_means_and_deviations():
    logmel = np.random.default_rng(0).normal(size=(3, 256, 235, 2)).astype(np.float16)
    features = logmel_statistics(logmel)
    assert features.shape == (3, 512)
    np.testing.assert_allclose(features[1, :256], logmel[1].astype(np.float32).reshape(256, -1).mean(axis=1), rtol=1e-5)


def test_silent_and_corrupt_files_are_skipped_and_named_not_fatal(run_dir, labelled_audio, tmp_path):
    rows = (labelled_audio / "meta.csv").read_text().splitlines()
    write_silence(tmp_path / "silent.wav", 3, rate=AUDIO_RATE)
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF not really a wave file")
    table = [rows[0]] + [f"{labelled_audio}/{row}" for row in rows[1:]]
    table += [f"{tmp_path}/silent.wav,low,0", f"{tmp_path}/corrupt.wav,high,1"]
    (tmp_path / "with_bad.csv").write_text("\n".join(table) + "\n")

    report = probe(run=str(run_dir), audio=str(tmp_path / "with_bad.csv"), baselines=False)
    assert report["files"] == 12  # the 12 good files, all used
    assert sorted(item["path"] for item in report["skipped"]) == [f"{tmp_path}/corrupt.wav", f"{tmp_path}/silent.wav"]
    assert any("silent" in item["reason"] for item in report["skipped"])
    assert len(report["results"]["lejepa"]["accuracy_per_fold"]) == 3

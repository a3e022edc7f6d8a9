"""The whole job (python -m pipeline, real Beam, ffmpeg) over an --audio-dir that an attacker
filled: a playlist disguised as audio, file names that read as URLs, a source over the cap."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.signals import write_tone

REPOSITORY = Path(__file__).resolve().parents[2]


def test_a_hostile_audio_dir_given_as_dot(tmp_path):
    audio = tmp_path / "audio"
    (audio / "private").mkdir(parents=True)
    write_tone(audio / "private" / "secret.flac", 12.0, frequency=440)  # what the playlist points at
    (audio / "innocent.wav").write_text(
        "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10.000000,\nprivate/secret.flac\n#EXT-X-ENDLIST\n")
    write_tone(audio / "good.wav", 10.0, frequency=1000)
    write_tone(audio / "concat:good.wav", 10.0, frequency=2000)  # a file, not "concat the file good.wav"
    write_tone(audio / "long.flac", 30.0, frequency=500)
    out = tmp_path / "shards"
    result = subprocess.run(
        [sys.executable, "-m", "pipeline", "--audio-dir", ".", "--split", "train", "--out", str(out),
         "--cache", str(tmp_path / "cache"), "--workers", "1", "--num-shards", "1", "--max-seconds", "20"],
        cwd=audio, capture_output=True, text=True, timeout=600,
        env={"PYTHONPATH": str(REPOSITORY), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr[-4000:]

    failures = {json.loads(line)["ytid"]: json.loads(line) for line in (out / "failures-train.jsonl").read_text().splitlines()}
    assert set(failures) == {"innocent.wav", "long.flac"}
    assert failures["innocent.wav"]["reason"] == "decode_error"
    assert "not on whitelist" in failures["innocent.wav"]["message"]
    assert failures["long.flac"]["reason"] == "too_long"
    assert "longer than 20 s" in failures["long.flac"]["message"]
    manifest = json.loads((out / "manifest.json").read_text())
    split = manifest["splits"]["train"]
    # good.wav, concat:good.wav and private/secret.flac (a file of the directory in its own right).
    assert split["examples"] == 1 + 1 + 2 and split["failures"] == {"decode_error": 1, "too_long": 1}

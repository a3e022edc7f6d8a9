"""Fixtures of the fetch tests (the corpus and the mirror servers are tests/conftest.py's):
``ogg_bytes``, the bytes of the corpus's Ogg Vorbis file, and ``ffmpeg_command_lines``, a log of
every ffmpeg command line started during the test."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest


@pytest.fixture
def ogg_bytes(audio_corpus) -> bytes:
    return Path(audio_corpus.by_kind("ogg_vorbis").path).read_bytes()


@pytest.fixture
def ffmpeg_command_lines(tmp_path, monkeypatch) -> Path:
    """Every ffmpeg started from here on (by us or by yt-dlp, found on PATH) appends its command
    line to the returned file, then runs the real ffmpeg."""
    real = shutil.which("ffmpeg")
    wrapper = tmp_path / "bin"
    wrapper.mkdir()
    log = tmp_path / "ffmpeg-command-lines.txt"
    log.touch()
    (wrapper / "ffmpeg").write_text(f"#!/bin/sh\nprintf '%s\\n' \"$*\" >> '{log}'\nexec '{real}' \"$@\"\n")
    (wrapper / "ffmpeg").chmod(0o755)
    monkeypatch.setenv("PATH", f"{wrapper}{os.pathsep}{os.environ['PATH']}")
    return log

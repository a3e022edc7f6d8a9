"""Helpers of the fetch tests: configs with fast retries, decoding what was cached, a server that
stalls mid-transfer, and the process table."""
from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from pathlib import Path

import ffmpeg
import numpy as np

from pipeline.fetch import FetchConfig

REPOSITORY = Path(__file__).resolve().parents[3]


def config_for(server, **overrides) -> FetchConfig:
    """Fast retries for tests; everything else as users get it."""
    values = {"url_template": server.url_template, "backoff_s": 0.01, "socket_timeout": 10.0}
    values.update(overrides)
    return FetchConfig(**values)


def single_attempt_config(url_template: str, **overrides) -> FetchConfig:
    """One attempt (no retry), fast back-off, for a server given by its URL template."""
    values = {"url_template": url_template, "backoff_s": 0.01, "socket_timeout": 10.0, "retries": 1}
    values.update(overrides)
    return FetchConfig(**values)


def decode(path: str) -> tuple[np.ndarray, int]:
    """(samples [n, channels] float32, sample rate) of the first audio stream, natively."""
    stream = next(s for s in ffmpeg.probe(path)["streams"] if s["codec_type"] == "audio")
    rate, channels = int(stream["sample_rate"]), int(stream["channels"])
    raw, _ = (ffmpeg.input(path)["a:0"].output("pipe:", format="f32le", acodec="pcm_f32le")
              .global_args("-loglevel", "error").run(capture_stdout=True, capture_stderr=True))
    return np.frombuffer(raw, np.float32).reshape(-1, channels), rate


def dominant_hz(signal: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(signal * np.hanning(len(signal))))
    return float(np.argmax(spectrum)) * rate / len(signal)


def leftovers(cache_dir) -> list[str]:
    return [name for name in os.listdir(cache_dir) if name.startswith(".")]


class StallingServer:
    """Answers every request with ``head`` bytes of ``body`` (after the headers when
    ``headers``), then sends nothing more until ``stall_s`` have passed, and closes."""

    def __init__(self, body: bytes, *, head: int = 2048, headers: bool = True, stall_s: float = 30.0) -> None:
        self.body, self.head, self.headers, self.stall_s = body, head, headers, stall_s
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.requests = 0
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url_template(self) -> str:
        return f"http://127.0.0.1:{self.socket.getsockname()[1]}/{{ytid}}"

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.socket.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(connection,), daemon=True).start()

    def _answer(self, connection: socket.socket) -> None:
        with connection:
            connection.recv(65536)
            self.requests += 1
            if self.headers:
                connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: audio/ogg\r\nContent-Length: %d\r\n\r\n"
                                   % len(self.body) + self.body[:self.head])
            time.sleep(self.stall_s)

    def close(self) -> None:
        self.socket.close()


def ffmpeg_processes_with(text: str) -> list[str]:
    lines = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout.splitlines()
    return [line for line in lines if text in line and "ffmpeg" in line]


COOKIE = "c00kie-0n-the-command-line"

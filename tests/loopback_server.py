"""The audio mirror as the tests use it: pipeline.audio_server.AudioServer on 127.0.0.1 plus the
knobs only tests need, kept out of the served tool: forced ``429`` answers and a request log.

- ``fail_first=N`` answers ``429 Too Many Requests`` (``Retry-After: 1``) to the first ``N``
  requests, to test clients' back-off against a rate-limiting server;
- every answered request is logged (:attr:`requests`, :attr:`request_count`), so tests can assert
  that a cached segment is never fetched again; :meth:`reset` forgets them and re-arms
  ``fail_first``.
"""
from __future__ import annotations

import threading
from typing import Any

from pipeline.audio_server import AudioServer, Request


class LoopbackServer(AudioServer):
    def __init__(self, directory: str, *, fail_first: int = 0, **kwargs: Any) -> None:
        if fail_first < 0:
            raise ValueError(f"fail_first must be >= 0, got {fail_first}")
        self.fail_first = fail_first
        self._log_lock = threading.Lock()
        self._requests: list[Request] = []
        self._rate_limited = 0
        super().__init__(directory, **kwargs)

    def intercept(self, method: str, ytid: str, range_header: str | None) -> tuple[int, str, dict[str, str]] | None:
        with self._log_lock:
            if self._rate_limited < self.fail_first:
                self._rate_limited += 1
                return 429, "Too Many Requests", {"Retry-After": "1"}
        return None

    def record(self, request: Request) -> None:
        super().record(request)
        with self._log_lock:
            self._requests.append(request)

    @property
    def requests(self) -> list[Request]:
        """A copy of every request answered so far, in order."""
        with self._log_lock:
            return list(self._requests)

    @property
    def request_count(self) -> int:
        with self._log_lock:
            return len(self._requests)

    def requests_for(self, ytid: str) -> list[Request]:
        return [request for request in self.requests if request.ytid == ytid]

    def reset(self, *, fail_first: int | None = None) -> None:
        """Forgets the request log and re-arms ``fail_first`` (optionally changing it)."""
        with self._log_lock:
            self._requests.clear()
            self._rate_limited = 0
            if fail_first is not None:
                self.fail_first = fail_first

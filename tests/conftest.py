"""Fixtures shared by every test, made once per test process: the audio corpus and local "mirror" servers.

- ``audio_corpus``: :class:`tests.audio_corpus.AudioCorpus` (served directory, the CSV text and
  file, and per YTID the expected outcome: chunks, or failure reason and permanence).
- ``audio_server``: a :class:`tests.loopback_server.LoopbackServer` (the mirror
  :class:`pipeline.audio_server.AudioServer` with a request log and forced 429s) over the corpus
  on 127.0.0.1, shared by all tests (call ``.reset()`` before counting its requests).
- ``audio_url_template``: ``http://127.0.0.1:PORT/{ytid}`` of that server.
- ``rate_limited_server``: a fresh server per test that answers 429 to the first
  ``RATE_LIMITED_REQUESTS`` requests.
- ``make_audio_server``: a factory, ``make_audio_server(fail_first=0, ranges=True)``, for servers
  of one test (stopped at its end).

Nothing here touches anything but 127.0.0.1; proxy variables of the environment are removed for
the test run, so that yt-dlp, ffmpeg and urllib talk to the local servers directly.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.audio_corpus import RATE_LIMITED_REQUESTS, AudioCorpus, build_corpus
from tests.loopback_server import LoopbackServer


PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "ftp_proxy")

#: The longest test files (most start several TensorFlow, Beam or Dask processes), longest first.
#: pytest-xdist (``make test``, with ``--no-loadscope-reorder``: by default it orders files by their
#: number of tests) hands whole files to its workers in collection order, so these start first and
#: the many short files fill the workers' gaps at the end, instead of one long file running alone
#: while the other workers idle.
LONGEST_FIRST = (
    "tests/training/test_multi_worker.py", "tests/training/test_train.py", "tests/pipeline/test_job.py",
    "tests/training/test_replica_gradients.py", "tests/pipeline/test_dask.py", "tests/training/test_resume.py",
    "tests/corpora/test_corpora.py", "tests/training/test_learning.py", "tests/training/test_probe.py",
    "tests/training/test_viz.py", "tests/pipeline/test_job_decode_limits.py", "tests/pipeline/fetch/test_download.py",
    "tests/training/test_saved_model.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {path: index for index, path in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))  # stable: the rest keep their order


@pytest.fixture(scope="session", autouse=True)
def _no_proxy_from_environment() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        for name in PROXY_VARIABLES:
            patch.delenv(name, raising=False)
            patch.delenv(name.upper(), raising=False)
        yield


@pytest.fixture(scope="session")
def audio_corpus(tmp_path_factory: pytest.TempPathFactory) -> AudioCorpus:
    root = tmp_path_factory.mktemp("audio_corpus")
    return build_corpus(str(root / "served"), csv_dir=str(root))


@pytest.fixture(scope="session")
def audio_server(audio_corpus: AudioCorpus) -> Iterator[LoopbackServer]:
    with LoopbackServer(audio_corpus.directory) as server:
        yield server


@pytest.fixture(scope="session")
def audio_url_template(audio_server: LoopbackServer) -> str:
    return audio_server.url_template


@pytest.fixture
def make_audio_server(audio_corpus: AudioCorpus) -> Iterator[Callable[..., LoopbackServer]]:
    servers: list[LoopbackServer] = []

    def make(*, fail_first: int = 0, ranges: bool = True,
             directory: str | None = None) -> LoopbackServer:
        server = LoopbackServer(directory or audio_corpus.directory, fail_first=fail_first,
                                ranges=ranges).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def rate_limited_server(make_audio_server: Callable[..., LoopbackServer]) -> LoopbackServer:
    return make_audio_server(fail_first=RATE_LIMITED_REQUESTS)

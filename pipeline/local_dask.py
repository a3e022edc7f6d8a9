"""A Dask cluster on this machine: ``dask scheduler`` and ``dask worker`` processes on 127.0.0.1.

For trying ``--runner DaskRunner`` without a cluster, and for the runner's tests and benchmark.
The processes are the ones a deployment runs (``python -m dask``, each worker under its nanny, one
thread each), not ``distributed.LocalCluster``'s in-process variants, so a job meets what it meets
on real machines: separate interpreters, pickled functions, a worker that can be killed and
restarted. Each process has its own process group (a worker's nanny and its worker are stopped
together) and logs into ``root/<name>.log``.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 15.0


class LocalDaskCluster:
    """``with LocalDaskCluster(root, workers=2) as cluster: ... cluster.address ...``"""

    def __init__(self, root: Path, workers: int, start_timeout_s: float = START_TIMEOUT_S) -> None:
        self.root, self.workers, self.start_timeout_s = Path(root), workers, start_timeout_s
        self.processes: list[subprocess.Popen] = []
        self.address = ""
        self.client: Any = None  # a distributed.Client, kept for the caller (worker pids, waits)

    def start(self) -> "LocalDaskCluster":
        """Starts the scheduler and the workers; returns once all workers have registered. On an
        error some processes may be running: :meth:`stop` ends them."""
        import distributed  # the pipeline extra's

        self.root.mkdir(parents=True, exist_ok=True)
        scheduler_file = self.root / "scheduler.json"
        self._start("scheduler", "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                    "--scheduler-file", str(scheduler_file))
        deadline = time.monotonic() + self.start_timeout_s
        while not scheduler_file.exists():
            if time.monotonic() > deadline or self.processes[0].poll() is not None:
                raise RuntimeError(f"the Dask scheduler did not start: see {self.root / 'scheduler.log'}")
            time.sleep(0.1)
        time.sleep(0.2)  # the file is written whole, but give it its last bytes
        self.address = json.loads(scheduler_file.read_text())["address"]
        for number in range(self.workers):
            self._start(f"worker{number}", "worker", self.address, "--host", "127.0.0.1", "--nthreads", "1",
                        "--no-dashboard", "--name", f"worker{number}",
                        "--local-directory", str(self.root / f"worker{number}"))
        self.client = distributed.Client(self.address, timeout=self.start_timeout_s)
        self.client.wait_for_workers(self.workers, timeout=self.start_timeout_s)
        return self

    def _start(self, name: str, *arguments: str) -> None:
        with open(self.root / f"{name}.log", "w") as log:
            self.processes.append(subprocess.Popen([sys.executable, "-m", "dask", *arguments], stdout=log,
                                                   stderr=subprocess.STDOUT, cwd=self.root, start_new_session=True))

    def worker_pids(self) -> set[int]:
        """Process ids of the worker processes now registered (not their nannies)."""
        return set(self.client.run(os.getpid).values())

    def stop(self) -> None:
        """Closes the client and ends every process group started, SIGKILL after STOP_TIMEOUT_S."""
        try:
            if self.client is not None:
                self.client.close()
        finally:
            for process in reversed(self.processes):
                if process.poll() is None:
                    try:
                        os.killpg(process.pid, signal.SIGTERM)
                    except ProcessLookupError:
                        pass
            for process in self.processes:
                try:
                    process.wait(timeout=STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()

    def __enter__(self) -> "LocalDaskCluster":
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *_: Any) -> None:
        self.stop()

"""Gradients under N replicas equal single-device gradients on the same global batch: two logical
CPU devices in one process (MirroredStrategy) and two worker processes on 127.0.0.1
(MultiWorkerMirroredStrategy), each running tests/training/replica_gradients.py."""
import json
import os
import subprocess
import sys

import pytest

from tests.training.conftest import REPO
from tests.training.runs import free_ports, output, tf_config


def check_replica_gradients(values: dict, workers: int = 1) -> None:
    """One JSON line of replica_gradients.py: two replicas on halves of a global batch against one device."""
    assert values["local_replicas"] * workers == 2
    for term in ("loss", "invariance", "sigreg"):
        assert values["replicated"][term] == pytest.approx(values["single"][term], rel=1e-5)
    # 1e-3, not exact: the projector's synchronised BatchNorm takes the variance as E[x²] − E[x]² of
    # all-reduced sums, one device as E[(x − mean)²]; float32 rounds the two apart by ~1e-4.
    assert values["max_relative_difference"] < 1e-3
    assert values["replicas_disagree_by"] == 0.0
    # Without the all-reduce before the square, SIGReg and its gradients differ: the check has teeth.
    assert values["control_sigreg"] != pytest.approx(values["single"]["sigreg"], rel=1e-3)
    assert values["control_max_relative_difference"] > 1e-2


def test_gradients_with_two_replicas_equal_single_device_gradients():
    result = subprocess.run([sys.executable, "tests/training/replica_gradients.py"], cwd=REPO, capture_output=True,
                            text=True, timeout=240, env={**os.environ, "PYTHONPATH": str(REPO),
                                                         "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert result.returncode == 0, output(result)[-4000:]
    values = json.loads(result.stdout.strip().splitlines()[-1])
    assert values["strategy"] == "MirroredStrategy"
    check_replica_gradients(values)


def test_gradients_with_two_worker_processes_equal_single_device_gradients():
    """The same global batch split over two processes (MultiWorkerMirroredStrategy from TF_CONFIG,
    one CPU replica each, collectives over gRPC on 127.0.0.1) gives the single-device loss terms and
    gradients, and the same gradients on both workers."""
    workers = [f"127.0.0.1:{port}" for port in free_ports(2)]
    processes = [subprocess.Popen(
        [sys.executable, "tests/training/replica_gradients.py"], cwd=REPO, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2",
                                                "TF_CONFIG": tf_config(workers, index)}) for index in range(2)]
    try:
        results = [process.communicate(timeout=240) for process in processes]
    finally:
        for process in processes:
            process.kill()
    for process, (stdout, stderr) in zip(processes, results):
        assert process.returncode == 0, (stdout + stderr)[-4000:]
    values = [json.loads(stdout.strip().splitlines()[-1]) for stdout, _ in results]
    for worker in values:
        assert worker["strategy"] == "CollectiveAllReduceStrategy"  # MultiWorkerMirroredStrategy's class
        check_replica_gradients(worker, workers=2)
    assert values[0]["replicated"] == values[1]["replicated"]
    assert values[0]["gradient_digest"] == values[1]["gradient_digest"]  # bit for bit the same update everywhere

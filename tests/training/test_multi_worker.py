"""Two workers from TF_CONFIG on 127.0.0.1: MultiWorkerMirroredStrategy trains, a SIGKILLed worker
stops the other with a clear message and exit code 4, and the same command resumes."""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import tensorflow as tf

import pytest

from tests.training.conftest import REPO
from tests.training.runs import FAST, checkpoints, free_ports, metrics, tf_config, wait_for_step


class TwoWorkerRun:
    """Two workers (TF_CONFIG, 127.0.0.1) train; worker 1 is SIGKILLed after step 3; then both are
    started again with the same command and finish."""

    def __init__(self, shard_dir, out):
        self.out = out
        workers = [f"127.0.0.1:{port}" for port in free_ports(2)]
        self.command = ["--shards", str(shard_dir), "--out", str(out), "--batch", "8", "--steps", "10",
                        "--checkpoint-every", "2", *FAST]
        self.environments = [{"TF_CONFIG": tf_config(workers, index)} for index in range(2)]
        first = self.start("first")
        try:
            wait_for_step(out, 3, first[0], timeout=240)
            first[1].send_signal(signal.SIGKILL)
            killed = time.monotonic()
            first[0].wait(timeout=120)
            self.seconds_to_error = time.monotonic() - killed
            first[1].wait(timeout=10)
        finally:
            for process in first:
                process.kill()
        self.first_codes = [process.returncode for process in first]
        self.first_logs = [self.log("first", index) for index in range(2)]
        self.first_rows = metrics(out)
        self.checkpoint_after_loss = checkpoints(out)[-1]
        second = self.start("second")
        try:
            self.second_codes = [process.wait(timeout=300) for process in second]
        finally:
            for process in second:
                process.kill()
        self.second_logs = [self.log("second", index) for index in range(2)]

    def start(self, name: str) -> list[subprocess.Popen]:
        processes = []
        for index, environment in enumerate(self.environments):
            with open(self.out.parent / f"{name}-{index}.log", "w") as log:
                processes.append(subprocess.Popen(
                    [sys.executable, "-m", "training", "train", *self.command], cwd=REPO, stdout=log,
                    stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2",
                                                   **environment}))
        return processes

    def log(self, name: str, index: int) -> str:
        return (self.out.parent / f"{name}-{index}.log").read_text()


@pytest.fixture(scope="module")
def two_worker_run(shard_dir, tmp_path_factory):
    return TwoWorkerRun(shard_dir, tmp_path_factory.mktemp("multi-worker") / "run")


def test_tf_config_with_two_workers_trains_with_multi_worker_mirrored_strategy(two_worker_run):
    run = two_worker_run
    assert run.second_codes == [0, 0], run.second_logs[0][-3000:] + run.second_logs[1][-3000:]
    chief, worker = run.second_logs
    assert "CollectiveAllReduceStrategy with 2 replica(s) (4 clips each)" in chief and ", chief" in chief
    assert ", worker" in worker and "step 10/10" in chief and "step 10/10" not in worker  # only the chief reports
    assert checkpoints(run.out)[-1] == 10
    assert not any(name.startswith(".worker") for name in os.listdir(run.out / "checkpoints"))


def test_a_killed_worker_stops_the_others_with_a_clear_message_and_exit_code_4(two_worker_run):
    run = two_worker_run
    chief = run.first_logs[0]
    assert run.first_codes == [4, -signal.SIGKILL], chief[-4000:]
    # TensorFlow notices at once when the worker dies inside a collective (its connection resets),
    # else within the coordination service's heartbeat timeout (10 s); then MyGO exits at once.
    assert run.seconds_to_error < 30, run.seconds_to_error
    assert "ERROR a worker was lost: worker 1 (/job:worker/task:1) stopped responding during step" in chief
    assert ("Restart every worker with the same command and TF_CONFIG; they resume from checkpoint "
            f"ckpt-{run.checkpoint_after_loss} (the steps after it are lost)") in chief
    assert "Traceback" not in chief
    print(f"seconds from SIGKILL to the chief's exit: {run.seconds_to_error:.1f}")


def test_after_a_lost_worker_the_same_command_resumes_from_the_last_checkpoint(two_worker_run):
    run = two_worker_run
    step = run.checkpoint_after_loss
    assert 2 <= step < 10 and run.first_rows[-1]["step"] >= 3
    for log in run.second_logs:
        assert f"resumed from {run.out}/checkpoints/ckpt-{step} at step {step}" in log, log[-3000:]
        assert f"training from step {step} to 10" in log
    rows = metrics(run.out)
    assert [row["step"] for row in rows] == list(range(1, 11))  # continues at the next step, each step once
    assert rows[:step] == run.first_rows[:step]
    assert all(np.isfinite(row["loss"]) for row in rows)


def test_worker_lost_message_names_the_lost_task_and_the_checkpoint(tmp_path):
    from training.train import EXIT_WORKER_LOST, read_peer_failure, worker_lost_message

    checkpoint = tf.train.Checkpoint(step=tf.Variable(6, dtype=tf.int64))
    checkpoint.save(str(tmp_path / "ckpt"))  # ckpt-1
    leader_gone = tf.errors.UnavailableError(None, None, (
        "Graph execution error:\n\nDetected at node CollectiveReduceV2 defined at (most recent call last):\n"
        "{{function_node __wrapped__CollectiveReduceV2_device_/job:worker/replica:0/task:1/device:CPU:0}} "
        "Collective ops is aborted by: Failed to send RPC to coordination service. Either the leader task was "
        "preempted/died/restarted unexpectedly or this task is experiencing network issues.\nAdditional GRPC error "
        "information from remote target /job:worker/replica:0/task:0 while calling "
        "/tensorflow.CoordinationService/Heartbeat:\n"))
    assert read_peer_failure(leader_gone.message) and EXIT_WORKER_LOST == 4
    message = worker_lost_message(leader_gone, 6, str(tmp_path))
    assert message.startswith("a worker was lost: worker 0 (/job:worker/task:0) stopped responding during step 7 "
                              "(TensorFlow: UnavailableError: Collective ops is aborted by: Failed to send RPC")
    assert message.endswith("Restart every worker with the same command and TF_CONFIG; they resume from checkpoint "
                            "ckpt-1 (the steps after it are lost).")
    assert "start from step 0" in worker_lost_message(leader_gone, 0, str(tmp_path / "none"))

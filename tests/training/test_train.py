"""The training loop, run as `python -m training train` in subprocesses (their own device set-up)."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from audioshards import shards as shard_format
from training.config import Config
from tests.training.conftest import REPO, run_training

FAST = ["--model", "tiny", "--global-frames", "56", "--local-frames", "26", "--local-views", "2",
        "--directions", "64", "--shuffle-buffer", "16", "--log-every", "1"]


def metrics(run_dir) -> list[dict]:
    with open(os.path.join(run_dir, "metrics.jsonl")) as handle:
        return [json.loads(line) for line in handle]


def checkpoints(run_dir) -> list[int]:
    return sorted(int(name[5:-6]) for name in os.listdir(os.path.join(run_dir, "checkpoints"))
                  if name.startswith("ckpt-") and name.endswith(".index"))


def output(result) -> str:
    return result.stdout + result.stderr


# --------------------------------------------------------------------------------------------
# Replicas
# --------------------------------------------------------------------------------------------


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


@pytest.fixture(scope="module")
def two_replica_run(shard_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "two-replicas"
    result = run_training("train", "--shards", str(shard_dir), "--out", str(out), "--cpu-devices", "2",
                          "--batch", "8", "--steps", "30", "--lr", "2e-3", "--checkpoint-every", "10", *FAST)
    return out, result


def test_tiny_trains_with_two_replicas_and_its_loss_falls(two_replica_run):
    out, result = two_replica_run
    assert result.returncode == 0, output(result)[-4000:]
    assert "MirroredStrategy with 2 replica(s) (4 clips each)" in result.stdout
    rows = metrics(out)
    assert [row["step"] for row in rows] == list(range(1, 31))
    losses = np.array([row["loss"] for row in rows])
    assert np.all(np.isfinite(losses))
    # It falls, without the collapse that once made it fall fastest (tests/training/test_learning.py
    # checks that it learns).
    assert losses[-5:].mean() < 0.8 * losses[:5].mean()
    assert "ex/s" in result.stdout and rows[-1]["examples_per_s"] > 0
    assert all(row["effective_rank"] >= 1 and row["embedding_std"] > 0 for row in rows)
    assert all(row["representation_rank"] >= 1 and row["representation_std"] > 0 for row in rows)
    assert "repr std" in result.stdout


def test_run_directory_holds_config_checkpoints_tensorboard_and_encoder(two_replica_run):
    out, result = two_replica_run
    assert result.returncode == 0, output(result)[-4000:]
    config = Config.from_dict(json.loads((out / "config.json").read_text()))
    assert (config.run.cpu_devices, config.run.batch, config.run.steps) == (2, 8, 30)
    assert config.run.precision == "float32"  # "auto" is resolved before it is saved
    assert checkpoints(out) == [10, 20, 30]
    tags = set()
    for name in os.listdir(out / "tensorboard"):
        for event in tf.compat.v1.train.summary_iterator(str(out / "tensorboard" / name)):
            tags |= {value.tag for value in event.summary.value}
    assert {"loss/total", "loss/invariance", "loss/sigreg", "optimizer/learning_rate", "optimizer/grad_norm",
            "speed/examples_per_s", "collapse/embedding_std", "collapse/effective_rank",
            "collapse/representation_std", "collapse/representation_rank"} <= tags
    from training.export import load_encoder

    encoder, metadata = load_encoder(str(out / "encoder"))
    assert metadata["step"] == 30 and metadata["model"]["size"] == "tiny"
    assert len(metadata["normalisation"]["band_mean"]) == 256
    representation = encoder(tf.random.normal([2, 256, 56, 2])).numpy()
    assert representation.shape == (2, 128) and np.all(np.isfinite(representation))  # cls+mean of width 64


def test_resume_refuses_other_settings_and_accepts_more_steps(two_replica_run):
    from training.__main__ import resolve_train_config
    from training.config import UsageError

    out, _ = two_replica_run
    with pytest.raises(UsageError, match="--batch: the run was started with 8, now 16"):
        resolve_train_config({"run.out": str(out), "run.batch": 16})
    config, resumed = resolve_train_config({"run.out": str(out), "run.steps": 40, "run.cpu_devices": 1})
    assert resumed and config.run.steps == 40 and config.run.cpu_devices == 1 and config.run.batch == 8


def free_ports(count: int) -> list[int]:
    import socket

    sockets = [socket.socket() for _ in range(count)]
    for handle in sockets:
        handle.bind(("127.0.0.1", 0))
    ports = [handle.getsockname()[1] for handle in sockets]
    for handle in sockets:
        handle.close()
    return ports


def tf_config(workers: list[str], index: int) -> str:
    return json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})


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


# --------------------------------------------------------------------------------------------
# Stopping and resuming
# --------------------------------------------------------------------------------------------


def start_training(*args: str) -> subprocess.Popen:
    environment = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.Popen([sys.executable, "-m", "training", "train", *args], cwd=REPO, env=environment,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for_step(run_dir, step: int, process: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[0][-4000:]
        try:
            if metrics(run_dir) and metrics(run_dir)[-1]["step"] >= step:
                return
        except (FileNotFoundError, json.JSONDecodeError):
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{run_dir} did not reach step {step}")


def test_sigterm_checkpoints_and_a_restart_continues_like_an_uninterrupted_run(shard_dir, tmp_path):
    args = ["--shards", str(shard_dir), "--batch", "4", "--steps", "12", "--checkpoint-every", "100",
            "--deterministic", *FAST]
    uninterrupted = start_training("--out", str(tmp_path / "whole"), *args)
    interrupted = start_training("--out", str(tmp_path / "parts"), *args)
    try:
        wait_for_step(tmp_path / "parts", 3, interrupted)
        interrupted.send_signal(signal.SIGTERM)
        log = interrupted.communicate(timeout=120)[0]
    finally:
        interrupted.kill()
    assert interrupted.returncode == 128 + signal.SIGTERM, log[-4000:]
    stopped_at = metrics(tmp_path / "parts")[-1]["step"]
    assert stopped_at < 12 and checkpoints(tmp_path / "parts") == [stopped_at]
    assert "stopped by SIGTERM" in log and "run the same command again to resume" in log
    assert json.loads((tmp_path / "parts" / "encoder" / "encoder.json").read_text())["step"] == stopped_at

    resumed = run_training("train", "--out", str(tmp_path / "parts"))  # settings from RUN_DIR/config.json
    assert resumed.returncode == 0, output(resumed)[-4000:]
    assert f"resumed from {tmp_path / 'parts'}/checkpoints/ckpt-{stopped_at} at step {stopped_at}" in resumed.stdout
    assert uninterrupted.wait(timeout=180) == 0, uninterrupted.communicate()[0][-4000:]

    whole, parts = metrics(tmp_path / "whole"), metrics(tmp_path / "parts")
    assert [row["step"] for row in parts] == list(range(1, 13))  # continues at the next step
    for a, b in zip(whole, parts):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5), (a["step"], a["loss"], b["loss"])
        assert b["grad_norm"] == pytest.approx(a["grad_norm"], rel=1e-4)


def write_nan_shards(source, target) -> None:
    """A copy of the shard directory whose examples hold NaN (as corrupt features would)."""
    shutil.copytree(source, target)
    manifest = shard_format.read_manifest(str(target))
    shape = manifest["example"]["shape"]
    for shard in manifest["splits"]["train"]["shards"]:
        path = str(target / shard["file"])
        examples = shard_format.read_examples(path, shape)
        poisoned = []
        for example in examples:
            logmel = example.logmel.copy()
            logmel[:, :, :] = np.nan
            poisoned.append(shard_format.ClipExample(**{**example.__dict__, "logmel": logmel}).serialize())
        shard_format.write_shard(path, poisoned)


def test_nan_loss_stops_the_run_and_keeps_the_good_checkpoint(two_replica_run, shard_dir, tmp_path):
    out, result = two_replica_run
    assert result.returncode == 0
    run = tmp_path / "run"
    shutil.copytree(out, run)
    write_nan_shards(shard_dir, tmp_path / "nan-shards")
    before = (run / "checkpoints" / "ckpt-30.index").read_bytes(), (run / "encoder" / "encoder.weights.h5").read_bytes()
    stopped = run_training("train", "--out", str(run), "--shards", str(tmp_path / "nan-shards"), "--steps", "40",
                           "--checkpoint-every", "1", "--cpu-devices", "1")
    assert stopped.returncode == 3, output(stopped)[-4000:]
    assert "step 31: the loss is nan" in stopped.stdout
    assert "Stopped without saving; the last good checkpoint is" in stopped.stdout and "ckpt-30" in stopped.stdout
    assert checkpoints(run) == [10, 20, 30]
    after = (run / "checkpoints" / "ckpt-30.index").read_bytes(), (run / "encoder" / "encoder.weights.h5").read_bytes()
    assert after == before

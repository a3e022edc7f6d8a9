"""training.train.read_peer_failure: one case per TensorFlow message the lost-worker exit relies on.

The texts are TensorFlow's (2.21) as a MultiWorkerMirroredStrategy worker sees them; when
TensorFlow rewords one, its case here fails and the trainer would otherwise crash with a raw
traceback instead of exit code 4.
"""
from __future__ import annotations

import pytest

from training.train import PeerFailure, read_peer_failure

LEADER_GONE = (
    "Graph execution error:\n\nDetected at node CollectiveReduceV2 defined at (most recent call last):\n"
    "{{function_node __wrapped__CollectiveReduceV2_device_/job:worker/replica:0/task:1/device:CPU:0}} "
    "Collective ops is aborted by: Failed to send RPC to coordination service. Either the leader task was "
    "preempted/died/restarted unexpectedly or this task is experiencing network issues.\nAdditional GRPC error "
    "information from remote target /job:worker/replica:0/task:0 while calling "
    "/tensorflow.CoordinationService/Heartbeat:\n")
UNHEALTHY = (
    "Collective ops is aborted by: cluster check alive failed, /job:worker/replica:0/task:0 reports\n"
    "The following tasks are unhealthy (stopped sending heartbeats):\n/job:worker/replica:0/task:2\n"
    "The tasks have crashed. Check the task logs for an earlier error to debug further.")
POLL_DEADLINE = ("Deadline Exceeded\nAdditional GRPC error information while calling "
                 "/tensorflow.CoordinationService/PollForError")
SOCKET_CLOSED = ("Socket closed\nAdditional GRPC error information from remote target "
                 "/job:chief/replica:0/task:0 while calling /tensorflow.WorkerService/RecvBuf")


def test_leader_gone_names_the_leader_not_the_local_device():
    failure = read_peer_failure(LEADER_GONE)
    assert failure == PeerFailure((("worker", "0"),), failure.cause)
    assert failure.cause.startswith("Collective ops is aborted by: Failed to send RPC to coordination service.")


def test_unhealthy_tasks_are_the_ones_listed_after_the_word():
    failure = read_peer_failure(UNHEALTHY)
    assert failure.tasks == (("worker", "2"),)  # not task 0, which reported it
    assert failure.cause.startswith("Collective ops is aborted by: cluster check alive failed")


def test_coordination_service_deadline_without_a_task_is_a_peer_failure():
    assert read_peer_failure(POLL_DEADLINE) == PeerFailure(
        (), "Additional GRPC error information while calling /tensorflow.CoordinationService/PollForError")


def test_a_remote_task_in_the_text_is_named():
    assert read_peer_failure(SOCKET_CLOSED).tasks == (("chief", "0"),)


@pytest.mark.parametrize("text", ["gs://bucket/x: 503 Service Unavailable",
                                  "Deadline Exceeded while reading /data/shards/train-00001-of-00016.tfrecord"])
def test_other_unavailable_errors_are_not_peer_failures(text):
    assert read_peer_failure(text) is None


def test_a_long_cause_is_cut():
    failure = read_peer_failure("Collective ops is aborted by: " + "x" * 400)
    assert len(failure.cause) == 304 and failure.cause.endswith(" ...")

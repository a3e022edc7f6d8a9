"""Run in its own process: single-device gradients of the trainer's loss on a global batch versus
two replicas each holding half of it. Prints one JSON line; test_train.py asserts on it.

Two modes, chosen by the environment:

- no ``TF_CONFIG``: MirroredStrategy over two logical CPU devices of this process (they must
  exist before TensorFlow starts, hence a process of its own);
- ``TF_CONFIG`` naming two workers: run once per worker (two processes on 127.0.0.1);
  MultiWorkerMirroredStrategy with one CPU replica per worker, the collectives going over gRPC
  between the processes. Each worker prints its own line, with the single-device reference
  computed in the same process (outside the strategy's scope).

The views of the global batch are drawn once, from fixed seeds, so every run sees identical inputs.
A control run replaces SIGReg's cross-replica reduction by per-replica statistics (what a naive
implementation would do), to show that the comparison can tell the difference.
"""
import hashlib
import json
import os
import sys

import tensorflow as tf

MULTI_WORKER = bool(os.environ.get("TF_CONFIG"))
if MULTI_WORKER:
    # Before any other TensorFlow op: the strategy starts this process's gRPC server.
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
else:
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])

import keras  # noqa: E402
import numpy as np  # noqa: E402

from training import loss, views  # noqa: E402
from training.config import Config  # noqa: E402
from training.vit.model import build_models  # noqa: E402
from training.train import loss_and_gradients, make_embed  # noqa: E402

N, REPLICAS = 8, 2
assert strategy.num_replicas_in_sync == REPLICAS, strategy.num_replicas_in_sync
config = Config().replace(**{
    "views.global_frames": 36, "views.local_frames": 26, "views.local_views": 2, "loss.directions": 64,
    "run.batch": N,
})
step = tf.constant(3, tf.int64)
logmel = tf.constant(np.random.default_rng(0).normal(-40, 10, (N, 256, 235, 2)), tf.float32)
# The views of the global batch, drawn once, so both runs see identical inputs.
global_views, local_views = views.all_views(logmel, tf.fill([256], -40.0), tf.fill([256], 10.0), views.rng.seed(9),
                                            config.views)


def half(value: tf.Tensor | None, count: int, replica: int):
    """Rows of `replica`'s clips from a view-major [count·N, ...] tensor."""
    if value is None:
        return None
    grid = tf.reshape(value, [count, N, *value.shape[1:]])
    part = grid[:, replica * N // REPLICAS:(replica + 1) * N // REPLICAS]
    return tf.reshape(part, [count * N // REPLICAS, *value.shape[1:]])


def replica_views(context):
    r = context.replica_id_in_sync_group  # under MultiWorkerMirroredStrategy: the worker's index
    g = views.Views(half(global_views.x, 2, r), None)
    local = views.Views(half(local_views.x, 2, r), half(local_views.token_mask, 2, r))
    return g, local


keras.utils.set_random_seed(1)
encoder, projector = build_models(config.model)
weights = [v.numpy() for v in encoder.weights + projector.weights]
single_variables = encoder.trainable_variables + projector.trainable_variables


def single_step():
    return loss_and_gradients(make_embed(encoder, projector, config.views, N), single_variables, global_views,
                              local_views, step, config)


single = tf.function(single_step, autograph=False)
single_terms, single_gradients, _, _ = single()

with strategy.scope():
    encoder2, projector2 = build_models(config.model)
    for variable, value in zip(encoder2.weights + projector2.weights, weights):
        variable.assign(value)
variables = encoder2.trainable_variables + projector2.trainable_variables
embed = make_embed(encoder2, projector2, config.views, N // REPLICAS)
inputs = strategy.experimental_distribute_values_from_function(replica_views)


def replica_step(replica_inputs):
    return loss_and_gradients(embed, variables, replica_inputs[0], replica_inputs[1], step, config)


@tf.function(autograph=False)  # as the trainer's step (training/train.py)
def replicated():
    terms, gradients, _, _ = strategy.run(replica_step, args=(inputs,))
    return ({k: strategy.reduce("SUM", t, axis=None) for k, t in terms.items()},
            [strategy.experimental_local_results(g) for g in gradients])


def compare(gradients_per_replica) -> dict:
    """Largest difference of any gradient entry, relative to its variable's largest gradient (floored
    at 1e-3 of the largest gradient of all: some are ~0 by symmetry, e.g. the last bias).

    Replicas in this process are also compared with each other; across workers, the digest of the
    gradient bytes lets the test compare the processes."""
    worst, same_on_replicas = 0.0, 0.0
    largest = max(float(tf.reduce_max(tf.abs(g))) for g in single_gradients)
    digest = hashlib.sha256()
    for reference, copies in zip(single_gradients, gradients_per_replica):
        scale = max(float(tf.reduce_max(tf.abs(reference))), 1e-3 * largest)
        worst = max(worst, float(tf.reduce_max(tf.abs(copies[0] - reference))) / scale)
        for copy in copies[1:]:
            same_on_replicas = max(same_on_replicas, float(tf.reduce_max(tf.abs(copies[0] - copy))) / scale)
        digest.update(copies[0].numpy().tobytes())
    return {"max_relative_difference": worst, "replicas_disagree_by": same_on_replicas,
            "gradient_digest": digest.hexdigest()}


terms, gradients = replicated()
result = {
    "strategy": type(strategy).__name__,
    "local_replicas": len(gradients[0]),
    "single": {k: float(v) for k, v in single_terms.items()},
    "replicated": {k: float(v) for k, v in terms.items()},
    **compare(gradients),
}

# Control: SIGReg without the cross-replica reduction.
loss._replicas = lambda: (tf.distribute.get_replica_context(), 1)
control_terms, control_gradients = tf.function(replicated.python_function, autograph=False)()
result["control_sigreg"] = float(control_terms["sigreg"])
result["control_max_relative_difference"] = compare(control_gradients)["max_relative_difference"]
print(json.dumps(result))
sys.stdout.flush()

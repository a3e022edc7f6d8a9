"""The training loop: one file, top to bottom.

Set-up → input → model and optimiser → the step → checkpoints → the loop. The step is one
``tf.function`` around ``strategy.run``; inside it each replica makes its views, runs the encoder
(XLA-compiled on GPU) and the projector, computes its share of the LeJEPA loss (whose SIGReg
all-reduces the characteristic-function sums), all-reduces the gradients once, clips the *global*
gradient and applies AdamW to every replica's copy.

Why the XLA cluster stops at the encoder: under MirroredStrategy each replica's compiled function
must touch only its own device's variables, and a cross-replica all-reduce cannot live inside one
compiled replica function. So views and encoder (nearly all the FLOPs) and their gradient are
compiled; the projector (whose BatchNorm all-reduces its batch statistics), the loss, the
collectives and the optimiser update are ordinary graph ops.
"""
from __future__ import annotations

import json
import logging
import math
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable
from typing import Any, NamedTuple

from audioshards import storage

log = logging.getLogger("training")

EXIT_NAN = 3
EXIT_WORKER_LOST = 4


def configure_devices(cpu_devices: int) -> None:
    """Split the CPU into logical devices; must run before TensorFlow initialises its devices."""
    import tensorflow as tf

    if cpu_devices <= 1 or tf.config.list_physical_devices("GPU") or _cluster_size() > 1:
        return
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * cpu_devices)
    except RuntimeError as error:
        raise RuntimeError("--cpu-devices must be set before TensorFlow starts; run it in a fresh process") from error


def _cluster_size() -> int:
    cluster = json.loads(os.environ.get("TF_CONFIG") or "{}").get("cluster", {})
    return len(cluster.get("worker", [])) + len(cluster.get("chief", []))


def select_strategy(cpu_devices: int):
    """Several hosts (TF_CONFIG) → MultiWorkerMirrored; GPUs → Mirrored over all of them;
    --cpu-devices K > 1 → Mirrored over K logical CPUs; else the default strategy."""
    import tensorflow as tf

    if _cluster_size() > 1:
        return tf.distribute.MultiWorkerMirroredStrategy()
    if tf.config.list_physical_devices("GPU"):
        return tf.distribute.MirroredStrategy()
    if cpu_devices > 1:
        devices = [d.name for d in tf.config.list_logical_devices("CPU")][:cpu_devices]
        return tf.distribute.MirroredStrategy(devices)
    return tf.distribute.get_strategy()


def is_chief(strategy) -> bool:
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    return resolver.task_type == "worker" and resolver.task_id == 0 and "chief" not in resolver.cluster_spec().jobs


def resolve_precision(precision: str) -> str:
    import tensorflow as tf

    if precision != "auto":
        return precision
    return "mixed_bfloat16" if tf.config.list_physical_devices("GPU") else "float32"


def resolve_jit(jit: str) -> str:
    import tensorflow as tf

    if jit != "auto":
        return jit
    return "all" if tf.config.list_physical_devices("GPU") else "views"


def total_steps(config, train_examples: int) -> int:
    if config.run.steps is not None:
        return config.run.steps
    epochs = config.run.epochs if config.run.epochs is not None else 100
    return max(1, math.ceil(epochs * train_examples / config.run.batch))


class State(NamedTuple):
    """Everything the step updates: models, optimiser, fp16 loss scale, step counter."""

    encoder: Any
    projector: Any
    adamw: Any
    loss_scale: Any
    step: Any


def build_state(config, precision: str, spectrogram) -> State:
    """The trained state with its variables created (call inside the strategy's scope, after the
    precision policy is set)."""
    import tensorflow as tf

    from training import optimizer as optim
    from training.vit.model import build_models

    encoder, projector = build_models(config.model, spectrogram.n_mels, spectrogram.channels)
    adamw = optim.AdamW(encoder.trainable_variables + projector.trainable_variables, config.optim)
    loss_scale = optim.LossScale(enabled=precision == "mixed_float16")
    return State(encoder, projector, adamw, loss_scale, tf.Variable(0, dtype=tf.int64, trainable=False, name="step"))


class Step(NamedTuple):
    """The compiled training step, and its view maker alone (benchmarks time the two)."""

    train: Callable  # (logmel [B, mel, frames, 2] float16, stop int32) → reduced metrics; advances the step
    views: Callable  # (logmel, seed [2]) → (global views, local views)


def build_step(config, strategy, state: State, band_mean, band_std, steps: int) -> Step:
    """One tf.function around ``strategy.run``: views, encoder + projector, loss, gradients, AdamW."""
    import tensorflow as tf

    from training import loss, views
    from training import optimizer as optim

    encoder, projector, adamw, loss_scale, step = state
    variables = encoder.trainable_variables + projector.trainable_variables
    replicas = strategy.num_replicas_in_sync
    view_config = config.views
    patch, stride = config.model.patch, config.model.stride
    mean_tensor, std_tensor = tf.constant(band_mean), tf.constant(band_std)

    def make_views(logmel, seed):
        return views.all_views(logmel, mean_tensor, std_tensor, seed, view_config, patch, stride)

    # Views are compiled apart from the model: they need no gradient, and XLA fuses their gathers
    # and element-wise ops well (3x faster on CPU than the plain graph).
    # No tf.function here uses AutoGraph: the step has no Python control flow on tensors (its ifs
    # and loops are on settings), and converting its source cost about 2 s before the first step.
    jit = resolve_jit(config.run.jit)
    compiled_views = tf.function(make_views, jit_compile=jit in ("all", "views"), autograph=False)
    embed = make_embed(encoder, projector, view_config, config.run.batch // replicas, jit_compile=jit == "all")

    def replica_step(logmel, stop):
        context = tf.distribute.get_replica_context()
        seed = views.step_seed(config.run.seed, step, context.replica_id_in_sync_group)
        global_views, local_views = compiled_views(logmel, seed)
        terms, gradients, z, representation = loss_and_gradients(embed, variables, global_views, local_views, step,
                                                                 config, loss_scale.scale)
        norm = tf.linalg.global_norm(gradients)
        finite = tf.math.is_finite(norm)
        if config.optim.clip_norm > 0:
            gradients, _ = tf.clip_by_global_norm(gradients, config.optim.clip_norm, use_norm=norm)
        rate = optim.learning_rate(step, config.optim, steps)
        adamw.apply(gradients, rate, finite)
        loss_scale.update(finite)
        # Collapse monitors on one global view's clips: z (what the loss sees) and the encoder's
        # representation (what the probe and users see).
        z_monitors = loss.collapse_monitors(z[0])
        representation_monitors = loss.collapse_monitors(representation[:tf.shape(z)[1]])
        monitors = {"embedding_std": z_monitors["std"], "effective_rank": z_monitors["rank"],
                    "representation_std": representation_monitors["std"],
                    "representation_rank": representation_monitors["rank"]}
        if replicas > 1:
            # identity: a copy on this replica's device (the same host tensor on every replica has no
            # device set to reduce to).
            stop = context.all_reduce(tf.distribute.ReduceOp.SUM, tf.identity(stop))  # > 0: a worker was signalled
        return {**terms, **monitors, "grad_norm": norm, "learning_rate": rate, "loss_scale": loss_scale.scale,
                "stop": stop}

    @tf.function(autograph=False)
    def train_step(logmel, stop):
        outputs = strategy.run(replica_step, args=(logmel, stop))
        reduced = {}
        for name, value in outputs.items():
            # Loss terms are shares of the global loss (sum); the rest is the same or a per-replica monitor.
            how = tf.distribute.ReduceOp.SUM if name in ("loss", "invariance", "sigreg") else tf.distribute.ReduceOp.MEAN
            reduced[name] = strategy.reduce(how, value, axis=None)
        step.assign_add(1)
        return reduced

    return Step(train_step, compiled_views)


class _Stop:
    """SIGTERM / SIGINT: finish the current step, checkpoint, exit. A second signal stops at once."""

    def __init__(self):
        self.signal = 0

    def __call__(self, signum, frame):
        if self.signal:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
        self.signal = signum
        log.warning("%s received: checkpointing after this step (send it again to stop at once)",
                    signal.Signals(signum).name)


def train(config) -> int:
    """Train per `config` (already resolved and saved in RUN_DIR); returns the process exit code."""
    # ------------------------------------------------------------------------------------------
    # Set-up
    # ------------------------------------------------------------------------------------------
    configure_devices(config.run.cpu_devices)
    import keras
    import numpy as np
    import tensorflow as tf

    from audioshards.spectrogram import SpectrogramConfig
    from training import data, export, views
    from training.config import UsageError
    from training.vit.model import count_parameters

    run_dir = config.run.out.rstrip("/")
    strategy = select_strategy(config.run.cpu_devices)
    chief = is_chief(strategy)
    replicas = strategy.num_replicas_in_sync
    if config.run.batch % replicas:
        raise UsageError(f"--batch {config.run.batch} must be a multiple of the {replicas} replicas")
    per_replica = config.run.batch // replicas
    precision = resolve_precision(config.run.precision)
    keras.mixed_precision.set_global_policy(precision)
    if config.run.deterministic:
        tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(config.run.seed)
    log.info("strategy %s with %d replica(s) (%d clips each), precision %s, XLA for %s, %s",
             type(strategy).__name__, replicas, per_replica, precision, resolve_jit(config.run.jit),
             "chief" if chief else "worker")

    # ------------------------------------------------------------------------------------------
    # Input (the manifest check happens before any model is built)
    # ------------------------------------------------------------------------------------------
    spectrogram = SpectrogramConfig()
    shards = data.open_shards(config.run.shards, "train", spectrogram, skip_corrupt=config.run.skip_corrupt)
    if shards.skipped:
        log.warning("--skip-corrupt: left out %d shard(s) with %d examples:\n  %s", len(shards.skipped),
                    shards.skipped_examples, "\n  ".join(shards.skipped))
    steps = total_steps(config, shards.total)
    band_mean, band_std = views.band_statistics(shards.band_mean, shards.band_std, config.views.min_band_std)
    log.info("%d train examples in %d shards; %d steps of %d (%.1f epochs)", shards.total, len(shards.files), steps,
             config.run.batch, steps * config.run.batch / shards.total)

    # ------------------------------------------------------------------------------------------
    # Model and optimiser (every variable inside the strategy's scope)
    # ------------------------------------------------------------------------------------------
    with strategy.scope():
        encoder, projector, adamw, loss_scale, step = build_state(config, precision, spectrogram)
    log.info("model %s: encoder %s parameters, projector %s", config.model.size,
             f"{count_parameters(encoder):,}", f"{count_parameters(projector):,}")

    checkpoint = tf.train.Checkpoint(step=step, encoder=encoder, projector=projector, optimizer=adamw,
                                     loss_scale=loss_scale)
    checkpoint_dir = f"{run_dir}/checkpoints"
    if not chief:  # every worker must take part in saving; only the chief's copy is kept
        checkpoint_dir = f"{run_dir}/checkpoints/.worker-{strategy.cluster_resolver.task_id}"
    manager = tf.train.CheckpointManager(checkpoint, checkpoint_dir, max_to_keep=config.run.keep_checkpoints)
    latest = tf.train.latest_checkpoint(f"{run_dir}/checkpoints")
    if latest:
        checkpoint.restore(latest).assert_existing_objects_matched()
        log.info("resumed from %s at step %d", latest, int(step.numpy()))
        _warn_if_statistics_changed(f"{run_dir}/encoder", band_mean, band_std)
    start_step = int(step.numpy())
    if start_step >= steps:
        log.info("already trained for %d of %d steps; nothing to do (raise --steps to continue)", start_step, steps)
        return 0

    dataset = strategy.distribute_datasets_from_function(lambda context: data.train_stream(
        shards, context.get_per_replica_batch_size(config.run.batch), seed=config.run.seed,
        shuffle_buffer=config.run.shuffle_buffer, deterministic=config.run.deterministic,
        skip_corrupt=config.run.skip_corrupt, start_step=start_step, input_context=context))
    batches = iter(dataset)

    # ------------------------------------------------------------------------------------------
    # The step
    # ------------------------------------------------------------------------------------------
    train_step = build_step(config, strategy, State(encoder, projector, adamw, loss_scale, step), band_mean,
                            band_std, steps).train

    # ------------------------------------------------------------------------------------------
    # Checkpoints, export, logs
    # ------------------------------------------------------------------------------------------
    saved_at = [start_step if latest else -1]

    def save(reason: str) -> None:
        if saved_at[0] == int(step.numpy()):
            return
        saved_at[0] = int(step.numpy())
        path = manager.save(checkpoint_number=int(step.numpy()))
        if chief:
            export.export_encoder(encoder, config, shards.spectrogram, band_mean, band_std, int(step.numpy()),
                                  f"{run_dir}/encoder")
            log.info("checkpoint %s (%s); encoder exported to %s/encoder", path, reason, run_dir)
        else:
            shutil.rmtree(checkpoint_dir, ignore_errors=True)

    writer = tf.summary.create_file_writer(f"{run_dir}/tensorboard") if chief else tf.summary.create_noop_writer()
    # One JSON line per logged step, for scripts and tests; object stores cannot append, so only
    # for a local RUN_DIR (TensorBoard has the same numbers everywhere).
    metrics_file = None
    if chief and not storage.is_remote(run_dir):
        _drop_metrics_after(f"{run_dir}/metrics.jsonl", start_step)
        metrics_file = open(f"{run_dir}/metrics.jsonl", "a")

    stopper = _Stop()
    previous = {s: signal.signal(s, stopper) for s in (signal.SIGTERM, signal.SIGINT)}

    # ------------------------------------------------------------------------------------------
    # The loop
    # ------------------------------------------------------------------------------------------
    log.info("training from step %d to %d", start_step, steps)
    last_time, last_step, exit_code = time.perf_counter(), start_step, 0
    current = start_step
    try:
        while True:
            current = int(step.numpy())
            if current >= steps:
                save("end of training")
                break
            try:
                batch = next(batches)
            except tf.errors.DataLossError as error:
                # The start-up check reads record headers only; a damaged payload shows up here, without
                # a file name in TensorFlow's message, so read every shard once to name it.
                bad = data.find_unreadable(shards.files)
                raise data.CorruptShard(f"a shard became unreadable while training ({error.message}):\n  "
                                        + "\n  ".join(bad or ["(not found again: a transient read error?)"])
                                        + "\nRebuild it, or pass --skip-corrupt.") from error
            values = {k: v.numpy() for k, v in train_step(batch, tf.constant(stopper.signal, tf.int32)).items()}
            done = current + 1
            if not (np.isfinite(values["loss"]) and (precision == "mixed_float16" or np.isfinite(values["grad_norm"]))):
                good = manager.latest_checkpoint or "none yet"
                log.error("step %d: the loss is %s (invariance %s, SIGReg %s, gradient norm %s). Stopped without "
                          "saving; the last good checkpoint is %s. Try a lower --lr, --clip-norm or "
                          "--precision float32.", done, values["loss"], values["invariance"], values["sigreg"],
                          values["grad_norm"], good)
                exit_code = EXIT_NAN
                break
            if done % config.run.log_every == 0 or done == steps or values["stop"] > 0:
                now = time.perf_counter()
                steps_per_s = (done - last_step) / max(now - last_time, 1e-9)
                last_time, last_step = now, done
                record = {"step": done, **{k: float(v) for k, v in values.items() if k != "stop"},
                          "steps_per_s": steps_per_s, "examples_per_s": steps_per_s * config.run.batch}
                if chief:
                    _report(record, steps, writer, metrics_file, tf)
            if values["stop"] > 0:
                save(f"stopped by {signal.Signals(stopper.signal).name if stopper.signal else 'a signal to a peer'}")
                log.warning("stopped at step %d; run the same command again to resume", done)
                exit_code = 128 + (stopper.signal or signal.SIGTERM)
                break
            if done % config.run.checkpoint_every == 0:
                save("periodic")
        if _cluster_size() > 1:
            # Every worker leaves together: the chief hosts the coordination service, and a worker
            # still finishing its last collective when the chief exits would die of lost heartbeats.
            strategy.run(lambda: tf.distribute.get_replica_context().all_reduce("SUM", tf.ones([])))
    except (tf.errors.UnavailableError, tf.errors.AbortedError, tf.errors.DeadlineExceededError) as error:
        if _cluster_size() <= 1 or read_peer_failure(error.message) is None:
            raise
        log.error("%s", worker_lost_message(error, current, f"{run_dir}/checkpoints"))
        exit_code = EXIT_WORKER_LOST
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if metrics_file:
            metrics_file.close()
        writer.close()
    if exit_code == EXIT_WORKER_LOST:
        # Leave without tearing TensorFlow down: after an aborted collective, destroying the input
        # iterator waits on its background threads for tens of seconds (14-88 s measured), and a
        # restart should not wait for that. Everything worth keeping is on disk already.
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        from training import console

        console.drain()  # the filter thread would die with the process, holding the last lines
        os._exit(EXIT_WORKER_LOST)
    return exit_code


def _drop_metrics_after(path: str, step: int) -> None:
    """Resuming at `step`: drop the lines of steps after it (trained since the checkpoint, then lost
    with a killed process), so that metrics.jsonl holds each step once, in order."""
    if not os.path.exists(path):
        return
    with open(path) as handle:
        lines = handle.readlines()
    kept = []
    for line in lines:
        try:
            if json.loads(line)["step"] <= step:
                kept.append(line)
        except (ValueError, KeyError):  # a line cut short by a kill
            pass
    if len(kept) < len(lines):
        storage.write_text_atomic(path, "".join(kept))
        log.info("metrics.jsonl: dropped %d line(s) after step %d (steps lost since that checkpoint)",
                 len(lines) - len(kept), step)


class PeerFailure(NamedTuple):
    tasks: tuple[tuple[str, str], ...]  # (job, task index) of the tasks named as gone
    cause: str  # TensorFlow's line saying why the collective was aborted


#: Words of TensorFlow's error text that tell a lost peer (not, say, a failed file read).
PEER_FAILURE_SIGNS = ("Collective ops is aborted", "unhealthy", "coordination service", "CoordinationService",
                      "/job:")


def read_peer_failure(text: str) -> PeerFailure | None:
    """The lost peer in a TensorFlow error's text, or None when the error is not a peer's loss.

    All the trainer knows of TensorFlow's wording is here (tests/training/test_peer_failure.py
    has one case per message): a sign from PEER_FAILURE_SIGNS; the coordination service's list of
    tasks after "unhealthy" (else any ``/job:J/replica:R/task:T``, outside ``{{function_node ...}}``,
    which names a local device); the cause on the line with "aborted by" (else the last line).
    """
    import re

    if not any(sign in text for sign in PEER_FAILURE_SIGNS):
        return None
    text = re.sub(r"\{\{[^}]*\}\}\s*", "", text)  # {{function_node ... (a local device) ...}}
    unhealthy = text.split("unhealthy", 1)[1] if "unhealthy" in text else ""
    tasks = tuple(sorted(set(re.findall(r"/job:(\w+)/replica:\d+/task:(\d+)", unhealthy or text))))
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    # TensorFlow's message starts with "Graph execution error:" and a traceback; the cause is the
    # line saying why the collective was aborted.
    cause = next((line for line in lines if "aborted by" in line), None) or (lines[-1] if lines else "")
    if len(cause) > 300:
        cause = cause[:300] + " ..."
    return PeerFailure(tasks, cause)


def worker_lost_message(error, step: int, checkpoint_dir: str) -> str:
    """What happened and what to do, when a peer of a MultiWorkerMirroredStrategy job is lost."""
    import tensorflow as tf

    tasks, cause = read_peer_failure(error.message) or PeerFailure((), "")
    who = " and ".join(f"{job} {task} (/job:{job}/task:{task})" for job, task in tasks)
    latest = tf.train.latest_checkpoint(checkpoint_dir)
    resume = (f"they resume from checkpoint {os.path.basename(latest)} (the steps after it are lost)" if latest
              else "no checkpoint was written yet, so they start from step 0")
    return (f"a worker was lost: {who or 'a worker (or the network to it)'} stopped responding during step {step + 1} "
            f"(TensorFlow: {type(error).__name__}: {cause}). A MultiWorkerMirroredStrategy job cannot go on "
            f"with fewer workers, so every worker stops (exit code {EXIT_WORKER_LOST}). Restart every worker with "
            f"the same command and TF_CONFIG; {resume}.")


#: TensorBoard tag → record key.
SCALARS = {
    "loss/total": "loss", "loss/invariance": "invariance", "loss/sigreg": "sigreg",
    "optimizer/learning_rate": "learning_rate", "optimizer/grad_norm": "grad_norm",
    "speed/examples_per_s": "examples_per_s", "speed/steps_per_s": "steps_per_s",
    "collapse/embedding_std": "embedding_std", "collapse/effective_rank": "effective_rank",
    "collapse/representation_std": "representation_std", "collapse/representation_rank": "representation_rank",
    "optimizer/loss_scale": "loss_scale",  # 1 unless --precision mixed_float16
}


def _warn_if_statistics_changed(export_dir: str, band_mean, band_std) -> None:
    """A resumed run normalises with the manifest's statistics; say so if they moved (rebuilt shards)."""
    import numpy as np
    import tensorflow as tf

    path = f"{export_dir}/encoder.json"
    if not tf.io.gfile.exists(path):
        return
    with tf.io.gfile.GFile(path) as handle:
        before = json.load(handle)["normalisation"]
    if not (np.allclose(before["band_mean"], band_mean, atol=1e-3) and np.allclose(before["band_std"], band_std,
                                                                                    atol=1e-3)):
        log.warning("the shards' per-band statistics differ from those this run used so far: the input "
                    "normalisation changes from here on (were the shards rebuilt?)")


def make_embed(encoder, projector, view_config, per_replica: int, jit_compile: bool = False):
    """(global views, local views) of one replica's clips → (z [V, N, D] float32, representation of
    the global views [G·N, width]): the step's FLOPs.

    The encoder runs once per kind of view (their lengths differ); with ``jit_compile`` it is one
    XLA cluster. The projector runs outside it, on every view of the step at once: its BatchNorm
    all-reduces its statistics across replicas, and a cross-replica op cannot live inside one
    replica's compiled function (each may touch only its own device).
    """
    import tensorflow as tf

    def represent(global_views, local_views):
        representations = [encoder(global_views.x)]
        if local_views is not None:
            representations.append(encoder(local_views.x, token_mask=local_views.token_mask))
        return representations

    represent = tf.function(represent, jit_compile=True, autograph=False) if jit_compile else represent
    view_count = view_config.global_views

    def embed(global_views, local_views):
        representations = represent(global_views, local_views)
        views = view_count + (view_config.local_views if local_views is not None else 0)
        z = projector(tf.concat(representations, axis=0), training=True)
        return tf.cast(tf.reshape(z, (views, per_replica, -1)), tf.float32), representations[0]

    return embed


def loss_and_gradients(embed, variables, global_views, local_views, step, config, scale=1.0):
    """In a replica context: (this replica's loss shares, gradients of the *global* loss, z,
    the global views' representation).

    The gradients are summed over replicas here, once, so that everything after (norm, clipping,
    the update) sees the same numbers on every replica; with `scale` (fp16 loss scaling) the loss is
    scaled before differentiating and the gradients unscaled after the sum.
    """
    import tensorflow as tf

    from training import loss

    context = tf.distribute.get_replica_context()
    with tf.GradientTape() as tape:
        z, representation = embed(global_views, local_views)
        terms = loss.lejepa(z, config.views.global_views, step, config.run.seed, config.loss)
        scaled = terms["loss"] * scale
    gradients = [tf.cast(g, tf.float32) for g in tape.gradient(scaled, variables)]
    if context.num_replicas_in_sync > 1:
        gradients = context.all_reduce(tf.distribute.ReduceOp.SUM, gradients)
    return terms, [g / scale for g in gradients], z, representation


def _scalar_metadata():
    from tensorflow.core.framework import summary_pb2

    return summary_pb2.SummaryMetadata(plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"))


def _report(record: dict[str, float], steps: int, writer, metrics_file, tf) -> None:
    done = record["step"]
    eta = (steps - done) / max(record["steps_per_s"], 1e-9)
    log.info("step %d/%d  loss %.4f  inv %.4f  sigreg %.3f  lr %.2e  |g| %.3f  z std %.3f rank %.1f  "
             "repr std %.3f rank %.1f  %.1f ex/s  %.2f steps/s  eta %dm%02ds", done, steps, record["loss"],
             record["invariance"], record["sigreg"], record["learning_rate"], record["grad_norm"],
             record["embedding_std"], record["effective_rank"], record["representation_std"],
             record["representation_rank"], record["examples_per_s"], record["steps_per_s"], eta // 60, eta % 60)
    with writer.as_default(step=done):
        for tag, key in SCALARS.items():
            # tf.summary.write with the scalars plugin's metadata is what tf.summary.scalar does,
            # minus the dependency on the tensorboard package (not needed to train).
            tf.summary.write(tag, tf.constant(record[key], tf.float32), metadata=_scalar_metadata())
    writer.flush()
    if metrics_file:
        metrics_file.write(json.dumps(record) + "\n")
        metrics_file.flush()
    sys.stdout.flush()

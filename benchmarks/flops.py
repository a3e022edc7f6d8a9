"""Model FLOPs per example of the training step: counted in XLA's compiled program, and by formula.

Counted: the step's encoder + projector + LeJEPA loss and its gradient with respect to every
trainable variable (``training.train.loss_and_gradients``, as the step runs it) is lowered and
optimised by XLA for the real view shapes, and every ``dot`` and ``convolution`` of the optimised
HLO module adds 2 × (output elements) × (elements contracted per output). TensorFlow 2.21 has no
Python handle on XLA's cost analysis, so the HLO text is read; the optimised module, not the
lowered one, because TensorFlow's gradient of a convolution also emits the input gradient, which
XLA then drops as dead code (views are inputs, nothing needs their gradient). The forward pass is
counted the same way in a second program that computes the loss alone; the backward pass is the
difference (XLA's own instructions, such as the attention products it fuses, carry no name that
would tell the passes apart). Element-wise ops are left out, as model-FLOP counts do (they are
memory-bound and a small share here).

Analytic, per view of ``P`` patches and ``L = P + 1`` tokens of width ``D``: the patch convolution
2·P·(16·16·channels)·D; per block 2·L·(4·D² + 2·D·mlp) for the dense layers and 4·L²·D for the
two attention products; the projector 2·(D·hidden + hidden² + hidden·dim); SIGReg's projection
2·dim·directions. Backward costs twice the forward, except the patch convolution and SIGReg's
projection, whose other operand (the view, the random directions) needs no gradient: once.

    python -m benchmarks.flops [--models tiny small base]
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import re

log = logging.getLogger("benchmarks.flops")

_SHAPE = r"[a-z]+[0-9]*\[([0-9,]*)\]"
_DEFINITION = re.compile(r"^\s*(?:ROOT\s+)?%([\w.\-]+) = " + _SHAPE + r"(?:\{[^}]*\})? (dot|convolution|[\w\-]+)\((.*)$")
_OPERAND = re.compile(r"(?:" + _SHAPE + r"(?:\{[^}]*\})?\s+)?%([\w.\-]+)")


def _dims(text: str) -> list[int]:
    return [int(d) for d in text.split(",") if d]


def _attribute(rest: str, name: str) -> str:
    match = re.search(name + r"=\{?([^},\s]*(?:,[^},\s]*)*)\}?", rest)
    return match.group(1) if match else ""


def hlo_flops(hlo: str) -> int:
    """FLOPs of the dots and convolutions of an HLO module's text."""
    shapes: dict[str, list[int]] = {}
    products = []
    for line in hlo.splitlines():
        match = _DEFINITION.match(line)
        if not match:
            continue
        name, dims, opcode, rest = match.groups()
        shapes[name] = _dims(dims)
        if opcode in ("dot", "convolution"):
            products.append((opcode, _dims(dims), rest))
    total = 0
    for opcode, output, rest in products:
        arguments = rest[:rest.index(")")]
        operands = [_dims(m.group(1)) if m.group(1) is not None else shapes[m.group(2)]
                    for m in _OPERAND.finditer(arguments)]
        if opcode == "dot":
            contracting = _attribute(rest, "lhs_contracting_dims").split(",")
            contracted = math.prod(operands[0][int(i)] for i in contracting if i)
        else:
            # dim_labels=b01f_01io->b01f: the kernel's spatial dimensions (digits) and its input features (i).
            kernel_labels = _attribute(rest, "dim_labels").split("_")[1].split("->")[0]
            contracted = math.prod(size for label, size in zip(kernel_labels, operands[1])
                                   if label.isdigit() or label == "i")
        total += 2 * math.prod(output) * contracted
    return total


def counted_flops(config, mels: int = 256, channels: int = 2) -> dict[str, float]:
    """Counted FLOPs per example (clip, all its views) of `config`'s model and views."""
    import keras
    import tensorflow as tf

    from training import loss
    from training.vit import model as vit
    from training.train import loss_and_gradients, make_embed
    from training.views import Views

    keras.mixed_precision.set_global_policy("float32")  # FLOPs do not depend on the precision
    views = config.views
    encoder, projector = vit.build_models(config.model, mels, channels)
    variables = encoder.trainable_variables + projector.trainable_variables
    embed = make_embed(encoder, projector, views, per_replica=1)
    local_tokens = math.prod(vit.grid_size(mels, views.local_frames, config.model.patch, config.model.stride))

    def inputs(global_x, local_x, token_mask):
        return Views(global_x, None), Views(local_x, token_mask) if views.local_views else None

    def loss_only(*arguments):
        z, _ = embed(*inputs(*arguments))
        return loss.lejepa(z, views.global_views, tf.constant(0, tf.int64), config.run.seed, config.loss)["loss"]

    def loss_and_grads(*arguments):
        return loss_and_gradients(embed, variables, *inputs(*arguments), tf.constant(0, tf.int64), config)

    specs = (tf.TensorSpec([views.global_views, mels, views.global_frames, channels], tf.float32),
             tf.TensorSpec([views.local_views, mels, views.local_frames, channels], tf.float32),
             tf.TensorSpec([views.local_views, local_tokens], tf.bool))

    def counted(function) -> int:
        compiled = tf.function(function, jit_compile=True)
        return hlo_flops(compiled.experimental_get_compiler_ir(*specs)(stage="optimized_hlo"))

    forward, both = counted(loss_only), counted(loss_and_grads)
    return {"forward": forward, "backward": both - forward, "forward_backward": both}


def analytic_flops(config, mels: int = 256, channels: int = 2) -> dict[str, float]:
    """The formula of the module docstring, per example."""
    from training.vit.model import grid_size

    model, views = config.model, config.views
    width, hidden = model.width, model.projector_hidden
    pooled = width * (2 if model.pool == "cls+mean" else 1)
    projector = 2 * (pooled * hidden + hidden * hidden + hidden * model.projector_dim)
    sigreg = 2 * model.projector_dim * config.loss.directions
    forward = once = 0
    for count, frames in ((views.global_views, views.global_frames), (views.local_views, views.local_frames)):
        patches = math.prod(grid_size(mels, frames, model.patch, model.stride))
        tokens = patches + 1
        patch_embed = 2 * patches * model.patch * model.patch * channels * width
        block = 2 * tokens * (4 * width * width + 2 * width * model.mlp_dim) + 4 * tokens * tokens * width
        forward += count * (patch_embed + model.depth * block + projector + sigreg)
        once += count * (patch_embed + sigreg)
    backward = 2 * forward - once
    return {"forward": forward, "backward": backward, "forward_backward": forward + backward}


def model_flops(size: str, base_config=None) -> dict[str, object]:
    """Counted and analytic FLOPs per example of one model size, and how far apart they are."""
    from training.config import Config

    config = (base_config or Config()).replace(**{"model.size": size})
    counted, analytic = counted_flops(config), analytic_flops(config)
    log.info("%s: %.3g forward + backward FLOPs per example counted, %.3g by formula", size,
             counted["forward_backward"], analytic["forward_backward"])
    return {
        "counted": counted, "analytic": analytic,
        "counted_over_analytic": round(counted["forward_backward"] / analytic["forward_backward"], 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["tiny", "small", "base"])
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    print(json.dumps({"benchmark": "flops", "unit": "FLOPs per example (all views of one clip)",
                      **{size: model_flops(size) for size in args.models}}))


if __name__ == "__main__":
    main()

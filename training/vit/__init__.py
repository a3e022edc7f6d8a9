"""The ViT encoder of MyGO: its model sizes here, its Keras layers in ``training.vit.model``.

Sizes are a table looked up by name, big_vision style (``--model tiny|small|base``; ``--width``
and friends override one number of the chosen size), kept beside the layers that read them.

Why a package and not one module as big_vision's ``vit.py``: ``training.config`` builds the
command line from this table (``--model``'s choices), and ``python -m training train --help``, or
a misspelt ``--model``, is answered before TensorFlow is imported (seconds sooner). So the table
cannot share a module with the Keras layers: this ``__init__`` is plain Python, and
``training.vit.model``, imported only where a model is built, holds the layers.
"""
from __future__ import annotations

# width, depth, heads, MLP width, projector hidden width, embedding (projector output) width
MODEL_SIZES: dict[str, dict[str, int]] = {
    # CPU tests and laptops: ~0.2 M parameters.
    "tiny": dict(width=64, depth=2, heads=2, mlp_dim=128, projector_hidden=256, projector_dim=64),
    # ViT-S/16-like.
    "small": dict(width=384, depth=12, heads=6, mlp_dim=1536, projector_hidden=2048, projector_dim=128),
    # ViT-B/16.
    "base": dict(width=768, depth=12, heads=12, mlp_dim=3072, projector_hidden=2048, projector_dim=128),
}

#: Default peak learning rate per model size (``--lr`` overrides it). AdamW moves each weight by
#: about the learning rate per step whatever the batch, so it is not scaled with ``--batch``.
#: tiny: measured (docs/design.md, "Learning rate"); small and base: the usual ViT-S/B AdamW peaks.
LEARNING_RATES: dict[str, float] = {"tiny": 3e-3, "small": 5e-4, "base": 3e-4}

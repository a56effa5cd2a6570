"""Model factories: each returns `(model, example_inputs)` with random weights, batch size 1.

`names()` lists what `zoo:NAME` accepts; `edgewise.zoo.spec.load_model` builds one.
"""
from __future__ import annotations

from typing import Callable

from edgewise.zoo import llm, small, vision

FACTORIES: dict[str, Callable[..., tuple]] = {
    "alexnet": vision.alexnet,
    "efficientnet_b0": vision.efficientnet_b0,
    "googlenet": vision.googlenet,
    "inception_v3": vision.inception_v3,
    "mobilenet_v2": vision.mobilenet_v2,
    "mobilenet_v3_small": vision.mobilenet_v3_small,
    "resnet18": vision.resnet18,
    "resnet50": vision.resnet50,
    "vgg16": vision.vgg16,
    "vit_b_16": vision.vit_b_16,
    "mlp": small.mlp,
    "mlp_mixer": small.mlp_mixer,
    "unet": small.unet,
    "m5": small.m5,
    "gpt2": llm.gpt2,
    "gpt2-xl": llm.gpt2_xl,
    "llama": llm.llama,
}


def names() -> list[str]:
    return sorted(FACTORIES)

"""Torchvision image models with random weights (nothing is downloaded).

Each factory returns `(model, example_inputs)`: the model in eval mode and a batch of one
random image. `image_size` defaults to the size the architecture was designed for; tests pass
a smaller one where the architecture allows it (adaptive pooling makes most CNNs size-agnostic).
"""
from __future__ import annotations

from typing import Callable

import torch
import torchvision.models as tvm
from torch import nn


def _image_model(model: nn.Module, image_size: int) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    return model.eval(), (torch.randn(1, 3, image_size, image_size),)


def _torchvision(build: Callable[..., nn.Module], **kwargs) -> Callable[..., tuple]:
    def factory(image_size: int = 224) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
        return _image_model(build(weights=None, **kwargs), image_size)
    factory.__doc__ = f"torchvision {build.__name__}, random weights."
    return factory


resnet18 = _torchvision(tvm.resnet18)
resnet50 = _torchvision(tvm.resnet50)
mobilenet_v2 = _torchvision(tvm.mobilenet_v2)
mobilenet_v3_small = _torchvision(tvm.mobilenet_v3_small)
efficientnet_b0 = _torchvision(tvm.efficientnet_b0)
vgg16 = _torchvision(tvm.vgg16)
alexnet = _torchvision(tvm.alexnet)
# GoogLeNet's inception blocks concatenate four branches; the auxiliary heads only run in training.
googlenet = _torchvision(tvm.googlenet, aux_logits=False, init_weights=True)


def inception_v3(image_size: int = 299) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    """torchvision inception_v3 (concat branches), random weights; needs image_size >= 75."""
    return _image_model(tvm.inception_v3(weights=None, aux_logits=False, init_weights=True),
                        image_size)


def vit_b_16(image_size: int = 224) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    """torchvision ViT-B/16, random weights; image_size must be a multiple of 16."""
    return _image_model(tvm.vit_b_16(weights=None, image_size=image_size), image_size)

"""Where a run's inputs come from: a tensor file, a folder of images, or N random inputs.

Every source yields input k as a tuple shaped like the model's example inputs (batch
included), so a stage-0 worker on any host can produce exactly the inputs it serves.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from edgewise.errors import EdgewiseError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}


def input_source(spec: str | None, example_inputs: tuple) -> tuple[Callable[[int], tuple], int | None]:
    """(input k -> tuple, how many inputs the source holds or None for unbounded)."""
    if spec is None or spec.isdigit():
        return (lambda k: random_input(example_inputs, k)), None
    path = Path(spec)
    if not path.exists():
        raise EdgewiseError(f"--inputs {spec}: no such file or folder (give a .pt tensor file, "
                            "a folder of images, or a number of random inputs)")
    if path.is_dir():
        return _images(path, example_inputs)
    return _tensors(path, example_inputs)


def random_input(example_inputs: tuple, k: int) -> tuple:
    """Input k of a reproducible random stream shaped like the example inputs."""
    g = torch.Generator().manual_seed(1000 + k)
    out = []
    for x in example_inputs:
        if x.dtype.is_floating_point:
            out.append(torch.randn(x.shape, generator=g, dtype=x.dtype))
        else:  # token ids and the like: stay inside the example's range
            hi = max(int(x.max()) + 1, 2)
            out.append(torch.randint(0, hi, x.shape, generator=g, dtype=x.dtype))
    return tuple(out)


def _tensors(path: Path, example_inputs: tuple):
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise EdgewiseError(f"--inputs {path}: not a readable torch tensor file ({type(e).__name__})") from e
    items = data if isinstance(data, (list, tuple)) else [data]
    if len(items) != len(example_inputs) or not all(isinstance(t, torch.Tensor) for t in items):
        raise EdgewiseError(f"--inputs {path}: expected {len(example_inputs)} tensor(s) stacked "
                            f"along a first dimension of inputs, got {type(data).__name__}")
    for t, x in zip(items, example_inputs):
        if tuple(t.shape[1:]) != tuple(x.shape[1:]) or t.dtype != x.dtype:
            raise EdgewiseError(f"--inputs {path}: tensor of shape {tuple(t.shape)} {t.dtype} does not stack "
                                f"inputs shaped {tuple(x.shape)} {x.dtype} (want [N, *{tuple(x.shape[1:])}])")
    n = items[0].shape[0] // example_inputs[0].shape[0]
    if n == 0 or any(t.shape[0] != items[0].shape[0] for t in items):
        raise EdgewiseError(f"--inputs {path}: the tensors hold no whole input or disagree in count")
    b = example_inputs[0].shape[0]
    return (lambda k: tuple(t[(k % n) * b:(k % n + 1) * b].clone() for t in items)), n


def _images(folder: Path, example_inputs: tuple):
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise EdgewiseError(f"--inputs {folder}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in the folder")
    x = example_inputs[0]
    if len(example_inputs) != 1 or x.dim() != 4 or x.shape[1] not in (1, 3):
        raise EdgewiseError(f"--inputs {folder}: images need a model taking one [N, C, H, W] tensor, "
                            f"this one takes {[tuple(t.shape) for t in example_inputs]}")
    from PIL import Image
    from torchvision.transforms.functional import pil_to_tensor, resize

    def load(k: int) -> tuple:
        path = files[k % len(files)]
        try:
            img = Image.open(path).convert("RGB" if x.shape[1] == 3 else "L")
        except Exception as e:
            raise EdgewiseError(f"--inputs {path}: not a readable image ({type(e).__name__})") from e
        t = resize(pil_to_tensor(img), list(x.shape[2:]), antialias=True).to(x.dtype) / 255.0
        return (t.unsqueeze(0).expand(x.shape[0], -1, -1, -1).contiguous(),)

    return load, len(files)

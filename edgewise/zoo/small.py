"""Small models written here, one per family the planner must handle: a plain MLP chain,
an MLP-Mixer, a U-Net with long skips and an M5-style 1-D audio convnet. Random weights."""
from __future__ import annotations

import torch
from torch import nn


def mlp(width: int = 512, depth: int = 6, in_features: int = 784, classes: int = 10):
    """A plain chain: an nn.Sequential of Linear + ReLU, the simplest pipeline to split."""
    layers: list[nn.Module] = []
    for i in range(depth):
        layers += [nn.Linear(in_features if i == 0 else width, width), nn.ReLU()]
    layers.append(nn.Linear(width, classes))
    return nn.Sequential(*layers).eval(), (torch.randn(1, in_features),)


class MixerBlock(nn.Module):
    def __init__(self, tokens: int, dim: int, token_hidden: int, channel_hidden: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.token_mlp = nn.Sequential(nn.Linear(tokens, token_hidden), nn.GELU(),
                                       nn.Linear(token_hidden, tokens))
        self.norm2 = nn.LayerNorm(dim)
        self.channel_mlp = nn.Sequential(nn.Linear(dim, channel_hidden), nn.GELU(),
                                         nn.Linear(channel_hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Token mixing acts across patches, so it runs on the transposed (B, dim, tokens) view.
        x = x + self.token_mlp(self.norm1(x).transpose(1, 2)).transpose(1, 2)
        return x + self.channel_mlp(self.norm2(x))


class MlpMixer(nn.Module):
    def __init__(self, image_size: int, patch: int, dim: int, depth: int, classes: int):
        super().__init__()
        tokens = (image_size // patch) ** 2
        self.stem = nn.Conv2d(3, dim, kernel_size=patch, stride=patch)
        self.blocks = nn.Sequential(*[MixerBlock(tokens, dim, dim // 2, dim * 4)
                                      for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x).flatten(2).transpose(1, 2)          # (B, tokens, dim)
        x = self.norm(self.blocks(x))
        return self.head(x.mean(dim=1))


def mlp_mixer(image_size: int = 224, patch: int = 16, dim: int = 256, depth: int = 8,
              classes: int = 1000):
    """A small MLP-Mixer (Tolstikhin et al. 2021): no attention, token- and channel-MLPs."""
    return (MlpMixer(image_size, patch, dim, depth, classes).eval(),
            (torch.randn(1, 3, image_size, image_size),))


def _double_conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(),
                         nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU())


class UNet(nn.Module):
    """Encoder-decoder whose decoder concatenates the encoder's feature maps (long skips)."""

    def __init__(self, in_channels: int = 3, classes: int = 2, base: int = 16, levels: int = 4):
        super().__init__()
        widths = [base * 2 ** i for i in range(levels + 1)]
        self.down = nn.ModuleList([_double_conv(in_channels, widths[0])] +
                                  [_double_conv(widths[i], widths[i + 1]) for i in range(levels)])
        self.up = nn.ModuleList([nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2)
                                 for i in reversed(range(levels))])
        self.merge = nn.ModuleList([_double_conv(widths[i] * 2, widths[i])
                                    for i in reversed(range(levels))])
        self.head = nn.Conv2d(widths[0], classes, 1)
        self.pool = nn.MaxPool2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else self.pool(x))
            skips.append(x)
        skips.pop()                                          # the bottleneck is not a skip
        for up, merge in zip(self.up, self.merge):
            x = merge(torch.cat([up(x), skips.pop()], dim=1))
        return self.head(x)


def unet(image_size: int = 128, base: int = 16, levels: int = 4):
    """A U-Net; image_size must be a multiple of 2**levels."""
    return UNet(base=base, levels=levels).eval(), (torch.randn(1, 3, image_size, image_size),)


def m5(samples: int = 8000, classes: int = 35, width: int = 32):
    """M5 (Dai et al. 2017): a 1-D convnet on raw audio, here one second at 8 kHz."""
    def block(cin: int, cout: int, kernel: int, stride: int = 1) -> list[nn.Module]:
        return [nn.Conv1d(cin, cout, kernel, stride=stride), nn.BatchNorm1d(cout), nn.ReLU(),
                nn.MaxPool1d(4)]
    model = nn.Sequential(*block(1, width, 80, stride=16), *block(width, width, 3),
                          *block(width, 2 * width, 3), *block(2 * width, 2 * width, 3),
                          nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(2 * width, classes))
    return model.eval(), (torch.randn(1, 1, samples),)

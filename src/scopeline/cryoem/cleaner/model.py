"""The compact U-Net that segments bad regions (needs torch; inference can use ONNX)."""

from __future__ import annotations

import torch
from torch import nn


def _double_conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    """U-Net with ``len(channels)`` levels; input (N, 1, H, W), H and W multiples of
    ``2 ** (levels - 1)``; output (N, 1, H, W) logits of "bad region"."""

    def __init__(self, channels: tuple[int, ...] = (8, 16, 32, 64)):
        super().__init__()
        self.channels = tuple(channels)
        self.down = nn.ModuleList()
        cin = 1
        for c in channels:
            self.down.append(_double_conv(cin, c))
            cin = c
        self.pool = nn.MaxPool2d(2)
        self.upsample = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
        self.up = nn.ModuleList(
            _double_conv(channels[i + 1] + channels[i], channels[i]) for i in reversed(range(len(channels) - 1))
        )
        self.head = nn.Conv2d(channels[0], 1, 1)

    @property
    def multiple(self) -> int:
        return 2 ** (len(self.channels) - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else self.pool(x))
            skips.append(x)
        for block, skip in zip(self.up, reversed(skips[:-1])):
            x = block(torch.cat([self.upsample(x), skip], dim=1))
        return self.head(x)


class MaxEnsemble(nn.Module):
    """Several U-Nets read as one: the elementwise maximum of their logits (a pixel is as
    bad as the most suspicious member says). Members trained from different seeds miss
    different real carbon (docs/clean.md, "Session 7"); the maximum keeps what any of them
    finds, and the image-step rule (``regions.stepped_probability``) removes the false
    alarms this adds on clean ice."""

    def __init__(self, members: list[UNet]):
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = nn.ModuleList(members)
        self.channels = members[0].channels

    @property
    def multiple(self) -> int:
        return max(member.multiple for member in self.members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.members[0](x)
        for member in self.members[1:]:
            logits = torch.maximum(logits, member(x))
        return logits

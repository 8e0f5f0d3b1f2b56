"""A small convolutional network with BatchNorm, for 1x8x8 digits or 3x32x32 CIFAR images."""

from __future__ import annotations

import torch
from torch import nn

from curvscope._validate import check_int

__all__ = ["SmallCNN"]


def _conv_bn(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]


class SmallCNN(nn.Module):
    """Two stages of ``(conv3x3-BN-ReLU) x 2``, a 2x2 max-pool after each, global average
    pooling and a linear classifier.

    The parameter count barely depends on the input size: with the default ``width=64``,
    P = 260,682 for 1x8x8 digits and 261,834 for 3x32x32 CIFAR-10; ``width=32`` gives about
    66k. Inputs need ``H, W >= 4`` (8x8 digits -> 2x2 after the two pools).

    Args:
        in_channels: 1 for digits, 3 for CIFAR.
        num_classes: output size.
        width: channels of the first stage; the second stage has twice as many.
    """

    def __init__(self, in_channels: int, num_classes: int, *, width: int = 64) -> None:
        super().__init__()
        width = check_int("width", width, minimum=1, expected="a positive integer")
        w1, w2 = width, 2 * width
        self.features = nn.Sequential(
            *_conv_bn(in_channels, w1),
            *_conv_bn(w1, w1),
            nn.MaxPool2d(2),
            *_conv_bn(w1, w2),
            *_conv_bn(w2, w2),
            nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.classifier = nn.Linear(w2, num_classes)

    @property
    def num_parameters(self) -> int:
        """P, the number of trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))

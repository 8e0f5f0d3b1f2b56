"""Pre-activation ResNets for 32x32 images (He et al. 2016), the CIFAR variant of paper 000.

Three stages of widths 16/32/64 on 32/16/8 pixels. Depth ``d >= 44`` uses bottleneck blocks
(expansion 4, ``(d - 2) / 9`` blocks per stage), as the SWA code (Izmailov et al.) that paper
000 trains with; smaller depths use basic blocks (``(d - 2) / 6`` per stage). A final BN-ReLU,
global average pooling and a linear layer follow. PreResNet-110 has 12 bottleneck blocks per
stage and P = 1,146,842 (CIFAR-10) / 1,169,972 (CIFAR-100) (spec/theory.md §1.8).
"""

from __future__ import annotations

import torch
from torch import nn

from curvscope._validate import check_int
from curvscope.errors import InputError

__all__ = ["PreResNet"]


class _BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int, shortcut: nn.Module | None) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.shortcut = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(torch.relu(self.bn1(x)))
        out = self.conv2(torch.relu(self.bn2(out)))
        return out + (x if self.shortcut is None else self.shortcut(x))


class _Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int, shortcut: nn.Module | None) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.shortcut = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(torch.relu(self.bn1(x)))
        out = self.conv2(torch.relu(self.bn2(out)))
        out = self.conv3(torch.relu(self.bn3(out)))
        return out + (x if self.shortcut is None else self.shortcut(x))


class PreResNet(nn.Module):
    """Pre-activation ResNet of a given depth for ``(C, 32, 32)`` inputs.

    Args:
        depth: 6n + 2 with basic blocks (20, 32, 38) or 9n + 2 >= 44 with bottlenecks (110, 164).
        num_classes: output size.
        in_channels: input channels (3 for CIFAR).

    Example:
        >>> PreResNet(110, num_classes=10).num_parameters
        1146842
    """

    def __init__(self, depth: int = 110, num_classes: int = 10, *, in_channels: int = 3) -> None:
        super().__init__()
        depth = check_int("depth", depth, expected="an integer")
        if depth >= 44 and (depth - 2) % 9 == 0:
            block: type[_BasicBlock] | type[_Bottleneck] = _Bottleneck
            n = (depth - 2) // 9
        elif 8 <= depth < 44 and (depth - 2) % 6 == 0:
            block, n = _BasicBlock, (depth - 2) // 6
        else:
            raise InputError(
                f"PreResNet depth {depth} is not a valid depth: use 6n+2 below 44 (basic "
                "blocks: 8, 14, 20, 26, 32, 38) or 9n+2 from 47 (bottlenecks: 47, 56, 110, 164)"
            )
        self.depth = depth
        self.conv1 = nn.Conv2d(in_channels, 16, 3, padding=1, bias=False)
        self._cin = 16
        self.layer1 = self._stage(block, 16, n, stride=1)
        self.layer2 = self._stage(block, 32, n, stride=2)
        self.layer3 = self._stage(block, 64, n, stride=2)
        self.bn = nn.BatchNorm2d(64 * block.expansion)
        self.fc = nn.Linear(64 * block.expansion, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def _stage(self, block: type, planes: int, n: int, stride: int) -> nn.Sequential:
        cout = planes * block.expansion
        shortcut = None
        if stride != 1 or self._cin != cout:
            shortcut = nn.Conv2d(self._cin, cout, 1, stride=stride, bias=False)
        blocks = [block(self._cin, planes, stride, shortcut)]
        self._cin = cout
        blocks += [block(cout, planes, 1, None) for _ in range(1, n)]
        return nn.Sequential(*blocks)

    @property
    def num_parameters(self) -> int:
        """P, the number of trainable parameters (BatchNorm affine parameters included)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layer3(self.layer2(self.layer1(self.conv1(x))))
        out = torch.relu(self.bn(out))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(out, 1), 1))

"""VGG16 with BatchNorm for 32x32 inputs (paper 000's VGG16-BN, the SWA-code variant)."""

from __future__ import annotations

import torch
from torch import nn

from curvscope.errors import InputError

__all__ = ["VGG16BN"]

_CFG16 = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


class VGG16BN(nn.Module):
    """Thirteen conv3x3(+bias)-BN-ReLU layers with five max-pools, then a 512-512-classes MLP.

    For 32x32 inputs the features end at 1x1x512. With BatchNorm affine parameters
    P = 15,299,748 for 100 classes (15,291,300 without them, the count paper 000 quotes;
    spec/theory.md §1.8).

    Args:
        num_classes: output size.
        in_channels: input channels (3 for CIFAR).
        dropout: dropout probability before each hidden classifier layer (0.5 in the SWA
            code paper 000 uses). Curvature is taken in eval mode, where dropout is off.
    """

    def __init__(
        self, num_classes: int = 10, *, in_channels: int = 3, dropout: float = 0.5
    ) -> None:
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise InputError(f"dropout must lie in [0, 1), got {dropout!r}")
        layers: list[nn.Module] = []
        cin = in_channels
        for v in _CFG16:
            if v == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers += [nn.Conv2d(cin, int(v), 3, padding=1), nn.BatchNorm2d(int(v)), nn.ReLU()]
                cin = int(v)
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(512, 512),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(512, 512),
            nn.ReLU(),
            nn.Linear(512, num_classes),
        )

    @property
    def num_parameters(self) -> int:
        """P, the number of trainable parameters (BatchNorm affine parameters included)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))

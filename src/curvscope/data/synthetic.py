"""Synthetic datasets: Gaussian blobs (paper 003 §3), random memorisation (paper 001 §6.4) and
random-input classification (paper 003 §2.2)."""

from __future__ import annotations

import math

import torch

from curvscope.data._base import TensorDataset
from curvscope.errors import InputError

__all__ = ["make_blobs", "make_random", "make_random_classes"]


def _check_positive_int(value: object, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"{what} must be a positive integer, got {value!r}")


def make_blobs(num_samples: int = 1000, *, std: float = 1.0, seed: int = 0) -> TensorDataset:
    """Two Gaussian blobs in the plane, centred at (1, 1) (class 0) and (-1, -1) (class 1).

    Paper 003 §3 (Sagun, Bottou & LeCun): the separability of the data, set by ``std``,
    changes the number of large Hessian eigenvalues. Classes alternate, so the two blobs have
    ``ceil(N/2)`` and ``floor(N/2)`` points.

    .. math:: x_n = (-1)^{y_n} (1, 1) + \\sigma z_n,\\quad z_n \\sim N(0, I_2)

    Args:
        num_samples: N, the number of points.
        std: sigma, the standard deviation of each coordinate around its centre.
        seed: seed of a local :class:`torch.Generator`.
    """
    _check_positive_int(num_samples, "num_samples")
    if isinstance(std, bool) or not isinstance(std, (int, float)) or not 0 < std < math.inf:
        raise InputError(
            f"std must be positive and finite (the blobs' spread), got {std!r}; e.g. std=1.0"
        )
    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(num_samples) % 2
    centres = torch.where(labels[:, None] == 0, 1.0, -1.0).expand(num_samples, 2)
    x = centres + std * torch.randn(num_samples, 2, generator=gen)
    return TensorDataset(x, labels.to(torch.int64), name="blobs", num_classes=2)


def make_random(
    num_samples: int = 1000, *, input_dim: int = 10, output_dim: int = 10, seed: int = 0
) -> TensorDataset:
    """Standard-normal inputs and standard-normal real targets, for MSE memorisation.

    Paper 001 §6.4 (Pennington & Bahri) trains on random data with random targets so that the
    network must memorise; targets are floats of shape ``(output_dim,)`` (a regression task).

    Args:
        num_samples: N.
        input_dim, output_dim: dimensions of inputs and targets.
        seed: seed of a local :class:`torch.Generator`.
    """
    for value, what in (
        (num_samples, "num_samples"),
        (input_dim, "input_dim"),
        (output_dim, "output_dim"),
    ):
        _check_positive_int(value, what)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(num_samples, input_dim, generator=gen)
    y = torch.randn(num_samples, output_dim, generator=gen)
    return TensorDataset(x, y, name="random", num_classes=None)


def make_random_classes(
    num_samples: int = 1000,
    *,
    input_dim: int = 784,
    num_classes: int = 10,
    labels: str = "random",
    seed: int = 0,
    teacher_seed: int | None = None,
) -> TensorDataset:
    """Standard-normal input vectors with class labels, random or from a random linear teacher.

    Paper 003 §2.2 (Sagun, Bottou & LeCun) keeps the MNIST network and replaces the inputs by
    "random patterns"; the distribution is unspecified, so (spec ``theory.md`` §4.1) the inputs
    are iid N(0, 1). ``labels="random"`` draws each label uniformly (nothing to learn but
    memorisation); ``labels="teacher"`` labels each input by a fixed random linear map,

    .. math:: y_n = \\arg\\max_k (x_n^T W)_k,\\quad W_{ik} \\sim N(0, 1),

    so the task is learnable and a test split drawn with another ``seed`` but the same
    ``teacher_seed`` shares the teacher.

    Args:
        num_samples: N.
        input_dim: length of each input vector (784 = 28 x 28 as in the paper).
        num_classes: number of classes (>= 2).
        labels: ``"random"`` or ``"teacher"``.
        seed: seed of the inputs (and of random labels).
        teacher_seed: seed of the teacher ``W`` (defaults to ``seed``).

    Example:
        >>> data = make_random_classes(6, input_dim=3, num_classes=2, labels="teacher")
        >>> data.input_shape, data.num_classes, data.task
        ((3,), 2, 'classification')
    """
    for value, what in ((num_samples, "num_samples"), (input_dim, "input_dim")):
        _check_positive_int(value, what)
    _check_positive_int(num_classes, "num_classes")
    if num_classes < 2:
        raise InputError(f"num_classes must be at least 2, got {num_classes}")
    if labels not in ("random", "teacher"):
        raise InputError(
            f"labels must be 'random' (uniform labels) or 'teacher' (argmax of a random linear "
            f"map), got {labels!r}"
        )
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(num_samples, input_dim, generator=gen)
    if labels == "random":
        y = torch.randint(num_classes, (num_samples,), generator=gen)
    else:
        teacher = torch.Generator().manual_seed(seed if teacher_seed is None else teacher_seed)
        w = torch.randn(input_dim, num_classes, generator=teacher)
        y = (x @ w).argmax(dim=1)
    return TensorDataset(x, y.to(torch.int64), name="random-classes", num_classes=num_classes)

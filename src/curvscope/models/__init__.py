"""curvscope.models: the model zoo (MLP, small CNN, PreResNet, VGG16-BN) and its registry."""

from curvscope.models.cnn import SmallCNN
from curvscope.models.mlp import ACTIVATIONS, MLP
from curvscope.models.preresnet import PreResNet
from curvscope.models.registry import MODELS, ModelSpec, build_model, count_parameters
from curvscope.models.vgg import VGG16BN

__all__ = [
    "ACTIVATIONS",
    "MLP",
    "MODELS",
    "VGG16BN",
    "ModelSpec",
    "PreResNet",
    "SmallCNN",
    "build_model",
    "count_parameters",
]

"""curvscope: exact, fast curvature spectra of neural networks.

Layers (imports point only downward): ``cli``/``report``/``plots`` -> ``experiments`` ->
``rmt`` / ``spectral`` -> ``operators`` -> ``data`` / ``models`` / ``training``.
"""

from curvscope import rmt
from curvscope._version import __version__

# data, models, training
from curvscope.data import AugmentedViews, ShiftFlip, TensorDataset, load_dataset
from curvscope.errors import (
    CurvscopeError,
    EngineVerificationError,
    InputError,
    MemoryLimitError,
    NonDeterministicError,
    NonFiniteError,
)
from curvscope.models import ModelSpec, build_model, count_parameters

# operators
from curvscope.operators import (
    DenseOperator,
    EmpiricalFisherOperator,
    FisherOperator,
    GGNOperator,
    GradientCovarianceOperator,
    HessianOperator,
    ResidualOperator,
    SymmetricOperator,
    minibatch_noise_scale,
    verify_engine,
)

# spectral
from curvscope.spectral import (
    EigenResult,
    ExactSpectrum,
    LanczosResult,
    SpectralDensity,
    TraceEstimate,
    exact_spectrum,
    hutchinson_trace,
    hutchpp_trace,
    lanczos,
    slq,
    top_eigenpairs,
)
from curvscope.training import Checkpoint, TrainConfig, TrainResult, load_checkpoint, train

__all__ = [
    "AugmentedViews",
    "Checkpoint",
    "CurvscopeError",
    "DenseOperator",
    "EigenResult",
    "EmpiricalFisherOperator",
    "EngineVerificationError",
    "ExactSpectrum",
    "FisherOperator",
    "GGNOperator",
    "GradientCovarianceOperator",
    "HessianOperator",
    "InputError",
    "LanczosResult",
    "MemoryLimitError",
    "ModelSpec",
    "NonDeterministicError",
    "NonFiniteError",
    "ResidualOperator",
    "ShiftFlip",
    "SpectralDensity",
    "SymmetricOperator",
    "TensorDataset",
    "TraceEstimate",
    "TrainConfig",
    "TrainResult",
    "__version__",
    "build_model",
    "count_parameters",
    "exact_spectrum",
    "hutchinson_trace",
    "hutchpp_trace",
    "lanczos",
    "load_checkpoint",
    "load_dataset",
    "minibatch_noise_scale",
    "rmt",
    "slq",
    "top_eigenpairs",
    "train",
    "verify_engine",
]

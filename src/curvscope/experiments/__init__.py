"""curvscope.experiments: one module per study, each a function ``frozen config -> result``.

- :func:`true_vs_empirical` — paper 000: Empirical vs augmented ("True") curvature spectra at
  a checkpoint's weights, with the Theorem-1 comparison (spec ``theory.md`` §1);
- :func:`split_half_noise` — the Theorem-1 noise scale by the split-half estimator (§1.4(a));
  :func:`per_sample_noise` — by the per-sample estimators (b), (c) of §1.4;
  :func:`noise_spectrum_check` — the split-half difference's spectrum against the semicircle.
"""

from curvscope.experiments.config import StudyConfig
from curvscope.experiments.noise import (
    HalfDifferenceOperator,
    NoiseEstimate,
    NoiseSpectrumCheck,
    PerSampleNoiseEstimate,
    noise_spectrum_check,
    per_sample_noise,
    split_half_noise,
)
from curvscope.experiments.registry import (
    STUDIES,
    Claim,
    FigureRef,
    Section,
    Study,
    Table,
    Text,
    get_study,
    register,
)
from curvscope.experiments.true_vs_empirical import (
    MATRICES,
    DataIdentity,
    ObservedExtremes,
    SetSummary,
    Theorem1Comparison,
    Theorem1Forward,
    Theorem1Reverse,
    TrueVsEmpiricalConfig,
    TrueVsEmpiricalResult,
    make_operator,
    summarize_density,
    theorem1_comparison,
    true_vs_empirical,
)

__all__ = [
    "MATRICES",
    "STUDIES",
    "Claim",
    "DataIdentity",
    "FigureRef",
    "HalfDifferenceOperator",
    "NoiseEstimate",
    "NoiseSpectrumCheck",
    "ObservedExtremes",
    "PerSampleNoiseEstimate",
    "Section",
    "SetSummary",
    "Study",
    "StudyConfig",
    "Table",
    "Text",
    "Theorem1Comparison",
    "Theorem1Forward",
    "Theorem1Reverse",
    "TrueVsEmpiricalConfig",
    "TrueVsEmpiricalResult",
    "get_study",
    "make_operator",
    "noise_spectrum_check",
    "per_sample_noise",
    "register",
    "split_half_noise",
    "summarize_density",
    "theorem1_comparison",
    "true_vs_empirical",
]

# Registered studies (each module registers itself on import).
from curvscope.experiments import paper000 as _paper000  # noqa: F401
from curvscope.experiments import paper001_critical as _paper001_critical  # noqa: F401
from curvscope.experiments import paper001_decomposition as _paper001_decomposition  # noqa: F401
from curvscope.experiments import paper002_alignment as _paper002_alignment  # noqa: F401
from curvscope.experiments import paper002_designed as _paper002_designed  # noqa: F401
from curvscope.experiments import paper002_fdr as _paper002_fdr  # noqa: F401
from curvscope.experiments import paper002_negative as _paper002_negative  # noqa: F401
from curvscope.experiments import paper002_toy as _paper002_toy  # noqa: F401
from curvscope.experiments import paper002_trace as _paper002_trace  # noqa: F401
from curvscope.experiments import paper002_valley as _paper002_valley  # noqa: F401
from curvscope.experiments import paper003_blobs as _paper003_blobs  # noqa: F401
from curvscope.experiments import paper003_fluctuation as _paper003_fluctuation  # noqa: F401
from curvscope.experiments import paper003_interpolation as _paper003_interpolation  # noqa: F401
from curvscope.experiments import paper003_width as _paper003_width  # noqa: F401

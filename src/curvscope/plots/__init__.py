"""curvscope.plots: figures from results (see ../shared/design.md); they never compute spectra.

- spectra: :func:`plot_stem` (paper 000 stem plots), :func:`plot_smoothed_density`,
  :func:`plot_spectrum` (both together);
- training: :func:`plot_training_curves`;
- theory: :mod:`curvscope.plots.theory` (laws, index curves, critical energy).
"""

# Figures of registered studies (each module registers its builder on import).
from curvscope.plots import paper001_critical as _paper001_critical  # noqa: F401
from curvscope.plots import paper001_decomposition as _paper001_decomposition  # noqa: F401
from curvscope.plots import paper002_alignment as _paper002_alignment  # noqa: F401
from curvscope.plots import paper002_designed as _paper002_designed  # noqa: F401
from curvscope.plots import paper002_fdr as _paper002_fdr  # noqa: F401
from curvscope.plots import paper002_negative as _paper002_negative  # noqa: F401
from curvscope.plots import paper002_toy as _paper002_toy  # noqa: F401
from curvscope.plots import paper002_trace as _paper002_trace  # noqa: F401
from curvscope.plots import paper002_valley as _paper002_valley  # noqa: F401
from curvscope.plots import paper003_blobs as _paper003_blobs  # noqa: F401
from curvscope.plots import paper003_fluctuation as _paper003_fluctuation  # noqa: F401
from curvscope.plots import paper003_interpolation as _paper003_interpolation  # noqa: F401
from curvscope.plots import paper003_width as _paper003_width  # noqa: F401
from curvscope.plots import true_vs_empirical as _true_vs_empirical  # noqa: F401
from curvscope.plots.spectra import plot_smoothed_density, plot_spectrum, plot_stem
from curvscope.plots.training import plot_training_curves

__all__ = ["plot_smoothed_density", "plot_spectrum", "plot_stem", "plot_training_curves"]

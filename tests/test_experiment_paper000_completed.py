"""The completed paper-000 study: estimators (b), (c), D against the semicircle and spectra at
training snapshots, checked against dense references and the claims against the result."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from curvscope.data import load_dataset
from curvscope.experiments.paper000 import (
    TrueVsEmpiricalStudyConfig,
    claims,
    run_true_vs_empirical_study,
    sections,
)
from curvscope.operators import HessianOperator
from curvscope.plots.true_vs_empirical import true_vs_empirical_figures
from curvscope.training import load_checkpoint, loss_function, snapshot_path


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory):
    state = tmp_path_factory.mktemp("study")
    config = TrueVsEmpiricalStudyConfig(
        model_options={"hidden": [4], "activation": "tanh"},
        epochs=2,
        views=2,
        num_steps=20,
        num_probes=2,
        noise_probes=4,
        estimator_samples=8,
        noise_spectrum_steps=10,
        spectra_at_epochs=(0, 2),
        dtype="float64",
    )
    return config, state, run_true_vs_empirical_study(config, state_dir=state)


def test_epoch_spectra_match_dense_hessians_of_the_snapshots(run) -> None:
    config, state, result = run
    assert [e.epoch for e in result.epoch_spectra] == [0, 2]
    for e in result.epoch_spectra:
        ckpt = load_checkpoint(snapshot_path(state / "train", e.epoch))
        train = load_dataset("digits", "train", seed=config.seed)
        x, y = train.get_batch(torch.arange(len(train)))
        op = HessianOperator(ckpt.model, loss_function(ckpt.config, train), [(x, y)])
        eigs = np.linalg.eigvalsh(op.to_dense().numpy())
        # Ritz values are inner bounds; the extremes converge fast (theory.md §1.7)
        assert eigs[0] - 1e-8 <= e.summary.smallest and e.summary.largest <= eigs[-1] + 1e-8
        assert e.summary.largest == pytest.approx(eigs[-1], rel=1e-6)
    last = result.epoch_spectra[-1].summary
    assert last.largest == pytest.approx(result.summaries["empirical"].largest, rel=1e-9)


def test_report_and_claims_come_from_the_result(run) -> None:
    _, _, result = run
    ps, d = result.per_sample_noise, result.noise_spectrum
    assert ps is not None and ps.num_samples == 8 and ps.num_probes == 4
    assert ps.ratio == pytest.approx(ps.sigma2_quadratic / ps.sigma2_frobenius)
    assert d is not None and d.edge == pytest.approx(2 * d.scale)
    titles = [s.title for s in sections(result)]
    assert "Noise estimators and Assumption 1" in titles and "Spectra during training" in titles
    (claim,) = [c for c in claims(result) if c.claim.startswith("Assumption 1")]
    inside = -1.25 * d.edge <= d.smallest and d.largest <= 1.25 * d.edge
    goe = inside and abs(d.kurtosis - 2) <= max(4 * d.kurtosis_stderr, 0.5)
    assert claim.verdict == ("agrees" if goe else "disagrees")
    assert f"{d.kurtosis:.3g}" in claim.ours
    figures = true_vs_empirical_figures(result)
    assert {"noise_spectrum", "epoch_extremes"} <= set(figures)


def test_rerun_resumes_to_the_same_result(run) -> None:
    config, state, result = run
    again = run_true_vs_empirical_study(config, state_dir=state)
    assert again.per_sample_noise == result.per_sample_noise
    for a, b in zip(again.epoch_spectra, result.epoch_spectra):
        assert a.summary.largest == b.summary.largest
    assert again.noise_spectrum.kurtosis == result.noise_spectrum.kurtosis

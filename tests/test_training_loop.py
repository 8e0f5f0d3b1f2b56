"""Training on digits, checkpoints and resume."""

from __future__ import annotations

import pytest
import torch

from curvscope.data import load_dataset
from curvscope.errors import InputError
from curvscope.training import TrainConfig, evaluate, load_checkpoint, train

FAST = TrainConfig(batch_size=64, weight_decay=1e-4, lr=0.2, epochs=4, seed=3)


def test_training_on_digits_learns_and_records_history(tmp_path):
    state = torch.random.get_rng_state()
    result = train(FAST, out=tmp_path, progress=False)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert [h["epoch"] for h in result.history] == [1, 2, 3, 4]
    # eq. 11 with x = t/T: epochs 0-2 (x <= 0.5) at alpha_0; epoch 3 (x = 0.75) on the ramp
    assert [h["lr"] for h in result.history] == pytest.approx(
        [0.2, 0.2, 0.2, 0.2 * (1 - 0.99 * 0.25 / 0.4)]
    )
    first, last = result.history[0], result.history[-1]
    assert last["train_loss"] < first["train_loss"] and last["test_accuracy"] > 0.6
    # the recorded test metrics are those of the returned model, recomputed independently
    test = load_dataset("digits", "test", seed=3)
    x, y = test.get_batch(torch.arange(len(test)))
    with torch.no_grad():
        out = result.model(x)
    assert last["test_accuracy"] == pytest.approx(float((out.argmax(1) == y).float().mean()))
    assert last["test_loss"] == pytest.approx(
        float(torch.nn.functional.cross_entropy(out, y)), rel=1e-5
    )
    ckpt = load_checkpoint(result.checkpoint, model="mlp")
    assert ckpt.epoch == 4 and ckpt.config == FAST and ckpt.history == result.history
    assert ckpt.num_parameters == 2410 and ckpt.version
    for p, q in zip(ckpt.model.parameters(), result.model.parameters()):
        assert torch.equal(p, q)


def test_resumed_run_equals_uninterrupted_run(tmp_path):
    cfg = FAST.replace(model="cnn", model_options={"width": 4}, epochs=3, batch_size=256)
    full = train(cfg, out=tmp_path / "full", progress=False)
    half = train(cfg, out=tmp_path / "half", stop_after=1, progress=False)
    assert half.epoch == 1
    resumed = train(cfg, out=tmp_path / "half", resume=half.checkpoint, progress=False)
    assert resumed.epoch == 3
    for (k, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), k  # weights and BatchNorm running statistics
    assert [h["train_loss"] for h in resumed.history] == [h["train_loss"] for h in full.history]


def test_augmentation_changes_training_and_seed_fixes_it():
    a = train(FAST.replace(epochs=1), progress=False)
    b = train(FAST.replace(epochs=1), progress=False)
    c = train(FAST.replace(epochs=1, augment=False), progress=False)
    pa, pb, pc = (next(r.model.parameters()) for r in (a, b, c))
    assert torch.equal(pa, pb) and not torch.equal(pa, pc)


def test_regression_on_random_data_uses_mse():
    cfg = TrainConfig(
        batch_size=50,
        weight_decay=0.0,
        data="random",
        lr=0.05,
        epochs=2,
        data_options={"num_samples": 200, "input_dim": 4, "output_dim": 2},
    )
    result = train(cfg, progress=False)
    data = load_dataset("random", num_samples=200, input_dim=4, output_dim=2)
    loss, acc = evaluate(result.model, data, torch.nn.MSELoss())
    assert result.history[-1]["train_loss"] == pytest.approx(loss) and acc is None


def test_checkpoint_errors(tmp_path):
    result = train(FAST.replace(epochs=1), out=tmp_path, progress=False)
    with pytest.raises(InputError, match="holds a 'mlp' model, but 'preresnet110' was asked"):
        load_checkpoint(result.checkpoint, model="preresnet110")
    with pytest.raises(InputError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "missing.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(InputError, match="is not a curvscope checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    with pytest.raises(InputError, match="differs in: lr"):
        train(FAST.replace(epochs=1, lr=0.3), resume=result.checkpoint, progress=False)

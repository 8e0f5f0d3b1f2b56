"""Callbacks, snapshots, the momentum buffer, replay of iterates, the training losses and the one
source of defaults."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from curvscope.errors import InputError
from curvscope.operators import GGNOperator, HessianOperator
from curvscope.training import (
    DIGITS_DEFAULTS,
    Callback,
    OneHotMSELoss,
    TrainConfig,
    flat_parameters,
    load_checkpoint,
    loss_function,
    one_hot_batches,
    replay,
    snapshot_path,
    train,
)

CFG = TrainConfig(
    batch_size=128, weight_decay=1e-4, lr=0.1, epochs=3, seed=5, model_options={"hidden": [8]}
)


def test_callbacks_snapshots_and_replay(tmp_path):
    seen = []

    def every_step(model, *, epoch, step, loss):
        seen.append((step, flat_parameters(model)))
        torch.randn(3)  # a measurement drawing random numbers must not change the run

    def spectrum(model, *, epoch, step, loss):
        return {"norm": float(flat_parameters(model).norm()), "loss": loss}

    cfg = CFG.replace(save_at=(0, 1, 3))
    result = train(
        cfg,
        out=tmp_path,
        progress=False,
        callbacks=[Callback(every_step, every=3, unit="step"), Callback(spectrum, name="norm")],
    )
    plain = train(CFG, progress=False)
    assert torch.equal(flat_parameters(result.model), flat_parameters(plain.model))
    # epoch callbacks after epochs 0..3 (epoch 0: the initial model, no loss yet)
    records = [m for m in result.measurements if m["name"] == "norm"]
    assert [m["epoch"] for m in records] == [0, 1, 2, 3] and records[0]["loss"] is None
    assert records[1]["loss"] == result.history[0]["train_loss"]
    assert records[-1]["norm"] == pytest.approx(float(flat_parameters(result.model).norm()))
    assert load_checkpoint(result.checkpoint).measurements == result.measurements
    # snapshots: same checkpoint format, weights of that epoch
    assert result.snapshots == [snapshot_path(tmp_path, e) for e in (0, 1, 3)]
    assert (tmp_path / "snapshots" / "epoch-0001.pt").is_file()
    snap0 = load_checkpoint(snapshot_path(tmp_path, 0))
    assert snap0.epoch == 0 and torch.equal(
        flat_parameters(snap0.model), flat_parameters(CFG_model(CFG))
    )
    snap3 = load_checkpoint(snapshot_path(tmp_path, 3))
    assert torch.equal(flat_parameters(snap3.model), flat_parameters(result.model))
    # replay from the epoch-1 snapshot repeats every 3rd iterate of the original run exactly
    steps = {s: p for s, p in seen}
    iterates = list(replay(snapshot_path(tmp_path, 1), epochs=2, every=3))
    assert iterates and all(it.step % 3 == 0 and it.epoch in (1, 2) for it in iterates)
    for it in iterates:
        assert torch.equal(it.parameters, steps[it.step])
    assert torch.equal(iterates[-1].parameters, flat_parameters(result.model))
    # the momentum buffer is torch's, in operator order
    assert iterates[-1].momentum.shape == iterates[-1].parameters.shape
    assert iterates[-1].momentum.abs().sum() > 0


def CFG_model(cfg):
    from curvscope.data import load_dataset
    from curvscope.models import ModelSpec

    data = load_dataset(cfg.data, "train", seed=cfg.seed)
    return ModelSpec(cfg.model, data.input_shape, data.num_outputs, cfg.model_options).build(
        seed=cfg.seed
    )


def test_momentum_buffer_matches_the_sgd_recursion(tmp_path):
    # one epoch on the snapshot: b = mu*b + g + wd*theta, theta -= lr*b, replayed by hand
    cfg = CFG.replace(epochs=1, save_at=(0,))
    train(cfg, out=tmp_path, progress=False)
    its = list(replay(snapshot_path(tmp_path, 0), every=1))
    for prev, cur in itertools.pairwise(its):
        assert torch.allclose(cur.parameters, prev.parameters - cur.lr * cur.momentum, atol=1e-7)


def test_callback_and_snapshot_errors(tmp_path):
    with pytest.raises(InputError, match="every must be an integer >= 1"):
        Callback(lambda model, **_: None, every=0)
    with pytest.raises(InputError, match="returned list; return a dict"):
        train(
            CFG.replace(epochs=1),
            progress=False,
            callbacks=[Callback(lambda model, **_: [1.0], name="bad")],
        )
    with pytest.raises(InputError, match=r"save_at=\(0,\) asks for snapshots, but out is None"):
        train(CFG.replace(save_at=(0,)), progress=False)
    with pytest.raises(InputError, match="snapshot after epoch 9, but the run has epochs=3"):
        CFG.replace(save_at=(9,))
    with pytest.raises(InputError, match="save_at must be a tuple of epochs"):
        CFG.replace(save_at="0,1")
    with pytest.raises(
        InputError,
        match=r"epochs must be an integer in 1\.\.1 \(the checkpoint is at epoch 0 of 1\)",
    ):
        train(CFG.replace(epochs=1, save_at=(0,)), out=tmp_path, progress=False)
        replay(snapshot_path(tmp_path, 0), epochs=4)


def test_old_config_dicts_still_load():
    old = CFG.to_dict()
    for key in ("label_smoothing", "save_at"):
        old.pop(key)
    old.update(epochs=30, lr=0.1)  # an older default
    cfg = TrainConfig.from_dict(old)
    assert cfg.label_smoothing == 0.0 and cfg.save_at == () and cfg.epochs == 30
    assert TrainConfig.from_dict({**CFG.to_dict(), "save_at": [3, 0]}).save_at == (0, 3)


def test_one_source_of_digits_defaults():
    from curvscope.cli import run as run_cli
    from curvscope.cli import train as train_cli

    cfg = TrainConfig(batch_size=1, weight_decay=0.0)
    assert (cfg.epochs, cfg.lr, cfg.final_ratio) == (
        DIGITS_DEFAULTS.epochs,
        DIGITS_DEFAULTS.lr,
        DIGITS_DEFAULTS.final_ratio,
    )
    params = {p.name: p.default for p in run_cli.run_command.params}
    assert params["epochs"] == DIGITS_DEFAULTS.epochs and params["lr"] == DIGITS_DEFAULTS.lr
    assert params["batch_size"] == DIGITS_DEFAULTS.batch_size
    tparams = {p.name: p.default for p in train_cli.train_command.params}
    assert tparams["batch_size"] == DIGITS_DEFAULTS.batch_size
    assert tparams["weight_decay"] == DIGITS_DEFAULTS.weight_decay


# --- losses ---------------------------------------------------------------------------------


def _dense_hessian(model, loss, x, y):
    named = [(n, p) for n, p in model.named_parameters()]
    sizes = [p.numel() for _, p in named]
    theta = torch.cat([p.detach().reshape(-1) for _, p in named])

    def f(t):
        chunks = torch.split(t, sizes)
        params = {n: c.view_as(p) for (n, p), c in zip(named, chunks)}
        return loss(torch.func.functional_call(model, params, (x,)), y)

    return torch.autograd.functional.hessian(f, theta)


def _tiny(seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3)).double()
    gen = torch.Generator().manual_seed(seed)
    return (
        model,
        torch.randn(12, 4, generator=gen, dtype=torch.float64),
        torch.randint(0, 3, (12,), generator=gen),
    )


def test_label_smoothed_cross_entropy_operator_matches_dense_hessian():
    cfg = TrainConfig(batch_size=32, weight_decay=0.0, loss="cross_entropy", label_smoothing=0.1)
    from curvscope.data import load_dataset

    loss = loss_function(cfg, load_dataset("digits", "train"))
    assert isinstance(loss, nn.CrossEntropyLoss) and loss.label_smoothing == 0.1
    model, x, y = _tiny()
    dense = _dense_hessian(model, loss, x, y)
    op = HessianOperator(model, loss, data=(x, y))
    eye = torch.eye(dense.shape[0], dtype=torch.float64)
    assert torch.allclose(op @ eye, dense, atol=1e-10)


def test_mse_onehot_loss_and_its_operator():
    from curvscope.data import load_dataset

    cfg = TrainConfig(batch_size=32, weight_decay=0.0, loss="mse_onehot")
    loss = loss_function(cfg, load_dataset("digits", "train"))
    assert isinstance(loss, OneHotMSELoss) and loss.num_classes == 10
    model, x, y = _tiny()
    loss = OneHotMSELoss(3)
    onehot = torch.zeros(12, 3, dtype=torch.float64)
    onehot[torch.arange(12), y] = 1.0
    # the training loss is nn.MSELoss on one-hot targets (mean over samples and classes)
    out = model(x)
    assert float(loss(out, y).detach()) == pytest.approx(
        float(((out - onehot) ** 2).mean()), rel=1e-15
    )
    # its curvature, through the operators' MSE with one-hot batches, is the dense Hessian/GGN
    dense = _dense_hessian(model, loss, x, y)
    batches = list(one_hot_batches([(x[:7], y[:7]), (x[7:], y[7:])], 3, dtype=torch.float64))
    eye = torch.eye(dense.shape[0], dtype=torch.float64)
    op = HessianOperator(model, loss.operator_loss(), data=batches)
    assert torch.allclose(op @ eye, dense, atol=1e-10)
    ggn = GGNOperator(model, loss.operator_loss(), data=batches) @ eye
    assert torch.allclose(ggn, ggn.T, atol=1e-12)
    with pytest.raises(InputError, match=r"expected 0\.\.2; set num_classes"):
        loss(out, torch.tensor([0, 1, 3] * 4))
    with pytest.raises(InputError, match=r"label_smoothing=0\.1 applies to cross-entropy only"):
        TrainConfig(batch_size=1, weight_decay=0.0, loss="mse_onehot", label_smoothing=0.1)
    with pytest.raises(InputError, match="mse_onehot needs class labels"):
        loss_function(
            TrainConfig(batch_size=1, weight_decay=0.0, loss="mse_onehot", data="random"),
            load_dataset("random"),
        )


def test_training_with_the_new_losses_runs():
    for loss, extra in (("cross_entropy", {"label_smoothing": 0.1}), ("mse_onehot", {})):
        r = train(CFG.replace(epochs=1, loss=loss, **extra), progress=False)
        # below the loss of a constant uniform guess (ln 10; 1/C = 0.1 for zero outputs)
        assert r.history[-1]["train_loss"] < (0.1 if loss == "mse_onehot" else 2.302)


def test_cli_train_save_at_writes_snapshots_into_the_folder(tmp_path):
    from click.testing import CliRunner

    from curvscope.cli import main

    out = tmp_path / "run"
    args = ["train", "--epochs", "2", "--hidden", "8", "--batch-size", "256", "--out", str(out)]
    res = CliRunner().invoke(main, [*args, "--save-at", "0,2"])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (out / "snapshots").iterdir()) == [
        "epoch-0000.pt",
        "epoch-0002.pt",
    ]
    assert load_checkpoint(out / "snapshots" / "epoch-0000.pt").epoch == 0
    assert load_checkpoint(out / "checkpoint.pt").config.save_at == (0, 2)
    res = CliRunner().invoke(main, [*args, "--save-at", "1,x", "--force"])
    assert res.exit_code != 0 and "expected comma-separated epochs such as 0,10,50" in res.output

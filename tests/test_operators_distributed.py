"""A 2-process gloo run (each rank its shard) equals the single-process run, also with dict
inputs and mean- or sum-reduced losses."""

from __future__ import annotations

import os
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from oracles import make_any_case, make_case, sample_slice

from curvscope.operators import GGNOperator, GradientCovarianceOperator, HessianOperator

KINDS = (HessianOperator, GGNOperator, GradientCovarianceOperator)


def _block(p: int) -> torch.Tensor:
    return torch.randn(p, 3, generator=torch.Generator().manual_seed(5), dtype=torch.float64)


def _worker(rank: int, world: int, port: int, out_dir: str) -> None:
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        torch.set_num_threads(1)
        case = make_case("cnn-batchnorm", "ce")
        # uneven shards on purpose: rank 0 gets 15 samples, rank 1 gets 8
        cut = 15
        lo, hi = (0, cut) if rank == 0 else (cut, case.inputs.shape[0])
        shard = (case.inputs[lo:hi], case.targets[lo:hi])
        results = {}
        for kind in KINDS:
            op = kind(case.model, case.loss_fn, shard, batch_size=4)
            results[kind.__name__] = op @ _block(op.shape[0])
            results[kind.__name__ + ".N"] = torch.tensor(op.num_data)
        torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
        dist.barrier()  # no rank tears gloo down while the other still talks to it
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_ranks_equal_one_process(tmp_path) -> None:
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    case = make_case("cnn-batchnorm", "ce")
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    for kind in KINDS:
        op = kind(case.model, case.loss_fn, (case.inputs, case.targets), batch_size=7)
        expected = op @ _block(op.shape[0])
        for r in ranks:
            assert int(r[kind.__name__ + ".N"]) == 23
            torch.testing.assert_close(r[kind.__name__], expected, rtol=1e-11, atol=1e-13)


def _dict_worker(rank: int, world: int, port: int, out_dir: str) -> None:
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        torch.set_num_threads(1)
        results = {}
        for reduction in ("mean", "sum"):
            case = make_any_case("dict", "ce", reduction)
            lo, hi = (0, 15) if rank == 0 else (15, 23)  # uneven shards
            shard = (sample_slice(case.inputs, lo, hi), case.targets[lo:hi])
            for kind in KINDS:
                op = kind(case.model, case.loss_fn, shard, batch_size=4)
                results[f"{kind.__name__}.{reduction}"] = op @ _block(op.shape[0])
                results[f"{kind.__name__}.{reduction}.N"] = torch.tensor(op.num_data)
        torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
        dist.barrier()  # no rank tears gloo down while the other still talks to it
    finally:
        dist.destroy_process_group()


def test_two_gloo_ranks_with_dict_inputs_equal_one_process(tmp_path) -> None:
    mp.spawn(_dict_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    for reduction in ("mean", "sum"):
        case = make_any_case("dict", "ce", reduction)
        for kind in KINDS:
            op = kind(case.model, case.loss_fn, (case.inputs, case.targets), batch_size=7)
            expected = op @ _block(op.shape[0])
            for r in ranks:
                assert int(r[f"{kind.__name__}.{reduction}.N"]) == 23
                torch.testing.assert_close(
                    r[f"{kind.__name__}.{reduction}"], expected, rtol=1e-11, atol=1e-13
                )

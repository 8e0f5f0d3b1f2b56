"""The Lanczos kernel: many probes in lockstep, full reorthogonalisation, checkpoint/resume.

Paper 000 §5 (spec ``theory.md`` §1.5): from a probe :math:`v`, :math:`q_1 = v/\\|v\\|` and for
:math:`j = 1, \\dots, m`

.. math::

    w = M q_j - \\beta_{j-1} q_{j-1}, \\quad \\alpha_j = q_j^\\top w, \\quad
    w \\leftarrow w - \\alpha_j q_j, \\quad
    w \\leftarrow w - Q_j (Q_j^\\top w) \\ (\\text{again if } \\|w\\| \\text{ fell below } 1/\\sqrt 2
    \\text{ of its value}), \\quad
    \\beta_j = \\|w\\|, \\quad q_{j+1} = w / \\beta_j,

which builds :math:`T_m = \\operatorname{tridiag}(\\beta, \\alpha, \\beta) = Q_m^\\top M Q_m`.
All ``num_probes`` probes advance together, so each step costs one block product ``M @ V`` with
``V`` of shape ``(P, num_probes)``; reorthogonalisation is a pair of batched matrix products
(two pairs at a step where the DGKS criterion asks for a second pass).
"""

from __future__ import annotations

import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.linalg
import torch

from curvscope._memory import available_memory, format_bytes
from curvscope._validate import check_int
from curvscope._version import __version__
from curvscope.errors import InputError, MemoryLimitError, NonFiniteError
from curvscope.operators.adapter import as_operator
from curvscope.persistence import savable
from curvscope.spectral.probes import check_probe_kind, draw_probes, make_generator

__all__ = ["LanczosResult", "basis_bytes", "check_basis_memory", "lanczos", "ritz_pairs"]

_CHECKPOINT_FORMAT = 2  # 2: adds the operator fingerprint
_FINGERPRINT_PROBE_SEED = 0x5EED
_WHAT_DIFFERS = {
    "operator": "a different operator (kind or options)",
    "weights": "different weights",
    "data": "different data",
    "matrix": "a different matrix",
}
_FRESH_START = "delete the file or pass a new checkpoint path to start afresh"


def ritz_pairs(
    alphas: np.ndarray, betas: np.ndarray, steps: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ritz values, Gauss weights and residual bounds of one probe's tridiagonal matrix.

    With :math:`T_s = U \\operatorname{diag}(\\theta) U^\\top` (a symmetric tridiagonal solver in
    float64), the weights are :math:`w_k = U_{1k}^2` (they sum to 1) and the residual bounds
    :math:`\\|M y_k - \\theta_k y_k\\| = \\beta_s |U_{sk}|` (spec §1.5).

    Args:
        alphas: diagonal, at least ``steps`` entries.
        betas: ``betas[j]`` is the norm after step ``j``; ``betas[:steps-1]`` is the off-diagonal
            and ``betas[steps-1]`` the residual norm.
        steps: the number of Lanczos steps ``s`` taken.

    Returns:
        ``(nodes, weights, residuals)``, each of length ``s``, nodes ascending.
    """
    diag = np.asarray(alphas[:steps], dtype=np.float64)
    off = np.asarray(betas[: steps - 1], dtype=np.float64)
    if steps == 1:
        nodes, vectors = diag.copy(), np.ones((1, 1))
    else:
        nodes, vectors = scipy.linalg.eigh_tridiagonal(diag, off)
    weights = vectors[0] ** 2
    residuals = abs(float(betas[steps - 1])) * np.abs(vectors[-1])
    return nodes, weights, residuals


@savable
@dataclass(frozen=True)
class LanczosResult:
    """Recurrence coefficients of Lanczos runs from ``num_probes`` probes.

    Attributes:
        alphas: ``(num_probes, num_steps)`` diagonals of :math:`T` (float64, 0 after ``steps``).
        betas: ``(num_probes, num_steps)``; ``betas[i, j] = ||w||`` after step ``j``. Entries
            ``< steps[i] - 1`` are the off-diagonal of :math:`T`; ``betas[i, steps[i]-1]`` is the
            residual norm that bounds the Ritz residuals.
        steps: ``(num_probes,)`` steps each probe took (fewer than ``num_steps`` after breakdown).
        breakdown: ``(num_probes,)`` whether the probe stopped early in an invariant subspace
            (then its Ritz values are exact eigenvalues).
        num_steps: steps requested (capped at P).
        num_probes, seed, probe, reorthogonalize: the inputs.
        size: P.
        dtype, device: of the products.
        timings: seconds spent in ``products``, ``reorthogonalization`` (all vector work: Gram-Schmidt,
            coefficients, normalisation), ``checkpoint`` and ``total``.
        num_products: block products ``op @ Q`` computed in this call (fewer when resumed):
            one per Lanczos step, each multiplying the columns of every still-active probe at
            once (one data pass of a curvature operator). Not a count of matrix-vector
            products: a run from scratch multiplies ``steps.sum()`` columns, the unit of
            ``num_matvecs`` elsewhere.
        second_passes: steps whose Gram-Schmidt ran a second pass (the DGKS criterion: the first
            pass removed more than ``1 - 1/sqrt(2)`` of some probe's norm); 0 without
            reorthogonalisation.
        version: curvscope version that computed it.
    """

    alphas: np.ndarray
    betas: np.ndarray
    steps: np.ndarray
    breakdown: np.ndarray
    num_steps: int
    num_probes: int
    seed: int
    probe: str
    reorthogonalize: bool
    size: int
    dtype: str
    device: str
    timings: dict[str, float] = field(default_factory=dict)
    num_products: int = 0
    second_passes: int = 0
    version: str = __version__

    def ritz(self, probe: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(nodes, weights, residuals)`` of probe ``probe``; see :func:`ritz_pairs`."""
        if not 0 <= probe < self.num_probes:
            raise InputError(f"probe index must be in [0, {self.num_probes}), got {probe}")
        return ritz_pairs(self.alphas[probe], self.betas[probe], int(self.steps[probe]))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _atomic_save(state: dict[str, Any], path: Path) -> None:
    # A unique temporary name: two processes writing the same checkpoint never share a file.
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _fingerprint_probe_product(op: Any) -> torch.Tensor:
    """``op @ v`` for a fixed seeded Gaussian probe: the identity of an operator that has no
    :meth:`~curvscope.operators.base.SymmetricOperator.fingerprint` (one extra product)."""
    gen = torch.Generator().manual_seed(_FINGERPRINT_PROBE_SEED)
    probe = torch.randn(op.shape[0], generator=gen, dtype=torch.float64)
    return (op @ probe.to(dtype=op.dtype, device=op.device)).double().cpu()


def _identity(op: Any) -> dict[str, Any]:
    fingerprint = op.fingerprint()
    if fingerprint is not None:
        return {"fingerprint": dict(fingerprint), "probe_product": None}
    return {"fingerprint": None, "probe_product": _fingerprint_probe_product(op)}


def _load_checkpoint(path: Path) -> dict[str, Any]:
    if path.is_dir():
        raise InputError(
            f"checkpoint {path} is a folder; pass the path of a file inside it "
            f"(e.g. {path / 'lanczos.pt'})"
        )
    try:
        state = torch.load(path, weights_only=True)
    except Exception as err:  # truncated, random bytes, another pickle: all unreadable
        raise InputError(
            f"checkpoint {path} ({path.stat().st_size:,} bytes) could not be read as a curvscope "
            f"Lanczos checkpoint ({type(err).__name__}); it is corrupt, truncated or another "
            f"kind of file: {_FRESH_START}"
        ) from None
    required = {"format", "done", "alphas", "betas", "steps", "breakdown", "basis", "generator"}
    if not isinstance(state, dict) or not required <= set(state):
        raise InputError(
            f"checkpoint {path} is not a curvscope Lanczos checkpoint (a readable file of another "
            f"kind); {_FRESH_START}"
        )
    if state["format"] != _CHECKPOINT_FORMAT:
        raise InputError(
            f"checkpoint {path} has format {state['format']!r}, this curvscope version reads "
            f"format {_CHECKPOINT_FORMAT} (it records what the run was computed on); "
            f"{_FRESH_START}"
        )
    return state


def _check_same_inputs(
    path: Path, state: dict[str, Any], inputs: dict[str, Any], op: Any, identity: dict[str, Any]
) -> None:
    for key, value in inputs.items():
        if state.get(key) != value:
            raise InputError(
                f"checkpoint {path} was written for {key}={state.get(key)!r}, but this call has "
                f"{key}={value!r}; call with the same operator and options, or {_FRESH_START}"
            )
    saved_fp, now_fp = state.get("fingerprint"), identity["fingerprint"]
    if saved_fp is not None and (now_fp is None or set(saved_fp) != set(now_fp)):
        raise InputError(
            f"checkpoint {path} was computed on a different kind of operator than "
            f"{type(op).__name__} (fingerprint keys {sorted(saved_fp)} there, "
            f"{sorted(now_fp) if now_fp is not None else 'none'} here); resume with the same "
            f"operator, or {_FRESH_START}"
        )
    if saved_fp is not None and now_fp is not None:
        for key in sorted(now_fp, key=lambda k: (k != "operator", k)):
            if saved_fp[key] != now_fp[key]:
                what = _WHAT_DIFFERS.get(key, f"a different {key}")
                raise InputError(
                    f"checkpoint {path} was computed on {what} ({key} digest {saved_fp[key]} "
                    f"there, {now_fp[key]} here); resume with the operator it was computed on, "
                    f"or {_FRESH_START}"
                )
        return
    # The run was computed on an operator without a fingerprint: compare probe products.
    now = identity["probe_product"]
    if now is None:
        now = _fingerprint_probe_product(op)
    saved = state.get("probe_product")
    if not isinstance(saved, torch.Tensor) or saved.shape != now.shape:
        raise InputError(
            f"checkpoint {path} records no usable operator fingerprint; {_FRESH_START}"
        )
    scale = max(float(saved.norm()), float(now.norm()), 1e-300)
    rel = float((saved - now).norm()) / scale
    if rel > float(torch.finfo(op.dtype).eps) ** 0.5:
        raise InputError(
            f"checkpoint {path} was computed on a different operator: its product with a fixed "
            f"probe differs by {rel:.2e} (relative); resume with the operator it was computed "
            f"on, or {_FRESH_START}"
        )


def basis_bytes(num_probes: int, num_steps: int, size: int, dtype: torch.dtype) -> int:
    """Bytes of the Krylov basis: ``num_probes * (num_steps + 1) * size`` numbers of ``dtype``."""
    return num_probes * (num_steps + 1) * size * torch.empty((), dtype=dtype).element_size()


def check_basis_memory(
    num_probes: int, num_steps: int, size: int, dtype: torch.dtype, store: torch.device
) -> None:
    """Raise :class:`MemoryLimitError` unless the Krylov basis (:func:`basis_bytes`) fits in the
    memory available on ``store``."""
    needed = basis_bytes(num_probes, num_steps, size, dtype)
    available = available_memory(store)
    if needed > available:
        raise MemoryLimitError(
            f"the Lanczos basis of num_probes * (num_steps + 1) * P = {num_probes} * "
            f"{num_steps + 1} * {size} {dtype} numbers needs {format_bytes(needed)} on {store}, "
            f"but only {format_bytes(available)} is available; use fewer probes or steps (e.g. "
            "several runs with fewer probes and different seeds, pooled), or "
            "basis_device='cpu' when the operator is on a GPU with less memory than the host"
        )


_DGKS = 2**-0.5


def _reorthogonalize(
    w: torch.Tensor, span: torch.Tensor, store: torch.device
) -> tuple[torch.Tensor, torch.Tensor | None, int]:
    """Classical Gram-Schmidt of the rows of ``w`` (k, P) against ``span`` (k, j+1, P).

    The three-term recurrence has already removed ``w``'s components along the last two basis
    vectors, where the cancellation happens, so what is left along the basis is at round-off
    level and one pass of classical Gram-Schmidt brings it to ``eps * ||w||``. A second pass runs
    only when the first removed more than the DGKS criterion allows, :math:`\\|w'\\| < \\|w\\| /
    \\sqrt 2` for some probe (Daniel, Gragg, Kaufman and Stewart 1976; "twice is enough"):
    then ``w`` had a large component in the span and one pass leaves ``eps * ||w||``, large
    against the new norm. The spec (theory.md §1.5) says "twice"; on the digits MLP (80 steps x
    10 probes, float32) the second pass never ran and the Ritz values agreed with two
    unconditional passes to 1e-7 (round-off of float32).

    Returns ``(w, its float64 norms or None after a second pass, passes beyond the first)``.
    """
    # Row-vector form: (k, 1, P) @ (k, P, j+1) then (k, 1, j+1) @ (k, j+1, P). Both are GEMMs
    # over the contiguous basis; the column form (k, j+1, P) @ (k, P, 1) is a batched GEMV that
    # measured 13x slower on a 2-core CPU (P = 4810, k = 10, j = 50).
    w_t = w.to(store).unsqueeze(1)  # (k, 1, P)
    before = torch.linalg.vector_norm(w_t, dim=2).double()
    w_t = w_t - torch.bmm(torch.bmm(w_t, span.transpose(1, 2)), span)
    norm: torch.Tensor | None = torch.linalg.vector_norm(w_t, dim=2, dtype=torch.float64)
    again = bool((norm < _DGKS * before).any())
    if again:
        w_t = w_t - torch.bmm(torch.bmm(w_t, span.transpose(1, 2)), span)
        norm = None
    return (
        w_t.squeeze(1).to(w.device),
        None if norm is None else norm[:, 0].to(w.device),
        int(again),
    )


def lanczos(
    op: Any,
    *,
    num_steps: int,
    num_probes: int = 1,
    seed: int = 0,
    probe: str = "rademacher",
    reorthogonalize: bool = True,
    basis_device: torch.device | str | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    checkpoint_every: int = 10,
    breakdown_tol: float | None = None,
    progress: bool = False,
) -> LanczosResult:
    """Run ``num_steps`` Lanczos steps from ``num_probes`` random probes in lockstep.

    Each step is one block product ``op @ V`` (``V`` of shape ``(P, num_probes)``), followed by
    classical Gram-Schmidt against the whole basis as batched matrix products (repeated when the
    DGKS criterion asks for it, see :func:`_reorthogonalize`). Recurrence
    coefficients are accumulated in float64. A probe whose new residual satisfies
    :math:`\\beta_j \\le \\text{tol} \\cdot \\max(|\\alpha_{1..j}|, \\beta_{1..j-1})` has reached an
    invariant subspace: it stops (its :math:`T` is exact) while the others go on.

    Args:
        op: a symmetric operator: a curvscope ``SymmetricOperator``, a
            ``scipy.sparse.linalg.LinearOperator`` or a square numpy array / torch tensor.
        num_steps: Lanczos steps m (capped at P, where the Krylov space is full).
        num_probes: independent probes, advanced together.
        seed: seed of the CPU ``torch.Generator`` the probes are drawn from.
        probe: ``"rademacher"`` (default) or ``"gaussian"``.
        reorthogonalize: full reorthogonalisation (classical Gram-Schmidt against the whole
            basis, a second pass where DGKS asks for it). ``False`` reproduces the plain
            three-term recurrence, whose loss of orthogonality produces ghost eigenvalues.
        basis_device: where the Krylov basis (``num_probes * (m + 1) * P`` numbers) lives; default
            the operator's device. ``"cpu"`` keeps it in host memory (the Gram-Schmidt then runs
            on the CPU) for operators on a GPU too small for it.
        checkpoint: a file path. The state (coefficients, basis, generator, step) is written
            atomically every ``checkpoint_every`` steps and at the end; if the file exists the run
            resumes from it (a larger ``num_steps`` extends it; a smaller one truncates). The
            file records the options and the operator's
            :meth:`~curvscope.operators.base.SymmetricOperator.fingerprint` (for model operators:
            digests of the operator kind, weights and data, costing one reading pass over the
            data per call; for foreign operators: the product with a fixed probe, one extra
            product), and resuming on anything else raises :class:`InputError` naming what
            differs.
        checkpoint_every: steps between checkpoint writes.
        breakdown_tol: relative breakdown tolerance; default ``100 * eps`` of the operator dtype.
        progress: show a tqdm progress bar.

    Returns:
        A :class:`LanczosResult`.

    Raises:
        InputError: bad arguments; a checkpoint written for another operator, weights, data or
            options; an unreadable checkpoint file.
        MemoryLimitError: the Krylov basis would not fit in the memory available on its device.
        NonFiniteError: a product returned NaN or inf.

    Example:
        >>> import torch
        >>> from curvscope import DenseOperator
        >>> res = lanczos(DenseOperator(torch.diag(torch.arange(5.0))), num_steps=5)
        >>> [round(float(x), 6) for x in res.ritz(0)[0]]
        [0.0, 1.0, 2.0, 3.0, 4.0]
    """
    start_time = time.perf_counter()
    op = as_operator(op)
    size = op.shape[0]
    num_steps = min(check_int("num_steps", num_steps, minimum=1, expected="an integer >= 1"), size)
    num_probes = check_int("num_probes", num_probes, minimum=1, expected="an integer >= 1")
    checkpoint_every = check_int(
        "checkpoint_every", checkpoint_every, minimum=1, expected="an integer >= 1"
    )
    check_probe_kind(probe)
    device, dtype = op.device, op.dtype
    store = torch.device(basis_device) if basis_device is not None else device
    tol = breakdown_tol if breakdown_tol is not None else 100 * torch.finfo(dtype).eps
    generator = make_generator(seed)
    check_basis_memory(num_probes, num_steps, size, dtype, store)

    alphas = np.zeros((num_probes, num_steps))
    betas = np.zeros((num_probes, num_steps))
    steps = np.zeros(num_probes, dtype=np.int64)
    active = np.ones(num_probes, dtype=bool)
    breakdown = np.zeros(num_probes, dtype=bool)
    basis = torch.zeros((num_probes, num_steps + 1, size), dtype=dtype, device=store)
    done = 0  # steps completed by the whole lockstep run

    ckpt_path = Path(checkpoint) if checkpoint is not None else None
    inputs = {
        "size": size,
        "num_probes": num_probes,
        "seed": seed,
        "probe": probe,
        "reorthogonalize": reorthogonalize,
        "dtype": str(dtype),
    }
    identity: dict[str, Any] = {}
    if ckpt_path is not None:
        identity = _identity(op)
    if ckpt_path is not None and (ckpt_path.exists() or ckpt_path.is_symlink()):
        state = _load_checkpoint(ckpt_path)
        _check_same_inputs(ckpt_path, state, inputs, op, identity)
        done = min(int(state["done"]), num_steps)
        keep = min(int(state["done"]), num_steps)
        alphas[:, :keep] = state["alphas"].numpy()[:, :keep]
        betas[:, :keep] = state["betas"].numpy()[:, :keep]
        steps = np.minimum(state["steps"].numpy(), num_steps)
        breakdown = state["breakdown"].numpy() & (steps == state["steps"].numpy())
        active = ~breakdown & (steps == done)
        basis[:, : done + 1] = state["basis"][:, : done + 1].to(dtype=dtype, device=store)
        generator.set_state(state["generator"])
    else:
        probes = draw_probes(size, num_probes, generator=generator, probe=probe)
        probes = probes / probes.norm(dim=0, keepdim=True)
        basis[:, 0] = probes.T.to(dtype=dtype, device=store)

    timings = {"products": 0.0, "reorthogonalization": 0.0, "checkpoint": 0.0}

    def write_checkpoint() -> None:
        if ckpt_path is None:
            return
        tick = time.perf_counter()
        state = dict(inputs)
        state.update(identity)
        state.update(
            format=_CHECKPOINT_FORMAT,
            version=__version__,
            done=done,
            alphas=torch.from_numpy(alphas[:, :done].copy()),
            betas=torch.from_numpy(betas[:, :done].copy()),
            steps=torch.from_numpy(steps.copy()),
            breakdown=torch.from_numpy(breakdown.copy()),
            basis=basis[:, : done + 1].cpu().clone(),
            generator=generator.get_state(),
        )
        ckpt_path.parent.mkdir(parents=True, exist_ok=True)
        _atomic_save(state, ckpt_path)
        timings["checkpoint"] += time.perf_counter() - tick

    num_products = 0
    second_passes = 0
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=num_steps, initial=done, desc="lanczos", unit="step")
    scale = np.maximum(np.abs(alphas).max(axis=1), np.abs(betas).max(axis=1))
    while done < num_steps and active.any():
        j = done
        cols = torch.as_tensor(np.flatnonzero(active), device=device)
        all_active = bool(active.all())
        q_now = basis[:, j].T.to(device)  # (P, k)

        _sync(device)
        tick = time.perf_counter()
        product = op @ (q_now if all_active else q_now[:, cols])
        _sync(device)
        timings["products"] += time.perf_counter() - tick
        num_products += 1

        tick = time.perf_counter()
        # Vector work in row layout, (k, P), the layout of the basis: every operand contiguous.
        if all_active:
            w = product.T.contiguous()
        else:
            w = torch.zeros((num_probes, size), dtype=dtype, device=device)
            w[cols] = product.T
        q_now = q_now.T
        alpha = (q_now * w).sum(1, dtype=torch.float64)
        w = w - alpha.to(dtype)[:, None] * q_now
        if j > 0:
            beta_prev = torch.as_tensor(betas[:, j - 1], device=device).to(dtype)
            w = w - beta_prev[:, None] * basis[:, j - 1].to(device)
        beta = None
        if reorthogonalize:
            w, beta, second = _reorthogonalize(w, basis[:, : j + 1], store)
            second_passes += second
        if beta is None:
            beta = torch.linalg.vector_norm(w, dim=1, dtype=torch.float64)
        alpha_np, beta_np = alpha.cpu().numpy(), beta.cpu().numpy()
        if not (np.isfinite(alpha_np).all() and np.isfinite(beta_np).all()):
            raise NonFiniteError(
                f"Lanczos step {j + 1}: the product op @ V contains NaN or inf; check that the "
                "operator is finite at these weights (e.g. the loss is finite)"
            )
        alpha_np[~active] = 0.0
        beta_np[~active] = 0.0
        alphas[:, j] = alpha_np
        betas[:, j] = beta_np
        scale = np.maximum(scale, np.abs(alpha_np))
        broke = active & (beta_np <= tol * scale)
        scale = np.maximum(scale, beta_np)
        steps[active] = j + 1
        breakdown |= broke
        active &= ~broke
        safe = torch.as_tensor(np.where(active, beta_np, 1.0), device=device).to(dtype)
        next_q = w / safe[:, None]
        if not active.all():
            next_q[torch.as_tensor(~active, device=device)] = 0
        basis[:, j + 1] = next_q.to(store)
        _sync(device)
        timings["reorthogonalization"] += time.perf_counter() - tick
        done = j + 1
        if bar is not None:
            bar.update(1)
        if done % checkpoint_every == 0 and done < num_steps:
            write_checkpoint()
    if bar is not None:
        bar.close()
    if num_products:
        write_checkpoint()
    timings["total"] = time.perf_counter() - start_time
    return LanczosResult(
        alphas=alphas,
        betas=betas,
        steps=steps,
        breakdown=breakdown,
        num_steps=num_steps,
        num_probes=num_probes,
        seed=seed,
        probe=probe,
        reorthogonalize=reorthogonalize,
        size=size,
        dtype=str(dtype),
        device=str(device),
        timings=timings,
        num_products=num_products,
        second_passes=second_passes,
        version=__version__,
    )

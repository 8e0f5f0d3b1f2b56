"""Output folders written whole or not at all, valid JSON, and atomic files.

The bottom layer of every command that writes results (design: "Studies and the runs that make
them"). A run never writes into its final folder directly:

* :class:`OutputFolder` stages the run in ``.<name>.partial`` beside the final folder, holds an
  exclusive lock (``fcntl.flock``, released by the kernel even on SIGKILL) so two commands never
  write the same folder at once, refuses an existing non-empty folder unless ``force``, and on
  success swaps the staged folder into place with renames, so a reader sees the old run or the
  new one, never a mixture. An interrupted run leaves its partial folder (with its checkpoints)
  behind; the same command resumes from it, and a different command refuses it by name. A
  run that fails before writing anything leaves nothing behind.
* :func:`json_text` writes JSON with ``null`` where a float is NaN or infinite (the ``NaN`` and
  ``Infinity`` tokens Python writes by default are not JSON), and :func:`write_atomic` writes a
  file through a uniquely named temporary file and a rename.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import math
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from curvscope._distributed import is_distributed, is_writer
from curvscope.errors import InputError

__all__ = [
    "OutputFolder",
    "file_digest",
    "json_safe",
    "json_text",
    "temporary_name",
    "write_atomic",
]

_MANIFEST = ".curvscope-run.json"


def json_safe(value: Any) -> Any:
    """``value`` with NaN/inf floats as ``None`` and numpy scalars/arrays as Python objects."""
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, (np.integer, np.bool_)):
        return value.item()
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def json_text(value: Any, *, indent: int | None = 1) -> str:
    """Strict JSON of ``value``: NaN and infinities become ``null`` (never ``NaN``/``Infinity``)."""
    return json.dumps(json_safe(value), indent=indent, allow_nan=False)


def temporary_name(path: Path) -> Path:
    """A temporary path beside ``path``, unique to this process and call."""
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


def write_atomic(path: str | os.PathLike[str], data: str | bytes) -> Path:
    """Write ``data`` to ``path`` through a uniquely named temporary file and a rename."""
    path = Path(path)
    tmp = temporary_name(path)
    try:
        if isinstance(data, str):
            tmp.write_text(data, encoding="utf-8")
        else:
            tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def file_digest(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file's bytes (what a run was computed from)."""
    h = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _is_nonempty_dir(path: Path) -> bool:
    return path.is_dir() and any(path.iterdir())


class OutputFolder:
    """A run's output folder: staged, locked, swapped into place whole.

    Use as a context manager around the whole run::

        with OutputFolder(out, settings={"command": "train", ...}, force=force) as folder:
            ...write into folder.staging (checkpoints too)...
            folder.commit()

    Args:
        out: the final folder.
        settings: what the run computes (a JSON-able dict). A partial folder left by an
            interrupted run resumes only under equal settings.
        force: replace an existing non-empty ``out`` and discard a partial run of other
            settings.
        flag: the option name to suggest in messages (``--force``).

    Attributes:
        staging: the folder to write into.
        resumed: whether ``staging`` holds the work of an interrupted run of the same settings.

    Raises:
        InputError: ``out`` is a file, cannot be written, exists and is not empty (without
            ``force``), is being written by another process, or a partial run of other settings
            is in the way (without ``force``).
    """

    def __init__(
        self,
        out: str | os.PathLike[str],
        *,
        settings: dict[str, Any],
        force: bool = False,
        flag: str = "--force",
    ) -> None:
        self.out = Path(out)
        self.settings = json_safe(settings)
        self.force = force
        self.flag = flag
        self.staging = self.out.parent / f".{self.out.name}.partial"
        self.lock_path = self.out.parent / f".{self.out.name}.lock"
        self.resumed = False
        self.committed = False
        self._lock: Any = None
        self._scratch: Path | None = None

    # ------------------------------------------------------------------ checks
    def _check_target(self) -> None:
        out = self.out
        if out.exists() and not out.is_dir():
            raise InputError(
                f"output folder {str(out)!r} is a file; pass a folder path to --out (a new or "
                "empty folder, or an earlier run's folder with " + self.flag + ")"
            )
        for parent in out.parents:
            if parent.exists():
                if not parent.is_dir():
                    raise InputError(
                        f"cannot create output folder {str(out)!r}: {str(parent)!r} is a file; "
                        "choose another --out"
                    )
                break
        if _is_nonempty_dir(out) and not self.force:
            raise InputError(
                f"output folder {str(out)!r} already holds files (an earlier run?); pass "
                f"{self.flag} to replace it whole, or choose another --out"
            )
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(
                f"cannot create the parent of output folder {str(out)!r} "
                f"({exc.strerror or exc}); choose a writable --out"
            ) from None
        if not os.access(out.parent, os.W_OK | os.X_OK):
            raise InputError(
                f"cannot write into {str(out.parent)!r} (permission denied); choose a writable "
                "--out"
            )

    def _acquire(self) -> None:
        while True:
            try:
                handle = open(self.lock_path, "a+")
            except OSError as exc:
                raise InputError(
                    f"cannot write into {str(self.out.parent)!r} ({exc.strerror or exc}); "
                    "choose a writable --out"
                ) from None
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "unknown"
                handle.close()
                raise InputError(
                    f"output folder {str(self.out)!r} is being written by another curvscope "
                    f"process (pid {holder}); wait for it to finish, or choose another --out"
                ) from None
            # The lock file may have been removed and re-created between open and flock.
            try:
                same = os.stat(self.lock_path).st_ino == os.fstat(handle.fileno()).st_ino
            except FileNotFoundError:
                same = False
            if same:
                handle.seek(0)
                handle.truncate()
                handle.write(str(os.getpid()))
                handle.flush()
                self._lock = handle
                return
            handle.close()

    def _release(self) -> None:
        if self._lock is not None:
            with contextlib.suppress(FileNotFoundError):
                self.lock_path.unlink()
            self._lock.close()
            self._lock = None

    def _prepare_staging(self) -> None:
        manifest = self.staging / _MANIFEST
        if self.staging.exists():
            previous = None
            with contextlib.suppress(OSError, ValueError):
                previous = json.loads(manifest.read_text())
            if previous is not None and previous.get("settings") == self.settings:
                if not is_distributed():
                    self.resumed = True
                    return
                # Ranks cannot resume in step (only rank 0 kept state): start afresh.
                shutil.rmtree(self.staging)
                self.staging.mkdir(parents=True)
                write_atomic(manifest, json_text({"settings": self.settings}))
                return
            if not self.force:
                differs = ""
                if isinstance(previous, dict) and isinstance(previous.get("settings"), dict):
                    old, new = previous["settings"], self.settings
                    keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
                    differs = f" (it differs in: {', '.join(keys)})"
                raise InputError(
                    f"{str(self.staging)!r} holds an interrupted run with other settings"
                    f"{differs}; rerun that command to resume it, or pass {self.flag} to "
                    "discard it and start afresh"
                )
            shutil.rmtree(self.staging)
        self.staging.mkdir(parents=True)
        write_atomic(manifest, json_text({"settings": self.settings}))

    # ------------------------------------------------------------------ protocol
    def __enter__(self) -> OutputFolder:
        if not is_writer():
            # A rank other than 0 of a distributed job computes like the others but writes
            # nothing where users look: its staging is a private scratch folder, dropped at exit.
            self._scratch = Path(tempfile.mkdtemp(prefix="curvscope-rank-"))
            self.staging = self._scratch
            return self
        self._check_target()
        self._acquire()
        try:
            self._prepare_staging()
        except BaseException:
            self._release()
            raise
        return self

    def path(self, name: str) -> Path:
        """``staging / name``."""
        return self.staging / name

    def commit(self, *, drop: tuple[str, ...] = ()) -> Path:
        """Swap the staged folder into place (after removing the entries named in ``drop``)."""
        if self._scratch is not None:
            return self.out
        for name in drop:
            target = self.staging / name
            if target.is_dir():
                shutil.rmtree(target)
            else:
                target.unlink(missing_ok=True)
        (self.staging / _MANIFEST).unlink(missing_ok=True)
        old = None
        if self.out.exists():
            old = self.out.parent / f".{self.out.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            os.replace(self.out, old)
        os.replace(self.staging, self.out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        self.committed = True
        return self.out

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            return
        try:
            if not self.committed and self.staging.is_dir():
                entries = {p.name for p in self.staging.iterdir()}
                if entries <= {_MANIFEST}:  # it failed before any work: nothing to resume
                    shutil.rmtree(self.staging, ignore_errors=True)
        finally:
            self._release()

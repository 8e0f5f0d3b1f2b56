"""Shared test configuration."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _few_threads() -> None:
    # CI has 2 cores; oversubscription makes small products slower, not faster.
    torch.set_num_threads(2)

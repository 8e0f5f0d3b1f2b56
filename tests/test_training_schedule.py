"""Paper 000 eq. 11 learning-rate schedule and presets (spec/theory.md §1.8)."""

from __future__ import annotations

import itertools

import pytest

from curvscope.errors import InputError
from curvscope.training import SCHEDULE_PRESETS, TrainConfig, paper000_learning_rate


def test_eq11_at_known_points():
    lr = lambda t: paper000_learning_rate(t, lr0=0.1, epochs=100, final_ratio=0.01)  # noqa: E731
    assert lr(0) == lr(50) == 0.1  # x <= 0.5
    assert lr(70) == pytest.approx(0.1 * (1 - 0.99 * 0.5))  # halfway down the ramp
    assert lr(90) == pytest.approx(0.1 * 0.01)  # end of the ramp, continuous
    assert lr(91) == lr(99) == pytest.approx(0.001)
    values = [lr(t) for t in range(100)]
    assert all(a >= b for a, b in itertools.pairwise(values))


def test_presets_match_the_paper():
    assert SCHEDULE_PRESETS["normal"].lr0 == 0.1 and SCHEDULE_PRESETS["normal"].epochs == 225
    assert SCHEDULE_PRESETS["overfit"].lr0 == 0.001 and SCHEDULE_PRESETS["overfit"].epochs == 1000
    assert SCHEDULE_PRESETS["vgg16bn-normal"].lr0 == 0.05
    cfg = TrainConfig.from_preset("overfit", batch_size=128, weight_decay=0.0, epochs=10)
    assert (cfg.lr, cfg.epochs, cfg.final_ratio, cfg.preset) == (0.001, 10, 0.01, "overfit")


def test_schedule_and_config_errors():
    with pytest.raises(InputError, match="epochs must be a positive integer"):
        paper000_learning_rate(0, lr0=0.1, epochs=0, final_ratio=0.01)
    with pytest.raises(InputError, match=r"final_ratio r must lie in \[0, 1\]"):
        paper000_learning_rate(0, lr0=0.1, epochs=10, final_ratio=2.0)
    with pytest.raises(InputError, match="unknown schedule preset 'fast'"):
        TrainConfig.from_preset("fast", batch_size=1, weight_decay=0.0)
    with pytest.raises(InputError, match="batch_size must be an integer >= 1, got 0"):
        TrainConfig(batch_size=0, weight_decay=0.0)
    with pytest.raises(InputError, match="unknown keys"):
        TrainConfig.from_dict({"batch_size": 1, "weight_decay": 0.0, "colour": 1})

"""The outer lr schedule: progress by iterations or by the time limit, whichever ends first; the cosine's ends.

Whole runs (the step schedule's exact lrs, a cosine run resumed bit-for-bit) are tested in test_distill.py.
"""

import pytest

from datadistill.config import DistillConfig
from datadistill.schedule import outer_lr, schedule_progress


def test_schedule_progress_follows_whichever_end_comes_first():
    assert schedule_progress(30, 300) == 0.1
    assert schedule_progress(30, 300, time_fraction=0.5) == 0.5
    assert schedule_progress(270, 300, time_fraction=0.5) == 0.9
    assert schedule_progress(30, 300, time_fraction=2.0) == 1.0
    # A resumed time-limited session spends its own limit on the rest of the schedule.
    assert schedule_progress(30, 300, time_fraction=0.5, start=0.6) == pytest.approx(0.8)
    cfg = DistillConfig(lr=0.1, final_lr_fraction=0.1)
    assert outer_lr(cfg, 0, 0.0) == pytest.approx(0.1)
    assert outer_lr(cfg, 0, 0.5) == pytest.approx(0.055)
    assert outer_lr(cfg, 0, 1.0) == pytest.approx(0.01)


def test_step_schedule_halves_every_decay_every_iterations_whatever_the_progress():
    cfg = DistillConfig(lr=0.04, schedule="step", decay_every=10, decay_factor=0.5)
    assert [outer_lr(cfg, i, 0.99) for i in (0, 9, 10, 25)] == [0.04, 0.04, 0.02, 0.01]
    # without decay_every: a tenth of the run
    cfg = DistillConfig(lr=0.04, schedule="step", iterations=50)
    assert outer_lr(cfg, 4, 0.0) == 0.04 and outer_lr(cfg, 5, 0.0) == 0.02

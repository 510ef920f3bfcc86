"""schedule.py: linear warm-up, then cosine decay to zero."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from cl_core.tasks import warmup_cosine


def test_warmup_rises_linearly_to_the_peak():
    factor = warmup_cosine(total_steps=20, warmup_steps=4)
    assert [factor(step) for step in range(4)] == [0.25, 0.5, 0.75, 1.0]


def test_cosine_decays_from_the_peak_to_zero():
    factor = warmup_cosine(total_steps=20, warmup_steps=4)
    assert factor(4) == 1.0
    assert factor(12) == pytest.approx(0.5)  # half way through the 16 decay steps
    assert factor(8) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))
    assert factor(20) == pytest.approx(0.0, abs=1e-12)
    assert factor(100) == pytest.approx(0.0, abs=1e-12)  # past the end it stays at zero
    values = [factor(step) for step in range(4, 21)]
    assert all(later <= earlier for earlier, later in itertools.pairwise(values))


def test_without_warmup_the_first_step_is_at_the_peak():
    factor = warmup_cosine(total_steps=10, warmup_steps=0)
    assert factor(0) == 1.0 and factor(5) == pytest.approx(0.5)


def test_it_drives_a_torch_scheduler():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(10, 2))
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.05)
    optimizer.step()
    scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.1)

"""memory.py: the free memory read from /proc/meminfo, and sizes a flag sets refused before allocation."""

from __future__ import annotations

import pytest

from datadistill import memory
from datadistill.config import LinearConfig
from datadistill.data import load_dataset
from datadistill.experiments.linear import run_linear


def test_free_memory_is_read_from_meminfo_and_unknown_when_unreadable(tmp_path, monkeypatch):
    fake = tmp_path / "meminfo"
    fake.write_text("MemTotal:       24000000 kB\nMemFree:  100 kB\nMemAvailable:    2048 kB\n")
    monkeypatch.setattr(memory, "MEMINFO", fake)
    assert memory.free_memory_bytes() == 2048 * 1024
    fake.write_text("MemTotal: 1 kB\n")  # an old kernel without MemAvailable
    assert memory.free_memory_bytes() is None
    monkeypatch.setattr(memory, "MEMINFO", tmp_path / "absent")
    assert memory.free_memory_bytes() is None
    memory.check_fits_in_memory(10**15, "anything", "no check")  # unknown: nothing is refused


def test_too_much_is_refused_naming_the_size_and_the_fix(monkeypatch):
    monkeypatch.setattr(memory, "free_memory_bytes", lambda: 2**30)
    memory.check_fits_in_memory(2**29, "half", "fine")
    with pytest.raises(
        ValueError, match=r"^x would take 2\.0 GiB, more than the 1\.0 GiB .*: lower --y$"
    ):
        memory.check_fits_in_memory(2**31, "x", "lower --y")


def test_a_pad_or_resize_beyond_memory_is_refused_before_it_is_made(monkeypatch):
    monkeypatch.setattr(
        memory, "free_memory_bytes", lambda: 2**20
    )  # 1 MiB: digits fit, padded ones not
    assert load_dataset("digits", "test").images.shape == (360, 1, 8, 8)
    with pytest.raises(
        ValueError, match=r"digits train: 1437 images of 1x108x108 .*smaller --resize or --pad"
    ):
        load_dataset("digits", "train", pad=50)
    with pytest.raises(
        ValueError, match=r"1437 images of 1x200x200 would take 439 MiB, more than the 1 MiB"
    ):
        load_dataset("digits", "train", resize=200)


def test_linear_refuses_a_dim_beyond_memory(monkeypatch):
    monkeypatch.setattr(memory, "free_memory_bytes", lambda: 2**30)
    with pytest.raises(
        ValueError, match="the synthetic problem of --dim 10000 would take .*smaller --dim"
    ):
        run_linear(LinearConfig(dim=10_000).validate())

"""viz.py: image grids, curves and the gallery thumbnail sheet are written as real PNG files."""

from __future__ import annotations

import torch

from datadistill.viz import plot_curves, save_step_grids, save_thumbnail_sheet

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _is_png(path) -> bool:
    return path.is_file() and path.stat().st_size > 1000 and path.read_bytes()[:8] == PNG_SIGNATURE


def test_step_grids_one_file_for_a_few_steps(tmp_path):
    images = torch.rand(2, 10, 1, 8, 8)
    labels = torch.arange(10).repeat(2, 1)
    paths = save_step_grids(
        images, labels, torch.tensor([0.1, 0.2, 0.3, 0.4]), list("0123456789"), tmp_path
    )
    assert paths and all(_is_png(p) for p in paths)
    assert all(p.parent == tmp_path for p in paths)


def test_step_grids_split_many_steps_over_files_and_take_soft_labels(tmp_path):
    images = torch.rand(12, 3, 3, 8, 8)
    labels = torch.softmax(torch.randn(12, 3, 10), dim=-1)
    paths = save_step_grids(images, labels, torch.rand(12), [f"c{k}" for k in range(10)], tmp_path)
    assert len(paths) >= 2 and all(_is_png(p) for p in paths)


def test_curves_with_and_without_accuracy_points(tmp_path):
    history = [{"iteration": i, "loss": 2.0 / (i + 1)} for i in range(20)]
    history[9]["accuracy"], history[19]["accuracy"] = 50.0, 80.0
    path = plot_curves(history, tmp_path / "curve.png")
    assert _is_png(path)


def test_thumbnail_sheet_one_row_per_set(tmp_path):
    rows = [("a", torch.rand(10, 1, 8, 8)), ("b", torch.rand(10, 3, 8, 8))]
    path = save_thumbnail_sheet(rows, tmp_path / "sheet.png")
    assert _is_png(path)

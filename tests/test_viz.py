"""viz.py: real PNG files, and figures a newcomer reads correctly (titled panels, an accuracy axis that does
not magnify noise, step grids that say what their numbers are)."""

from __future__ import annotations

import torch

from datadistill.viz import (
    MIN_ACCURACY_SPAN,
    curve_figure,
    plot_curves,
    save_step_grids,
    save_thumbnail_sheet,
)

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


def _history(accuracies):
    return [
        {"iteration": 10 * (i + 1), "loss": 1.0 / (i + 1), "accuracy": a, "accuracy_std": 0.0}
        for i, a in enumerate(accuracies)
    ]


def test_a_flat_curve_is_drawn_flat():
    fig = curve_figure(_history([91.2, 91.5, 91.3, 90.9]))  # 0.6 points of noise
    ax_loss, ax_acc = fig.axes
    low, high = ax_acc.get_ylim()
    assert high - low >= MIN_ACCURACY_SPAN and low <= 90.9 and high >= 91.5
    assert "test accuracy" in ax_acc.get_title() and "meta-loss" in ax_loss.get_title()


def test_accuracy_axis_stays_within_0_and_100():
    low, high = curve_figure(_history([99.0, 99.5])).axes[1].get_ylim()
    assert high <= 100.0 and high - low >= MIN_ACCURACY_SPAN
    low, high = curve_figure(_history([1.0, 2.0])).axes[1].get_ylim()
    assert low >= 0.0 and high - low >= MIN_ACCURACY_SPAN
    low, high = curve_figure(_history([10.0, 90.0])).axes[1].get_ylim()  # a real rise: not squeezed
    assert low <= 10.0 and high >= 90.0


def test_plot_curves_writes_a_png(tmp_path):
    path = plot_curves(_history([50.0, 60.0]), tmp_path / "curve.png")
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_step_grid_says_its_numbers_are_per_epoch_step_sizes(tmp_path, monkeypatch):
    import matplotlib.figure

    titles = []
    real = matplotlib.figure.Figure.suptitle

    def record(self, text, **kwargs):
        titles.append(text)
        return real(self, text, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "suptitle", record)
    images = torch.rand(2, 3, 1, 8, 8)
    labels = torch.arange(3).repeat(2, 1)
    paths = save_step_grids(images, labels, torch.full((6,), 0.1), list("abc"), tmp_path)
    assert [p.name for p in paths] == ["steps.png"]
    assert titles and "step size of that step in each of the 3 epoch(s)" in titles[0]

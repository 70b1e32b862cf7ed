"""export.py: a distilled set's training images leave the package as pixels, exactly (.npz) or as PNG folders."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from datadistill import load_pretrained
from datadistill.cli import main
from datadistill.export import export_set


def test_npz_holds_the_decoded_training_set_exactly(tmp_path):
    data = load_pretrained(
        "mnist-1-per-class"
    )  # --formation 2: 10 stored images, 40 training images
    report = export_set(data, tmp_path / "set.npz")
    arrays = np.load(report.path)
    images, labels = data.training_set()
    assert report.images == 40 and arrays["images"].shape == (40, 1, 28, 28)
    normalised = (arrays["images"] - arrays["mean"][:, None, None]) / arrays["std"][:, None, None]
    np.testing.assert_allclose(normalised, images.numpy(), atol=1e-5)
    assert arrays["labels"].tolist() == labels.tolist()
    assert arrays["step"].tolist() == [0] * 40
    assert arrays["lrs"].tolist() == pytest.approx(data.lrs.tolist())
    assert list(arrays["class_names"]) == data.manifest["class_names"]
    assert "targets" not in arrays.files


def test_learned_labels_export_their_targets_and_every_images_step(tmp_path):
    data = load_pretrained("mnist-fixed-10-soft-labels")
    arrays = np.load(export_set(data, tmp_path / "soft.npz").path)
    images, targets = data.training_set()
    np.testing.assert_allclose(arrays["targets"], targets.numpy(), atol=1e-6)
    per_step = data.images.shape[1]
    assert (
        arrays["step"].tolist() == torch.arange(data.num_steps).repeat_interleave(per_step).tolist()
    )
    with pytest.raises(ValueError, match="learned labels .* export it to a .npz file"):
        export_set(data, tmp_path / "folder")
    assert not (tmp_path / "folder").exists()


def test_a_folder_holds_8_bit_pngs_whose_sorted_class_folders_keep_the_labels(tmp_path):
    data = load_pretrained("fashion-mnist-1-per-class")
    report = export_set(data, tmp_path / "pngs")
    folders = sorted(p.name for p in report.path.iterdir())
    assert folders[0] == "0-T-shirt-top" and folders[9] == "9-Ankle-boot"  # '/' cannot be in a name
    images, labels = data.training_set()
    mean, std = data.manifest["mean"][0], data.manifest["std"][0]
    pixels = (images * std + mean).clamp(0, 1)
    read = 0
    for label, folder in enumerate(folders):  # ImageFolder's label k is the k-th sorted folder
        for png in sorted((report.path / folder).iterdir()):
            i = int(png.stem)
            assert labels[i] == label
            stored = np.asarray(Image.open(png), dtype=np.float32) / 255
            assert np.abs(stored - pixels[i, 0].numpy()).max() <= 0.5 / 255 + 1e-6
            read += 1
    assert read == report.images == 40
    assert (
        0 < report.clipped < 1
    )  # distilled pixels leave [0, 1]; the folder says how many were cut


def test_nothing_is_overwritten_and_a_wrong_suffix_is_named(tmp_path):
    data = load_pretrained("mnist-1-per-class")
    taken = tmp_path / "set.npz"
    taken.write_bytes(b"mine")
    with pytest.raises(ValueError, match="already exists; choose a new path"):
        export_set(data, taken)
    assert taken.read_bytes() == b"mine"
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("x")
    with pytest.raises(ValueError, match="already exists"):
        export_set(data, tmp_path / "full")
    with pytest.raises(ValueError, match="give a .npz file .* not .csv"):
        export_set(data, tmp_path / "set.csv")


def test_cli_exports_a_run_folder_or_a_released_set_by_name(tmp_path, capsys):
    assert main(["export", "mnist-1-per-class", "--out", str(tmp_path / "a.npz")]) == 0
    assert "wrote 40 images" in capsys.readouterr().out
    folder = tmp_path / "pulled"
    assert main(["pull", "mnist-1-per-class", "--out", str(folder)]) == 0
    assert main(["export", str(folder), "--out", str(tmp_path / "b")]) == 0
    assert "clipped to [0, 1]" in capsys.readouterr().out
    assert main(["export", "mnist-1-per-clas", "--out", str(tmp_path / "c.npz")]) == 1
    err = capsys.readouterr().err
    assert "did you mean mnist-1-per-class" in err and len(err.strip().splitlines()) == 1

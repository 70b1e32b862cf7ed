"""Your own data (image folders, .npz, .pt, .safetensors, Python tensors) and your own network."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from safetensors.torch import save_file
from torch import nn

from datadistill import distill, evaluate
from datadistill.cli import main
from datadistill.data import load_dataset

K, SIDE = 3, 12  # classes, image side: tiny, yet LeNet-sized (its minimum is 12x12)
TINY = ["--steps", "2", "--epochs", "1", "--iterations", "4", "--eval-every", "4"]


def _images(
    n: int, seed: int, side: int = SIDE, channels: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` uint8 images per class, [n·K, side, side(, C)], each class a bright band at its own rows."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 60, (n * K, side, side, channels), dtype=np.uint8)
    y = np.repeat(np.arange(K), n)
    for i, c in enumerate(y):
        x[i, c * side // K : (c + 1) * side // K] += 180
    return (x[..., 0] if channels == 1 else x), y


def _write_folder(root: Path, x: np.ndarray, y: np.ndarray, names=("ant", "bee", "cat")) -> Path:
    for i, (img, c) in enumerate(zip(x, y, strict=True)):
        (root / names[c]).mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(root / names[c] / f"{i:03d}.png")
    return root


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """An image folder with train/ and test/ inside."""
    _write_folder(tmp_path / "pics" / "train", *_images(8, 0))
    _write_folder(tmp_path / "pics" / "test", *_images(4, 1))
    return tmp_path / "pics"


@pytest.fixture
def arrays(tmp_path: Path) -> dict[str, np.ndarray]:
    (x, y), (xt, yt) = _images(8, 0), _images(4, 1)
    return {"x_train": x, "y_train": y, "x_test": xt, "y_test": yt}


def _error_line(capsys, argv: list[str]) -> str:
    """Run the CLI, assert it failed with one line on stderr, return that line."""
    capsys.readouterr()  # drop what earlier commands printed (progress bars)
    assert main(argv) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


# ---------------------------------------------------------------------------------------------------------
# The forms load to the same ImageDataset
# ---------------------------------------------------------------------------------------------------------


def test_folder_loads_with_class_names_and_train_statistics(folder: Path) -> None:
    train, test = load_dataset(str(folder), "train"), load_dataset(str(folder), "test")
    assert train.images.shape == (8 * K, 1, SIDE, SIDE) and test.images.shape == (
        4 * K,
        1,
        SIDE,
        SIDE,
    )
    assert train.class_names == ("ant", "bee", "cat") and train.num_classes == K
    assert train.labels.tolist() == np.repeat(np.arange(K), 8).tolist()
    # normalised with the training split's own statistics: zero mean, unit std there
    assert (
        abs(float(train.images.mean())) < 1e-5
        and abs(float(train.images.std(correction=0)) - 1) < 1e-4
    )
    assert test.mean == train.mean and train.source["format"] == "folder"
    assert train.source["sha256"] == load_dataset(folder, "test").source["sha256"]


def test_npz_nhwc_nchw_pt_and_safetensors_agree(tmp_path: Path, arrays) -> None:
    np.savez(tmp_path / "hwc.npz", **arrays)
    chw = {k: (v[:, None] if k.startswith("x") else v) for k, v in arrays.items()}
    np.savez(tmp_path / "chw.npz", **chw)
    torch.save({k: torch.from_numpy(v) for k, v in arrays.items()}, tmp_path / "d.pt")
    save_file({k: torch.from_numpy(v) for k, v in arrays.items()}, tmp_path / "d.safetensors")
    floats = {k: (v / 255.0 if k.startswith("x") else v) for k, v in chw.items()}
    np.savez(tmp_path / "float.npz", **floats)
    loaded = [
        load_dataset(str(tmp_path / n), "test")
        for n in ("hwc.npz", "chw.npz", "d.pt", "d.safetensors", "float.npz")
    ]
    for other in loaded[1:]:
        torch.testing.assert_close(other.images, loaded[0].images, rtol=0, atol=1e-5)
        assert other.labels.tolist() == loaded[0].labels.tolist()
    assert [d.source["format"] for d in loaded] == ["npz", "npz", "pt", "safetensors", "npz"]


def test_single_tree_is_split_per_class_by_test_fraction(tmp_path: Path) -> None:
    root = _write_folder(tmp_path / "tree", *_images(10, 0))
    train, test = load_dataset(str(root), "train"), load_dataset(str(root), "test")
    assert len(train) == 24 and len(test) == 6 and test.labels.bincount().tolist() == [2, 2, 2]
    assert test.source["test_fraction"] == 0.2
    half = load_dataset(str(root), "test", test_fraction=0.5)
    assert len(half) == 15


def test_resize_channels_and_pad_are_applied(folder: Path) -> None:
    data = load_dataset(str(folder), "train", resize=16, channels=3, pad=2)
    assert data.image_shape == (3, 20, 20) and len(data.mean) == 3


def test_registered_names_are_unchanged() -> None:
    digits = load_dataset("digits", "test")
    assert digits.source is None and digits.name == "digits"
    with pytest.raises(ValueError, match="has its own"):
        load_dataset("digits", "test", test_fraction=0.3)
    with pytest.raises(ValueError, match="pass train=\\(x, y\\)"):
        load_dataset(np.zeros((2, 2)), "train")  # an array is not a name: no giant repr


# ---------------------------------------------------------------------------------------------------------
# distill -> evaluate -> show, CLI and API
# ---------------------------------------------------------------------------------------------------------


def test_cli_distill_evaluate_show_on_a_folder(folder: Path, tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    assert main(["distill", "--dataset", str(folder), *TINY, "--out", str(run)]) == 0
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["dataset"] == str(folder.resolve()) and manifest["model"] == "lenet"
    assert manifest["data_source"]["sha256"] == load_dataset(folder, "train").source["sha256"]
    assert manifest["class_names"] == ["ant", "bee", "cat"]
    assert main(["evaluate", str(run), "--json", str(tmp_path / "r.json")]) == 0
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["accuracy_mean"] == pytest.approx(manifest["accuracy"]["accuracy_mean"])
    assert main(["show", str(run)]) == 0
    assert "data_source" in capsys.readouterr().out
    for inside in (folder, folder / "pictures"):  # they would be read as data (a class, or refused)
        line = _error_line(capsys, ["show", str(run), "--out", str(inside)])
        assert line.endswith(f"is inside the data folder {folder.resolve()}: files written there "
                             "would be read as data by the next run on it; choose an --out outside it")  # fmt: skip
    assert sorted(p.name for p in folder.iterdir()) == ["test", "train"]

    # moved: a one-line error naming the path, the hash and --data-dir; found again with --data-dir
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    shutil.move(str(folder), moved / "pics")
    line = _error_line(capsys, ["evaluate", str(run)])
    assert str(folder.resolve()) in line and manifest["data_source"]["sha256"][:16] in line
    assert "--data-dir" in line
    assert main(["evaluate", str(run), "--data-dir", str(moved)]) == 0
    # changed: refused, not silently evaluated on other data
    next((moved / "pics" / "test" / "ant").iterdir()).unlink()
    line = _error_line(capsys, ["evaluate", str(run), "--data-dir", str(moved)])
    assert "changed since this run" in line and "--data-dir" in line


@pytest.mark.parametrize("suffix", [".npz", ".pt", ".safetensors"])
def test_cli_distill_and_evaluate_array_files(tmp_path: Path, arrays, suffix: str) -> None:
    path = tmp_path / f"data{suffix}"
    tensors = {k: torch.from_numpy(v) for k, v in arrays.items()}
    {".npz": lambda: np.savez(path, **arrays), ".pt": lambda: torch.save(tensors, path)}.get(
        suffix, lambda: save_file(tensors, path)
    )()
    run = tmp_path / "run"
    assert main(["distill", "--dataset", str(path), *TINY, "--out", str(run)]) == 0
    assert main(["evaluate", str(run)]) == 0


def test_api_python_tensors_and_dataset(tmp_path: Path, arrays, capsys) -> None:
    train = (torch.from_numpy(arrays["x_train"]), torch.from_numpy(arrays["y_train"]))
    test = torch.utils.data.TensorDataset(
        torch.from_numpy(arrays["x_test"]), torch.from_numpy(arrays["y_test"])
    )
    data = distill(
        train=train, test=test, steps=2, epochs=1, iterations=4, eval_every=4,
        out=str(tmp_path / "run"), progress=False,
    )  # fmt: skip
    assert (
        data.manifest["dataset"] == "python" and data.manifest["data_source"]["format"] == "python"
    )
    again = evaluate(tmp_path / "run", test=test, progress=False)
    assert again.accuracy_mean == pytest.approx(data.manifest["accuracy"]["accuracy_mean"])
    line = _error_line(capsys, ["evaluate", str(tmp_path / "run")])
    assert "evaluate(run, test=(x, y))" in line


def test_hugging_face_dataset_built_locally(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets", reason="the optional [hf] extra is not installed")
    (x, y), (xt, yt) = _images(6, 0), _images(3, 1)

    def build(images, labels):
        pil = [Image.fromarray(img) for img in images]
        features = datasets.Features({"image": datasets.Image(), "label": datasets.Value("int64")})
        return datasets.Dataset.from_dict(
            {"image": pil, "label": labels.tolist()}, features=features
        )

    data = distill(train=build(x, y), test=build(xt, yt), steps=1, epochs=1, iterations=2,
                   eval_every=2, out=str(tmp_path / "run"), progress=False)  # fmt: skip
    plain = distill(train=(x, y), test=(xt, yt), steps=1, epochs=1, iterations=2,
                    eval_every=2, out=str(tmp_path / "run2"), progress=False)  # fmt: skip
    assert data.manifest["data_source"]["sha256"] == plain.manifest["data_source"]["sha256"]
    torch.testing.assert_close(data.images, plain.images)


def test_user_network_from_a_script_module(
    folder: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    """A two-layer CNN in a script beside the data, not in the package, distils and evaluates."""
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "script_module.py").write_text(
        "from torch import nn\n\n"
        "def make_net(in_shape, num_classes):\n"
        "    c, h, w = in_shape\n"
        "    return nn.Sequential(nn.Conv2d(c, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1),\n"
        "                         nn.ReLU(), nn.Flatten(), nn.Linear(4 * h * w, num_classes))\n"
    )
    monkeypatch.chdir(scripts)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(scripts))])
    monkeypatch.delitem(sys.modules, "script_module", raising=False)
    run = tmp_path / "run"
    argv = [
        "distill",
        "--dataset",
        str(folder),
        "--model",
        "script_module:make_net",
        "--init",
        "random",
    ]
    assert main([*argv, *TINY, "--eval-models", "2", "--out", str(run)]) == 0
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["model"] == "script_module:make_net" and manifest["model_root"] == str(scripts)
    # from another folder, in a fresh interpreter state: the recorded root finds the script again
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in (str(scripts), "")])
    monkeypatch.delitem(sys.modules, "script_module", raising=False)
    assert main(["evaluate", str(run), "--models", "2"]) == 0
    assert "| replay | random | 2 |" in capsys.readouterr().out


def test_resume_from_another_folder_finds_relative_data_and_a_script_network(
    folder: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    """A run started with ``--dataset pics --model script_module:make_net`` from the folder holding both
    continues with ``--resume --out`` from anywhere: its config and checkpoint record where they were."""
    (tmp_path / "script_module.py").write_text(
        "from torch import nn\n\n"
        "def make_net(in_shape, num_classes):\n"
        "    c, h, w = in_shape\n"
        "    return nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, num_classes))\n"
    )

    def fresh_interpreter_in(cwd: Path) -> None:
        monkeypatch.chdir(cwd)
        monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
        monkeypatch.delitem(sys.modules, "script_module", raising=False)

    fresh_interpreter_in(tmp_path)
    argv = ["distill", "--dataset", folder.name, "--model", "script_module:make_net", *TINY]
    assert main([*argv, "--out", "run"]) == 0
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["dataset"] == str(folder)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    fresh_interpreter_in(elsewhere)
    assert main(["distill", "--resume", "--out", "../run", "--iterations", "6"]) == 0
    assert "changed on resume: iterations 4 -> 6" in capsys.readouterr().err
    fresh_interpreter_in(
        tmp_path
    )  # the same spelling as at the start still counts as the same data
    assert main([*argv, "--out", "run", "--resume", "--iterations", "8"]) == 0


def test_api_model_instance_and_factory(folder: Path, tmp_path: Path, capsys) -> None:
    def factory(in_shape, num_classes):
        return nn.Sequential(nn.Flatten(), nn.Linear(int(np.prod(in_shape)), num_classes))

    data = distill(dataset=str(folder), model=factory, steps=1, epochs=1, iterations=2,
                   eval_every=2, out=str(tmp_path / "run"), progress=False)  # fmt: skip
    assert data.manifest["model"] == "python:test_api_model_instance_and_factory.<locals>.factory"
    line = _error_line(capsys, ["evaluate", str(tmp_path / "run")])
    assert "evaluate(run, model=" in line
    result = evaluate(tmp_path / "run", model=factory, progress=False)
    assert result.accuracy_mean == pytest.approx(data.manifest["accuracy"]["accuracy_mean"])
    instance = nn.Sequential(nn.Flatten(), nn.Linear(SIDE * SIDE, K))
    data = distill(dataset=str(folder), model=instance, steps=1, epochs=1, iterations=2,
                   eval_every=2, out=str(tmp_path / "run2"), progress=False)  # fmt: skip
    assert data.manifest["model"] == "python:Sequential"


def test_default_model_fits_small_images(tmp_path: Path) -> None:
    x, y = _images(4, 0, side=8)
    np.savez(tmp_path / "small.npz", x_train=x, y_train=y)
    data = distill(dataset=str(tmp_path / "small.npz"), steps=1, epochs=1, iterations=2,
                   eval_every=2, out=str(tmp_path / "run"), progress=False)  # fmt: skip
    assert data.manifest["model"] == "mlp" and data.manifest["data_source"]["test_fraction"] == 0.2


def test_batchnorm_network_is_refused_with_the_fix(folder: Path, tmp_path: Path) -> None:
    def with_batchnorm(in_shape, num_classes):
        c, h, w = in_shape
        return nn.Sequential(nn.Conv2d(c, 2, 3), nn.BatchNorm2d(2), nn.Flatten(),
                             nn.Linear(2 * (h - 2) * (w - 2), num_classes))  # fmt: skip

    with pytest.raises(ValueError, match="track_running_stats=False"):
        distill(dataset=str(folder), model=with_batchnorm, iterations=1, out=str(tmp_path / "r"))
    assert not (tmp_path / "r").exists()


# ---------------------------------------------------------------------------------------------------------
# Bad inputs: one line naming the file and the fix
# ---------------------------------------------------------------------------------------------------------


class NotATensor:  # pickled into a .pt: must never be unpickled
    pass


def _bad_empty_class(tmp: Path) -> tuple[Path, str]:
    root = _write_folder(tmp / "d", *_images(3, 0))
    (root / "dog").mkdir()
    return root, "dog: class folder holds no images"


def _bad_single_class(tmp: Path) -> tuple[Path, str]:
    x, y = _images(3, 0)
    return _write_folder(tmp / "d", x[y == 0], y[y == 0]), "only one class folder"


def _bad_mixed_sizes(tmp: Path) -> tuple[Path, str]:
    root = _write_folder(tmp / "d", *_images(3, 0))
    Image.fromarray(np.zeros((20, 16), np.uint8)).save(root / "ant" / "big.png")
    return root, "pass --resize"


def _bad_train_val_split(tmp: Path) -> tuple[Path, str]:
    # read as one tree, train/ and val/ became the two classes and the run learned to tell them apart
    _write_folder(tmp / "d" / "train", *_images(3, 0))
    _write_folder(tmp / "d" / "val", *_images(2, 1))
    return (
        tmp / "d",
        "has train/<class>/ folders but no test/ (beside val/: name the held-out split test/)",
    )


def _bad_test_missing_a_class(tmp: Path) -> tuple[Path, str]:
    # scored on the classes present only: with one class left the accuracy read 100%
    _write_folder(tmp / "d" / "train", *_images(3, 0))
    x, y = _images(2, 1)
    _write_folder(tmp / "d" / "test", x[y == 1], y[y == 1])
    return tmp / "d", "no folder for class(es) ant, cat of"


def _bad_not_an_image(tmp: Path) -> tuple[Path, str]:
    root = _write_folder(tmp / "d", *_images(3, 0))
    (root / "bee" / "notes.txt").write_text("not a picture")
    return root, "notes.txt: not an image Pillow can read"


def _bad_labels(tmp: Path) -> tuple[Path, str]:
    x, y = _images(3, 0)
    np.savez(tmp / "d.npz", x_train=x, y_train=y, x_test=x, y_test=y + 5)
    return tmp / "d.npz", "relabel them to 0…K-1"


def _bad_lengths(tmp: Path) -> tuple[Path, str]:
    x, y = _images(3, 0)
    np.savez(tmp / "d.npz", x_train=x, y_train=y[:-1], x_test=x, y_test=y)
    return tmp / "d.npz", "9 images but 8 labels"


def _bad_four_channels(tmp: Path) -> tuple[Path, str]:
    x, y = _images(3, 0, channels=3)
    # RGBA [N, H, W, 4]: the message must name the shape as given, not as transposed
    x = np.concatenate([x, x[..., :1]], axis=-1)
    np.savez(tmp / "d.npz", x_train=x, y_train=y, x_test=x, y_test=y)
    return tmp / "d.npz", f"shape (9, {SIDE}, {SIDE}, 4) (read as N, H, W, C) have 4 channels"


def _bad_npy_named_npz(tmp: Path) -> tuple[Path, str]:
    x, _ = _images(3, 0)
    with (tmp / "d.npz").open("wb") as f:  # one array saved by np.save, under a .npz name
        np.save(f, x)
    return tmp / "d.npz", "not a .npz archive"


def _bad_npz_bytes(tmp: Path) -> tuple[Path, str]:
    (tmp / "d.npz").write_bytes(b"these bytes are no archive")
    return tmp / "d.npz", "not a .npz archive"


def _bad_pickled_code(tmp: Path) -> tuple[Path, str]:
    torch.save({"x_train": NotATensor()}, tmp / "d.pt")
    return tmp / "d.pt", "cannot be loaded as plain tensors"


@pytest.mark.parametrize(
    "make",
    [
        _bad_empty_class,
        _bad_single_class,
        _bad_mixed_sizes,
        _bad_train_val_split,
        _bad_test_missing_a_class,
        _bad_not_an_image,
        _bad_labels,
        _bad_lengths,
        _bad_four_channels,
        _bad_npy_named_npz,
        _bad_npz_bytes,
        _bad_pickled_code,
    ],
)
def test_bad_input_is_one_line_naming_the_file(tmp_path: Path, capsys, make) -> None:
    path, expected = make(tmp_path)
    run = tmp_path / "run"
    line = _error_line(capsys, ["distill", "--dataset", str(path), *TINY, "--out", str(run)])
    assert expected in line and str(path) in line
    assert not run.exists()  # nothing written


def test_mixed_sizes_work_with_resize(tmp_path: Path) -> None:
    root, _ = _bad_mixed_sizes(tmp_path)
    assert load_dataset(str(root), "train", resize=SIDE).image_shape == (1, SIDE, SIDE)


def test_missing_path_and_unknown_name(capsys) -> None:
    assert "not found" in _error_line(capsys, ["distill", "--dataset", "./no/such/folder"])
    assert "or give the path" in _error_line(capsys, ["distill", "--dataset", "mnistt"])

"""Released distilled sets: they load offline and fixed-init ones reproduce their accuracy exactly."""

import json
import os
from pathlib import Path

import pytest
import torch

import datadistill
from datadistill.cli import main
from datadistill.gallery import GALLERY_DIR, list_gallery, load_pretrained, locate, pull

ENTRIES = [row["name"] for row in list_gallery()]
FIXED = [row["name"] for row in list_gallery() if row["init"] in ("fixed", "pretrained-fixed")]


def test_the_gallery_holds_the_promised_sets():
    for name in (
        "mnist-fixed-10",
        "mnist-fixed-100",
        "mnist-random-100",
        "mnist-random-100-6-epochs",
        "fashion-random-100",
        "usps-to-mnist-fixed-100",
        "mnist-10-per-class",
        "mnist-1-per-class",
        "fashion-mnist-10-per-class",
        "fashion-mnist-1-per-class",
        "mnist-10-per-class-cross-arch",
    ):
        assert name in ENTRIES


@pytest.mark.parametrize("name", ENTRIES)
def test_every_entry_loads_offline(name):
    data = datadistill.load_pretrained(name)
    m = data.manifest
    assert list(data.images.shape) == m["images_shape"]
    assert data.lrs.shape == (m["steps"] * m["epochs"],) and bool((data.lrs > 0).all())
    assert torch.isfinite(data.images).all()
    assert m["accuracy"]["measured_on"] == "cpu"


def _data_present(dataset: str) -> bool:
    root = os.environ.get("DATADISTILL_DATA")
    return bool(root) and (Path(root) / dataset).is_dir()


@pytest.mark.parametrize("name", FIXED)
def test_fixed_init_entries_reproduce_their_manifest_accuracy_exactly(name):
    data = load_pretrained(name)
    if not _data_present(data.manifest["dataset"]):
        pytest.skip(f"{data.manifest['dataset']} not found under $DATADISTILL_DATA")
    result = datadistill.evaluate(data, progress=False)
    assert result.accuracy_mean == data.manifest["accuracy"]["accuracy_mean"]


def test_pull_copies_and_never_overwrites(tmp_path):
    out = pull("mnist-fixed-10", tmp_path / "m10")
    assert (out / "distilled.safetensors").is_file()
    with pytest.raises(FileExistsError):
        pull("mnist-fixed-10", out)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="already holds other files; choose a new or empty"):
        pull("mnist-fixed-10", mine)
    for name in ("no-such-set", "../gallery/mnist-fixed-10"):  # a name, never a path
        with pytest.raises(ValueError, match="no released set named"):
            pull(name, tmp_path / "never")
    assert not (tmp_path / "never").exists()  # nothing made for a refused name


def test_unknown_name_suggests_close_ones():
    with pytest.raises(ValueError, match="mnist-fixed-10"):
        load_pretrained("mnist-fixed-1O")
    with pytest.raises(ValueError, match=r"did you mean mnist-10-per-class,"):
        load_pretrained("mnist-10")  # a prefix comes first
    with pytest.raises(ValueError, match=r"^no released set named 'zzz'; available: "):
        load_pretrained("zzz")


def test_locate_prefers_a_folder_and_falls_back_to_a_released_name(tmp_path, monkeypatch):
    assert locate("mnist-fixed-10") == GALLERY_DIR / "mnist-fixed-10"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mnist-fixed-10").mkdir()  # a run folder of that name wins over the released set
    assert locate("mnist-fixed-10") == Path("mnist-fixed-10")
    assert locate("runs/not-yet") == Path("runs/not-yet")  # a path is left to the loader's message
    with pytest.raises(ValueError, match="no such run folder.*did you mean .*mnist-fixed-100"):
        locate("mnist-fixed-1OO")
    with pytest.raises(ValueError, match="by that name; `datadistill gallery` lists"):
        locate("zzz")  # nothing close: no empty "did you mean"


def test_evaluate_and_show_take_a_released_set_by_name(tmp_path, capsys):
    report = tmp_path / "eval.json"
    assert main(["evaluate", "mnist-fixed-10", "--json", str(report)]) == 0
    assert json.loads(report.read_text())["n_models"] == 1  # a fixed-init set replays its one init
    capsys.readouterr()
    from datadistill.gallery import GALLERY_DIR

    in_package = GALLERY_DIR / "mnist-fixed-10"
    relative = os.path.relpath(in_package)  # named by its path from here, as a clone's user would
    for name in ("mnist-fixed-10", str(in_package), relative):
        assert main(["show", name]) == 1  # never draws into the installed package
        err = capsys.readouterr().err.strip()
        assert err.endswith(
            "is a released set inside the package: give --out FOLDER for its pictures"
        )
        assert len(err.splitlines()) == 1
    assert not (in_package / "steps.png").exists()
    assert main(["show", "mnist-fixed-10", "--out", str(tmp_path / "pictures")]) == 0
    assert (tmp_path / "pictures" / "steps.png").is_file()


def test_gallery_command_lists_entries(capsys):
    assert main(["gallery"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ENTRIES)


def test_gallery_thumbnails_draw_one_row_per_entry(tmp_path):
    import matplotlib.image

    path = tmp_path / "sheet.png"
    assert main(["gallery", "--thumbnails", str(path)]) == 0
    height, width = matplotlib.image.imread(path).shape[:2]
    # 0.95 in per row at 90 dpi; the saved height is whole pixels, rounded either way (13 rows: 1,111.5)
    assert abs(height - 0.95 * len(ENTRIES) * 90) <= 1 and width > 900


def test_pulled_adaptation_entry_brings_its_pretrained_network(tmp_path):
    from datadistill.artifacts import DistilledData

    out = pull("usps-to-mnist-fixed-100", tmp_path / "u2m")
    assert (out / "pretrained" / "net_0000.safetensors").is_file()
    assert DistilledData.load(out).manifest["pretrained"] == str(out / "pretrained")


def test_republishing_keeps_the_description_unless_a_new_one_is_given(tmp_path):
    from datadistill.gallery import publish

    datadistill.distill(
        dataset="digits",
        model="mlp",
        init="fixed",
        steps=1,
        epochs=1,
        images_per_class=1,
        iterations=2,
        out=str(tmp_path / "run"),
        progress=False,
    )
    gallery = tmp_path / "gallery"
    assert (
        publish(tmp_path / "run", "d", gallery_dir=gallery, description="first")["description"]
        == "first"
    )
    assert publish(tmp_path / "run", "d", gallery_dir=gallery)["description"] == "first"
    assert publish(tmp_path / "run", "d", gallery_dir=gallery, description="")["description"] == ""
    assert publish(tmp_path / "run", "new", gallery_dir=gallery)["description"] == ""


DATASET_PROTOCOL_ENTRIES = [
    row["name"]
    for row in list_gallery()
    if load_pretrained(row["name"]).manifest.get("protocol") == "dataset"
]


@pytest.mark.slow
@pytest.mark.parametrize("name", DATASET_PROTOCOL_ENTRIES)
def test_dataset_protocol_entries_reproduce_their_first_network(name):
    from datadistill.evaluate import FieldRecipe, evaluate_as_dataset

    data = load_pretrained(name)
    measured = data.manifest["accuracy"]
    if not _data_present(data.manifest["dataset"]):
        pytest.skip(f"{data.manifest['dataset']} not found under $DATADISTILL_DATA")
    if data.images.shape[1] > 10:
        pytest.skip(
            "one ConvNet-3 on 100 images for 300 epochs takes minutes; the 1-per-class sets stand for it"
        )
    assert measured["protocol"] == "dataset" and "augmentation none" in measured["recipe"]
    result = evaluate_as_dataset(data, models=1, recipe=FieldRecipe(), progress=False)
    assert result.accuracies[0] == pytest.approx(measured["accuracies"][0], abs=0.05)


def test_a_formation_entry_lists_its_decoded_training_images(tmp_path, monkeypatch, capsys):
    import datadistill.gallery as gallery

    datadistill.distill(
        dataset="digits",
        model="mlp",
        protocol="dataset",
        init="random",
        images_per_class=1,
        unroll=2,
        formation=2,
        iterations=1,
        eval_every=1,
        eval_models=1,
        out=str(tmp_path / "gallery" / "tiles"),
        progress=False,
    )
    monkeypatch.setattr(gallery, "GALLERY_DIR", tmp_path / "gallery")
    (row,) = gallery.list_gallery()
    assert (row["images"], row["formation"], row["training_images"]) == (10, 2, 40)
    capsys.readouterr()
    assert main(["gallery"]) == 0
    assert "| 10 (40 decoded) |" in capsys.readouterr().out


def test_a_name_that_is_not_text_or_is_a_folder_gets_the_right_pointer(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="a released set is named by text, got NoneType"):
        load_pretrained(None)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "myrun").mkdir()
    with pytest.raises(ValueError, match=r"for a run folder: DistilledData.load\(path\)"):
        load_pretrained("myrun")


@pytest.mark.parametrize("name", ["../outside", "a/b", "Mnist", "", None])
def test_publish_takes_a_name_never_a_path(name, tmp_path):
    from datadistill.gallery import publish

    with pytest.raises(ValueError, match="a released set's name is lower-case letters"):
        publish(tmp_path / "run", name, gallery_dir=tmp_path / "gallery")
    assert not any(tmp_path.iterdir())

"""Distilled sets on disk: a damaged or inconsistent set is refused at load with one line naming the file,
the key and what was expected; writes are checked before any work; temporaries never outlive a kill."""

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datadistill import DistilledData
from datadistill.artifacts import (
    DISTILLED_FILE,
    MANIFEST_FILE,
    InvalidArtifact,
    check_figure_path,
    check_writable,
    remove_stale_temporaries,
    save_tensors,
    write_json,
)
from datadistill.cli import main
from datadistill.export import export_set

STEPS, PER_STEP, EPOCHS = 2, 10, 3


def _tiny_set(labels: torch.Tensor | None = None, **manifest) -> DistilledData:
    """A valid digits-shaped set (2 steps x 10 images of 1x8x8, 6 step sizes), nothing trained."""
    images = torch.randn(STEPS, PER_STEP, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    if labels is None:
        labels = torch.arange(PER_STEP).repeat(STEPS, 1)
    base = {
        "dataset": "digits",
        "model": "mlp",
        "init": "fixed",
        "num_classes": 10,
        "class_names": [str(c) for c in range(10)],
        "mean": [0.3],
        "std": [0.4],
    }
    return DistilledData(images, labels, torch.full((STEPS * EPOCHS,), 0.1), {**base, **manifest})


def _save_unchecked(data: DistilledData, folder: Path) -> Path:
    """Write ``data`` as ``save`` would, without its checks: a damaged set on disk, for ``load`` to refuse."""
    folder.mkdir(parents=True, exist_ok=True)
    save_tensors(
        folder / DISTILLED_FILE, {"images": data.images, "labels": data.labels, "lrs": data.lrs}
    )
    write_json(folder / MANIFEST_FILE, data._manifest_to_write())
    return folder


@pytest.fixture
def saved(tmp_path) -> Path:
    return _tiny_set().save(tmp_path / "set")


def _edit_manifest(folder: Path, **changes) -> None:
    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    for key, value in changes.items():
        if value is _DROP:
            manifest.pop(key)
        else:
            manifest[key] = value
    (folder / MANIFEST_FILE).write_text(json.dumps(manifest))


_DROP = object()


def test_a_valid_set_round_trips(saved):
    data = DistilledData.load(saved)
    assert data.images.shape == (STEPS, PER_STEP, 1, 8, 8) and data.epochs == EPOCHS
    assert data.manifest["images_shape"] == [STEPS, PER_STEP, 1, 8, 8]


def test_learned_labels_round_trip(tmp_path):
    soft = torch.randn(STEPS, PER_STEP, 10)
    data = DistilledData.load(_tiny_set(soft, label_targets="free").save(tmp_path / "soft"))
    assert data.soft_labels and torch.equal(data.labels, soft)


def test_a_hand_made_manifest_without_normalisation_still_loads(tmp_path):
    # Older or hand-made sets (tests/test_baselines.py makes one) carry only what evaluation needs.
    data = _tiny_set()
    data.manifest = {k: data.manifest[k] for k in ("dataset", "model", "init", "num_classes")}
    loaded = DistilledData.load(data.save(tmp_path / "bare"))
    with pytest.raises(InvalidArtifact, match="no mean or std"):
        loaded.pixels()
    with pytest.raises(InvalidArtifact, match="no mean or std .* add them"):
        export_set(loaded, tmp_path / "bare.npz")
    assert not (tmp_path / "bare.npz").exists()


# The table, row by row: (manifest changes, words the one-line message must hold).
MANIFEST_CASES = [
    ({"dataset": _DROP}, "key 'dataset' is missing"),
    ({"model": _DROP}, "key 'model' is missing"),
    ({"steps": _DROP}, "key 'steps' is missing"),
    ({"steps": 5}, "key 'steps' is 5 but key 'images_shape'"),
    ({"steps": 5, "images_shape": [5, 10, 1, 8, 8]}, "images_shape [5, 10, 1, 8, 8]"),
    ({"images_shape": [2, 10, 1, 28, 28]}, "says images_shape [2, 10, 1, 28, 28]"),
    ({"epochs": 4}, "expected 8 float step sizes (steps 2 x epochs 4"),
    ({"mean": "abc"}, "key 'mean' is 'abc'; expected a list of finite numbers"),
    ({"steps": "ten"}, "key 'steps' is 'ten'; expected a positive integer"),
    ({"std": [0.0]}, "key 'std' is [0.0]; expected a list of positive finite numbers"),
    ({"mean": [0.1, 0.2]}, "key 'mean' has 2 values; expected 1 or 1"),
    ({"num_classes": 3, "class_names": _DROP}, "classes outside 0…2"),
    ({"class_names": ["a"]}, "key 'class_names' has 1 names"),
    ({"label_targets": "sigmoid"}, "key 'label_targets' is 'sigmoid'"),
]


@pytest.mark.parametrize("changes, words", MANIFEST_CASES)
def test_bad_manifest_is_refused_naming_file_and_key(saved, changes, words):
    _edit_manifest(saved, **changes)
    with pytest.raises(InvalidArtifact) as info:
        DistilledData.load(saved)
    message = str(info.value)
    assert words in message and "\n" not in message
    assert MANIFEST_FILE in message or DISTILLED_FILE in message


def test_manifest_that_is_not_json_names_the_file(saved):
    (saved / MANIFEST_FILE).write_text('{"dataset": "digits",')
    with pytest.raises(InvalidArtifact, match=rf"{saved / MANIFEST_FILE} is not valid JSON"):
        DistilledData.load(saved)
    (saved / MANIFEST_FILE).write_bytes(b"\xff\xfe\x00")
    with pytest.raises(InvalidArtifact, match="not valid JSON"):
        DistilledData.load(saved)
    (saved / MANIFEST_FILE).write_text("[1, 2]")
    with pytest.raises(InvalidArtifact, match="must hold a JSON object"):
        DistilledData.load(saved)


@pytest.mark.parametrize(
    "tensor, bad, words",
    [
        ("images", float("nan"), "NaN or infinite pixels"),
        ("lrs", float("inf"), "lrs hold the step size inf"),
        ("lrs", -0.1, "lrs hold the step size -0.1"),
        ("lrs", 0.0, "lrs hold the step size 0.0"),
    ],
)
def test_non_finite_pixels_and_non_positive_step_sizes_are_refused(tmp_path, tensor, bad, words):
    data = _tiny_set()
    getattr(data, tensor).view(-1)[1] = bad
    folder = _save_unchecked(
        data, tmp_path / "bad"
    )  # sha256 matches: the values themselves are wrong
    with pytest.raises(InvalidArtifact, match=words):
        DistilledData.load(folder)


def test_labels_of_the_wrong_kind_are_refused(tmp_path):
    int32 = torch.arange(PER_STEP, dtype=torch.int32).repeat(STEPS, 1)
    with pytest.raises(InvalidArtifact, match="labels are int32 .* expected int64 classes"):
        DistilledData.load(_save_unchecked(_tiny_set(int32), tmp_path / "a"))
    soft = torch.randn(STEPS, PER_STEP, 7)  # 7 label entries for 10 classes
    with pytest.raises(
        InvalidArtifact, match=r"expected finite float32 values of shape \[2, 10, 10\]"
    ):
        DistilledData.load(_save_unchecked(_tiny_set(soft), tmp_path / "b"))


def test_missing_tensor_is_refused(saved):
    save_tensors(saved / DISTILLED_FILE, {"images": torch.zeros(1), "labels": torch.zeros(1)})
    with pytest.raises(InvalidArtifact, match=r"tensors \['lrs'\] are missing"):
        DistilledData.load(saved)


@pytest.mark.parametrize("command", ["evaluate", "show"])
@pytest.mark.parametrize("changes, words", MANIFEST_CASES[:6])
def test_cli_prints_one_line_and_exits_1_on_a_bad_set(saved, capsys, command, changes, words):
    _edit_manifest(saved, **changes)
    assert main([command, str(saved)]) == 1
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1 and "Traceback" not in err


def test_cli_refuses_nan_pixels_instead_of_reporting_chance(tmp_path, capsys):
    data = _tiny_set()
    data.images[0, 0, 0, 0, 0] = float("nan")
    folder = _save_unchecked(data, tmp_path / "nan")
    assert main(["evaluate", str(folder)]) == 1
    err = capsys.readouterr().err
    assert "NaN or infinite pixels" in err and err.count("\n") == 1


# ----------------------------------------------------------------------------- any damage at all

_DOCUMENTED = (InvalidArtifact, FileNotFoundError)
_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=4),
    st.lists(st.one_of(st.integers(-1, 12), st.floats(), st.text(max_size=2)), max_size=6),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
_KEYS = st.sampled_from(
    [
        "dataset",
        "model",
        "init",
        "steps",
        "epochs",
        "num_classes",
        "images_shape",
        "mean",
        "std",
        "class_names",
        "label_targets",
        "soft_labels",
        "accuracy",
        "pretrained",
        "resize",
        "pad",
        "channels",
        "seed",
    ]
)
_DAMAGE = st.one_of(
    st.tuples(st.just("set"), _KEYS, _VALUES),
    st.tuples(st.just("drop"), _KEYS, st.none()),
    st.tuples(st.just("truncate"), st.floats(0, 1), st.none()),
    st.tuples(st.just("flip"), st.floats(0, 1), st.integers(1, 255)),
    st.tuples(st.just("manifest-bytes"), st.floats(0, 1), st.integers(1, 255)),
)


@pytest.mark.slow
@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(damage=st.lists(_DAMAGE, min_size=1, max_size=3))
def test_any_damage_gives_a_documented_error_or_a_valid_set(tmp_path_factory, damage):
    folder = tmp_path_factory.mktemp("set")
    _tiny_set().save(folder)
    manifest_path, tensor_path = folder / MANIFEST_FILE, folder / DISTILLED_FILE
    for kind, where, value in damage:
        if kind in ("set", "drop"):
            try:
                manifest = json.loads(manifest_path.read_text())
            except ValueError:
                continue  # an earlier step already broke the JSON
            if kind == "set":
                manifest[where] = value
            else:
                manifest.pop(where, None)
            manifest_path.write_text(json.dumps(manifest))  # NaN/Infinity as Python writes them
        else:
            path = manifest_path if kind == "manifest-bytes" else tensor_path
            raw = bytearray(path.read_bytes())
            if not raw:
                continue  # already truncated to nothing
            at = min(int(where * len(raw)), len(raw) - 1)
            if kind == "truncate":
                raw = raw[:at]
            else:
                raw[at] ^= value
            path.write_bytes(bytes(raw))
    try:
        data = DistilledData.load(folder)
    except _DOCUMENTED as err:
        assert "\n" not in str(err)
        return
    # Whatever loads must be usable as it claims: finite pixels, positive step sizes, sane shapes.
    assert torch.isfinite(data.images).all() and (data.lrs > 0).all()
    assert data.lrs.shape == (data.num_steps * data.epochs,)
    if data.manifest.get("mean") is not None and data.manifest.get("std") is not None:
        assert torch.isfinite(data.pixels()).all()


# ----------------------------------------------------------------------------- writes


def test_check_writable_names_the_path_and_the_flag(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        with pytest.raises(
            ValueError, match=rf"cannot write {locked}/r.json: {locked} is read-only; "
        ):
            check_writable(locked / "r.json", "--json")
        with pytest.raises(ValueError, match="choose another --out"):
            check_writable(locked / "new" / "run", "--out", folder=True)
    finally:
        locked.chmod(0o755)
    (tmp_path / "file").write_text("x")
    with pytest.raises(
        FileExistsError, match="is an existing file, not a folder; choose another --out"
    ):
        check_writable(tmp_path / "file", "--out", folder=True)
    with pytest.raises(FileExistsError, match="is a file, not a folder"):
        check_writable(tmp_path / "file" / "r.json", "--json")
    with pytest.raises(FileExistsError, match="is a folder; give --json a file path"):
        check_writable(tmp_path, "--json")
    check_writable(tmp_path / "new" / "deeper" / "r.json", "--json")  # creatable: accepted
    run = tmp_path / "new" / "run"
    run.mkdir(parents=True)
    (run / "distilled.safetensors").write_bytes(b"")
    with pytest.raises(
        FileExistsError, match="would overwrite the run.s own manifest.json; .*report.json"
    ):
        check_writable(run / "manifest.json", "--json")  # any command's --json, not only evaluate's
    check_writable(run / "eval.json", "--json")
    with pytest.raises(FileExistsError, match="would overwrite the run's own curve.png"):
        check_figure_path(run / "curve.png", "--thumbnails")  # the training curve, never redrawn
    shutil.rmtree(tmp_path / "new")
    assert not (tmp_path / "new").exists() and sorted(os.listdir(tmp_path)) == ["file", "locked"]


def test_loading_an_unfinished_run_says_how_to_finish_it(tmp_path):
    (tmp_path / "checkpoint.safetensors").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="has not finished .* --resume --out"):
        DistilledData.load(tmp_path)


def test_saved_files_follow_the_umask_like_any_other_file(tmp_path):
    old = os.umask(0o022)
    try:
        write_json(tmp_path / "a.json", {"x": 1})
        save_tensors(tmp_path / "a.safetensors", {"x": torch.zeros(2)})
        (tmp_path / "plain.txt").write_text("x")
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()}
    assert modes == {"a.json": 0o644, "a.safetensors": 0o644, "plain.txt": 0o644}


def test_stale_temporaries_are_removed_and_nothing_else(tmp_path):
    for name in (
        ".checkpoint.safetensors.abc123.tmp",
        ".manifest.json.x.tmp",
        "keep.tmp",
        ".mine.tmp",
    ):
        (tmp_path / name).write_bytes(b"")
    removed = remove_stale_temporaries(tmp_path)
    assert len(removed) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == [".mine.tmp", "keep.tmp"]


def test_a_write_killed_midway_leaves_the_old_file_and_a_temporary_that_is_cleaned(tmp_path):
    """SIGKILL a process inside save_tensors' write: the target keeps its old bytes, and the temporary
    the kill left behind is what remove_stale_temporaries deletes."""
    target = tmp_path / "checkpoint.safetensors"
    save_tensors(target, {"x": torch.zeros(3)})
    before = target.read_bytes()
    script = textwrap.dedent(
        f"""
        import time, torch
        from pathlib import Path
        from datadistill import artifacts

        def stalled_write(tensors, tmp, metadata=None):
            Path(tmp).write_bytes(b"half a checkpoint")
            print("writing", flush=True)
            time.sleep(60)

        artifacts.save_file = stalled_write
        artifacts.save_tensors({str(target)!r}, {{"x": torch.ones(3)}})
        """
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, env=env)
    assert proc.stdout.readline().strip() == b"writing"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 5
    while not list(tmp_path.glob(".checkpoint.safetensors.*.tmp")) and time.time() < deadline:
        time.sleep(0.05)
    assert len(list(tmp_path.glob(".checkpoint.safetensors.*.tmp"))) == 1
    assert target.read_bytes() == before
    remove_stale_temporaries(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.safetensors"]


@pytest.mark.parametrize(
    "change, words",
    [
        (
            lambda d: setattr(d, "lrs", torch.tensor([])),
            r"DistilledData.lrs is \[0\]; expected one step size",
        ),
        (
            lambda d: setattr(d, "lrs", torch.full((5,), 0.1)),
            r"DistilledData.lrs is \[5\]; .*steps = 2",
        ),
        (lambda d: d.lrs.fill_(-1.0), "lrs hold the step size -1.0"),
        (lambda d: d.images.view(-1).__setitem__(0, float("nan")), "NaN or infinite pixels"),
        (
            lambda d: setattr(d, "images", d.images.double()),
            "images are float64 .* expected float32 images",
        ),
        (lambda d: d.images.mul_(2), None),  # any finite float32 pixels are a set
        (lambda d: setattr(d, "images", d.images[0]), r"DistilledData.images is \[10, 1, 8, 8\]"),
        (lambda d: setattr(d, "images", d.images.numpy()), "must be a torch.Tensor, got ndarray"),
        (lambda d: setattr(d, "labels", d.labels[:, :5]), "labels are int64 \\[2, 5\\]"),
        (lambda d: setattr(d, "labels", d.labels.int()), "expected int64 classes"),
        (lambda d: setattr(d, "labels", torch.full((2, 10), 42)), "classes outside 0…9"),
        (lambda d: setattr(d, "manifest", {}), "DistilledData.manifest: key 'dataset' is missing"),
        (lambda d: d.manifest.update(formation=3), "key 'formation' is 3 but the images are 8x8"),
    ],
)
def test_a_set_made_in_python_is_checked_before_it_is_saved_or_evaluated(tmp_path, change, words):
    """What ``load`` refuses on disk, ``check`` refuses in memory: ``save``, ``evaluate`` and ``replay`` call
    it, so a hand-made set can neither be written unreadable nor scored as a silent wrong number."""
    from datadistill import evaluate

    data = _tiny_set()
    change(data)
    if words is None:
        data.check()
        return
    with pytest.raises(InvalidArtifact, match=words):
        data.check()
    with pytest.raises(InvalidArtifact, match=words):
        data.save(tmp_path / "set")
    assert not (tmp_path / "set").exists()  # refused before anything was written
    with pytest.raises(InvalidArtifact, match=words):
        evaluate(data, models=1)


def test_save_never_replaces_a_set_unless_told_and_writes_nothing_it_cannot_finish(saved, tmp_path):
    import numpy as np

    before = {name: (saved / name).read_bytes() for name in (DISTILLED_FILE, MANIFEST_FILE)}
    other = _tiny_set()
    other.images.zero_()
    with pytest.raises(FileExistsError, match="already holds a distilled set .* overwrite=True"):
        other.save(saved)
    odd = _tiny_set(note=np.float32(1.0))  # a numpy number JSON cannot store
    with pytest.raises(
        InvalidArtifact, match=r"manifest\['note'\] holds a float32, which JSON cannot store"
    ):
        odd.save(saved, overwrite=True)
    assert before == {name: (saved / name).read_bytes() for name in before}
    other.save(saved, overwrite=True)
    assert torch.equal(DistilledData.load(saved).images, other.images)
    (tmp_path / "file").write_text("mine")
    with pytest.raises(FileExistsError, match="is an existing file, not a folder"):
        other.save(tmp_path / "file")
    with pytest.raises(ValueError, match="save takes a folder path, got NoneType"):
        other.save(None)


def test_evaluate_and_replay_say_what_they_take():
    from datadistill import build_model, evaluate
    from datadistill.evaluate import replay

    with pytest.raises(
        ValueError, match="expected a DistilledData or the path of a run folder, got int"
    ):
        evaluate(123)
    net = build_model("mlp", (1, 8, 8), 10)
    with pytest.raises(ValueError, match="replay takes a DistilledData, got str"):
        replay("runs/x", net, dict(net.named_parameters()))
    with pytest.raises(ValueError, match="replay needs θ_0's parameters, got an empty dict"):
        replay(_tiny_set(), net, {})


def test_a_measured_accuracy_is_dropped_once_the_tensors_it_was_measured_on_change(
    tmp_path, capsys
):
    """A released set's accuracy names the tensors it was measured on; edited pixels keep no stale claim."""
    from datadistill import load_pretrained

    released = load_pretrained("mnist-fixed-10")
    measured = released.manifest["accuracy"]
    assert measured["tensors_sha256"] == released.digest()

    released.save(tmp_path / "copy")  # unchanged: the number still describes the set
    assert DistilledData.load(tmp_path / "copy").manifest["accuracy"] == measured

    released.images = released.images + 0.5
    released.save(tmp_path / "edited")
    assert "accuracy" not in DistilledData.load(tmp_path / "edited").manifest
    assert main(["show", str(tmp_path / "edited")]) == 0
    assert "\naccuracy " not in capsys.readouterr().out

    # the same when the tensors file is replaced beside the released manifest
    shutil.copy(tmp_path / "edited" / "distilled.safetensors", tmp_path / "copy")
    assert "accuracy" not in DistilledData.load(tmp_path / "copy").manifest
    # a set whose accuracy names no tensors (written before the digest was kept) keeps it
    manifest = json.loads((tmp_path / "copy" / "manifest.json").read_text())
    del manifest["accuracy"]["tensors_sha256"]
    (tmp_path / "copy" / "manifest.json").write_text(json.dumps(manifest))
    assert "accuracy_mean" in DistilledData.load(tmp_path / "copy").manifest["accuracy"]

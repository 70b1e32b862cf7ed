"""The command line: bad input and unwritable places give one line and exit code 1; --resume alone
continues a run with its own settings; --help shows what a bare command runs."""

import dataclasses
import importlib
import json
from pathlib import Path

import pytest
import torch
import yaml

from datadistill import DistilledData
from datadistill.artifacts import load_tensors
from datadistill.checkpoint import CHECKPOINT
from datadistill.cli import main
from datadistill.config import (
    AttackConfig,
    BaselinesConfig,
    DistillConfig,
    EvaluateConfig,
    LinearConfig,
    PretrainConfig,
)

# A few seconds on the embedded digits set: 2 steps x 10 images, 2 epochs, an MLP.
TINY_FLAGS = [
    "--dataset",
    "digits",
    "--model",
    "mlp",
    "--steps",
    "2",
    "--epochs",
    "2",
    "--batch-size",
    "128",
    "--eval-every",
    "4",
    "--lr",
    "0.05",
    "--lr-init",
    "0.1",
    "--schedule",
    "step",
    "--decay-every",
    "2",
]


def _one_line_error(capsys, words: str) -> str:
    err = capsys.readouterr().err
    assert words in err, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


@pytest.fixture
def tiny_set(tmp_path) -> Path:
    """A valid digits-shaped distilled set (nothing trained), saved as a run folder."""
    images = torch.zeros(2, 10, 1, 8, 8)
    labels = torch.arange(10).repeat(2, 1)
    manifest = {
        "dataset": "digits",
        "model": "mlp",
        "init": "fixed",
        "num_classes": 10,
        "class_names": [str(c) for c in range(10)],
        "mean": [0.3],
        "std": [0.4],
    }
    return DistilledData(images, labels, torch.full((4,), 0.1), manifest).save(tmp_path / "set")


@pytest.fixture
def read_only(tmp_path):
    """Make folders read-only for the test (mode bits, which we honour even for root)."""
    locked = []

    def lock(folder: Path) -> Path:
        folder.chmod(0o555)
        locked.append(folder)
        return folder

    yield lock
    for folder in locked:
        folder.chmod(0o755)


def test_show_into_a_read_only_run_folder_names_it_and_the_flag(tiny_set, read_only, capsys):
    read_only(tiny_set)
    assert main(["show", str(tiny_set)]) == 1
    _one_line_error(capsys, f"{tiny_set} is read-only; choose another --out FOLDER")


def test_show_with_out_draws_elsewhere(tiny_set, read_only, tmp_path, capsys):
    read_only(tiny_set)
    assert main(["show", str(tiny_set), "--out", str(tmp_path / "pictures")]) == 0
    assert (tmp_path / "pictures" / "steps.png").is_file()


@pytest.mark.parametrize("protocol", ["replay", "dataset"])
def test_evaluate_json_into_a_read_only_folder_is_refused_first(
    tiny_set, read_only, capsys, protocol
):
    read_only(tiny_set)
    report = tiny_set / "eval.json"
    assert main(["evaluate", str(tiny_set), "--protocol", protocol, "--json", str(report)]) == 1
    _one_line_error(
        capsys, f"cannot write {report}: {tiny_set} is read-only; choose another --json"
    )


def test_distill_into_a_read_only_folder_is_refused(tmp_path, read_only, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    read_only(locked)
    out = locked / "run"
    assert main(["distill", *TINY_FLAGS, "--iterations", "2", "--out", str(out)]) == 1
    _one_line_error(capsys, f"cannot write {out}: {locked} is read-only; choose another --out")
    assert not out.exists()


def test_out_that_is_a_file_is_refused(tmp_path, capsys):
    out = tmp_path / "notes.txt"
    out.write_text("my notes")
    assert main(["distill", *TINY_FLAGS, "--iterations", "2", "--out", str(out)]) == 1
    _one_line_error(capsys, f"{out} is an existing file, not a folder; choose another --out")
    assert out.read_text() == "my notes"


def test_out_holding_other_files_needs_force_and_keeps_them(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.yaml").write_text("my own config\n")
    (out / "notes.txt").write_text("keep me")
    args = ["distill", *TINY_FLAGS, "--iterations", "2", "--out", str(out)]
    assert main(args) == 1
    _one_line_error(capsys, "holds config.yaml, notes.txt but no distillation run")
    assert (out / "config.yaml").read_text() == "my own config\n"

    assert main([*args, "--force"]) == 0
    capsys.readouterr()
    assert (out / "notes.txt").read_text() == "keep me"
    assert (out / "distilled.safetensors").is_file()
    # --force never writes over a run.
    assert main([*args, "--force"]) == 1
    _one_line_error(capsys, "already holds a distillation run: pass --resume")


def test_resume_needs_a_checkpoint_and_touches_nothing(tmp_path, capsys):
    out = tmp_path / "nothing"
    assert main(["distill", "--resume", "--out", str(out)]) == 1
    _one_line_error(capsys, "nothing to resume in")
    assert not out.exists()
    assert main(["distill", "--resume"]) == 1
    _one_line_error(capsys, "--resume continues the run in --out")


def _interrupted_run(tmp_path, capsys, monkeypatch, name: str) -> Path:
    """A run of 8 iterations interrupted (Ctrl-C) in its 5th, after the checkpoint of its 4th."""
    grads_module = importlib.import_module("datadistill.outer_grads")
    real, calls = grads_module.meta_grad, []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    out = tmp_path / name
    flags = [*TINY_FLAGS, "--iterations", "8", "--checkpoint-every", "4", "--out", str(out)]
    with monkeypatch.context() as patch:
        patch.setattr(grads_module, "meta_grad", interrupted)
        assert main(["distill", *flags]) == 130
    assert (out / CHECKPOINT).is_file() and not (out / "distilled.safetensors").exists()
    capsys.readouterr()  # its progress bars
    return out


def test_resume_alone_continues_with_the_runs_own_settings(tmp_path, capsys, monkeypatch):
    straight = tmp_path / "straight"
    flags = [*TINY_FLAGS, "--iterations", "8", "--checkpoint-every", "4", "--out", str(straight)]
    assert main(["distill", *flags]) == 0
    out = _interrupted_run(tmp_path, capsys, monkeypatch, "resumed")
    # Stale temporaries of a checkpoint write that a kill interrupted.
    (out / ".checkpoint.safetensors.k1ll3d.tmp").write_bytes(b"")
    assert main(["distill", "--resume", "--out", str(out)]) == 0
    a = load_tensors(straight / "distilled.safetensors")
    b = load_tensors(out / "distilled.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not list(out.glob(".*.tmp"))
    assert json.loads((out / "manifest.json").read_text())["resume_history"] == []


def test_resume_with_a_new_lr_is_printed_and_recorded(tmp_path, capsys, monkeypatch):
    out = _interrupted_run(tmp_path, capsys, monkeypatch, "run")
    capsys.readouterr()
    assert main(["distill", "--resume", "--out", str(out), "--lr", "0.02"]) == 0
    err = capsys.readouterr().err
    assert "changed on resume: lr 0.05 -> 0.02 from iteration 4" in err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["resume_history"] == [{"iteration": 4, "changes": {"lr": [0.05, 0.02]}}]
    config_text = (out / "config.yaml").read_text()
    assert "# changed on resume: lr 0.05 -> 0.02 from iteration 4" in config_text
    assert yaml.safe_load(config_text)["lr"] == 0.02


def test_resume_refuses_changes_that_alter_the_result(tmp_path, capsys, monkeypatch):
    out = _interrupted_run(tmp_path, capsys, monkeypatch, "run")
    before = (out / CHECKPOINT).read_bytes()
    assert main(["distill", "--resume", "--out", str(out), "--steps", "3"]) == 1
    _one_line_error(capsys, "settings differ from the checkpoint (steps: 2 -> 3)")
    assert (out / CHECKPOINT).read_bytes() == before


def test_real_starting_images_need_enough_images_of_every_class(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["--init-images", "real", "--images-per-class", "200", "--iterations", "2"]
    assert main(["distill", *TINY_FLAGS, *args, "--out", str(out)]) == 1
    _one_line_error(
        capsys,
        "--images-per-class 200 with --init-images real needs 200 training images of every class",
    )
    assert not out.exists()


def test_distill_help_shows_what_the_bare_command_runs(capsys):
    with pytest.raises(SystemExit):
        main(["distill", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "the 'digits' preset applies first" in text
    for words in (
        "iterations 400",
        "lr 0.05",
        "batch_size 512",
        "model mlp",
        "(default: 400 from the digits preset; 1000 with --dataset",
        "(default: 512 from the digits preset; 1024 with --dataset",
    ):
        assert words in text, words


@pytest.mark.parametrize(
    "command",
    [
        ["baselines", "--dataset", "digits", "--json", "{locked}/b.json"],
        ["linear", "--json", "{locked}/l.json"],
        [
            "pretrain",
            "--dataset",
            "digits",
            "--model",
            "mlp",
            "--count",
            "1",
            "--out",
            "{locked}/p",
        ],
    ],
)
def test_every_command_checks_its_destinations_first(tmp_path, read_only, capsys, command):
    locked = tmp_path / "locked"
    locked.mkdir()
    read_only(locked)
    assert main([part.format(locked=locked) for part in command]) == 1
    _one_line_error(capsys, f"{locked} is read-only; choose another --")


@pytest.mark.parametrize("device", ["gpu", "cuda:x", "cuda"])
@pytest.mark.parametrize(
    "command",
    [
        ["distill", "--iterations", "1", "--out", "{tmp}/d"],
        ["evaluate", "{set}"],
        ["evaluate", "{set}", "--protocol", "dataset"],
        ["baselines", "--dataset", "digits"],
        ["pretrain", "--dataset", "digits", "--model", "mlp", "--count", "1", "--out", "{tmp}/p"],
        ["attack", "--pretrained", "{tmp}/pool", "--source-class", "0", "--target-class", "1"],
    ],
)
def test_every_command_refuses_a_device_it_cannot_use_in_one_line(
    tmp_path, tiny_set, capsys, monkeypatch, command, device
):
    monkeypatch.setattr(
        torch.cuda, "is_available", lambda: False
    )  # "cuda": as on a CPU-only machine
    argv = [part.format(tmp=tmp_path, set=tiny_set) for part in command] + ["--device", device]
    assert main(argv) == 1
    words = "no CUDA GPU is visible" if device == "cuda" else "--device takes cpu, cuda or cuda:N"
    _one_line_error(capsys, words)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set"]  # nothing written


@pytest.mark.parametrize(
    "command, cls",
    [
        ("distill", DistillConfig),
        ("evaluate", EvaluateConfig),
        ("baselines", BaselinesConfig),
        ("pretrain", PretrainConfig),
        ("linear", LinearConfig),
        ("attack", AttackConfig),
    ],
)
def test_every_offered_setting_is_an_option_with_its_help(command, cls, capsys):
    """Each command's options come from its config dataclass: one per field not marked hidden, with the
    field's help text; a hidden field is no option."""
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for f in dataclasses.fields(cls):
        cli = f.metadata["cli"]
        name = (
            cli.get("metavar", f.name) if cli.get("positional") else f"--{f.name.replace('_', '-')}"
        )
        if cli.get("hidden"):
            assert f"{name} " not in text, name
            continue
        assert f"{name} " in text or f"{name}," in text, name
        help_text = f.metadata["help"].split("%(")[0]  # up to an argparse placeholder
        assert "".join(help_text.split()) in "".join(text.split()), name  # lines wrap anywhere


def test_config_from_the_command_line_equals_the_library_default():
    """A bare command builds the dataclass's own defaults (the parser repeats none of them)."""
    from datadistill.cli import _config_from_args, build_parser

    parser = build_parser()
    args = parser.parse_args(["baselines"])
    assert _config_from_args(BaselinesConfig, args) == BaselinesConfig()
    args = parser.parse_args(
        ["attack", "--pretrained", "p", "--source-class", "2", "--target-class", "3"]
    )
    assert _config_from_args(AttackConfig, args) == AttackConfig(
        pretrained="p", source_class=2, target_class=3
    )
    args = parser.parse_args(["linear"])
    assert _config_from_args(LinearConfig, args) == LinearConfig()


def test_resume_alone_of_a_run_from_before_schedules_keeps_the_step_schedule(
    tmp_path, capsys, monkeypatch
):
    out = _interrupted_run(tmp_path, capsys, monkeypatch, "old")  # TINY_FLAGS: the step schedule
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved.pop("schedule") == "step" and saved["decay_every"] is not None
    (out / "config.yaml").write_text(yaml.safe_dump(saved))  # as written before the setting existed
    assert main(["distill", "--resume", "--out", str(out)]) == 0
    assert (out / "distilled.safetensors").is_file()


def test_ctrl_c_in_a_command_without_checkpoints_says_only_interrupted(
    tiny_set, capsys, monkeypatch
):
    def interrupted(cfg):
        raise KeyboardInterrupt

    # the module, not the function `datadistill.evaluate` that the package exports under its name
    monkeypatch.setattr(
        importlib.import_module("datadistill.evaluate"), "evaluate_run", interrupted
    )
    assert main(["evaluate", str(tiny_set)]) == 130
    assert capsys.readouterr().err == "interrupted\n"  # no --resume to offer


@pytest.mark.parametrize(
    "command",
    [
        ["linear", "--iterations", "1"],
        ["gallery"],
        ["attack", "--dataset", "digits", "--source-class", "0", "--target-class", "1"],
    ],
    ids=["linear", "gallery", "attack"],
)
def test_figure_flags_are_checked_before_the_work(command, tmp_path, capsys):
    flag = {"linear": "--plot", "gallery": "--thumbnails", "attack": "--heatmap"}[command[0]]
    blocker = tmp_path / "FILE"
    blocker.write_text("mine")
    if command[0] == "attack":
        command = [*command, "--pretrained", str(tmp_path / "pool"), "--out", str(tmp_path / "run")]
    assert main([*command, flag, str(tmp_path / "out.txt")]) == 1
    _one_line_error(capsys, f"{flag} {tmp_path / 'out.txt'}: a figure must end in one of .png")
    assert main([*command, flag, str(blocker / "x.png")]) == 1
    _one_line_error(capsys, f"cannot write {blocker / 'x.png'}: {blocker} is a file, not a folder")
    assert blocker.read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "FILE"
    ]  # no pool pre-trained, no run begun


def test_a_bare_dataset_protocol_run_says_the_default_preset_is_for_replay(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["distill", "--protocol", "dataset", "--iterations", "1", "--out", str(out)]) == 1
    _one_line_error(capsys, "the 'digits' preset runs, and it is made for the replay protocol")
    assert not out.exists()


def test_a_benchmark_script_reports_bad_input_as_the_command_does(tmp_path):
    """benchmarks/*.py end with run_script(main): one line `script.py: error: …`, status 1, no traceback."""
    import subprocess
    import sys

    script = tmp_path / "bench.py"
    script.write_text(
        "from datadistill.cli import run_script\n"
        "def main():\n"
        "    raise ValueError('--epochs must be a positive integer, got 0')\n"
        "run_script(main)\n"
    )
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 1
    assert done.stderr == "bench.py: error: --epochs must be a positive integer, got 0\n"
    for result in ("None", "{'accuracy': 90.0}"):  # a script's main may return its result: success
        script.write_text(f"from datadistill.cli import run_script\nrun_script(lambda: {result})\n")
        done = subprocess.run([sys.executable, str(script)], capture_output=True, check=False)
        assert done.returncode == 0 and done.stderr == b""


def test_the_scripts_argument_types_refuse_what_they_would_divide_by_or_overflow_on():
    import argparse

    from datadistill.cli import count_arg, seed_arg

    assert count_arg("3") == 3 and seed_arg("0") == 0
    for bad in ("0", "-2", "a", "1.5"):
        with pytest.raises(argparse.ArgumentTypeError, match="expected a whole number >= 1"):
            count_arg(bad)
    for bad in ("-1", "1000000000", "x"):
        with pytest.raises(
            argparse.ArgumentTypeError, match=r"expected a whole number in \[0, 1e9\)"
        ):
            seed_arg(bad)


def test_scripts_that_start_runs_afresh_name_a_folder_holding_one(tiny_set, tmp_path, capsys):
    import argparse

    from datadistill.cli import refuse_started_runs

    parser = argparse.ArgumentParser(prog="bench.py")
    refuse_started_runs(parser, [tmp_path / "absent", tmp_path])  # neither holds a run
    with pytest.raises(SystemExit):
        refuse_started_runs(parser, [tmp_path, tiny_set])
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"bench.py: error: {tiny_set} already holds a distillation run: remove it or choose another --out "
        f"(continue it with `datadistill distill --resume --out {tiny_set}`)"
    )


def test_a_scripts_outputs_are_checked_before_its_work(tiny_set, tmp_path):
    import argparse

    from datadistill.cli import checked_args

    parser = argparse.ArgumentParser()
    for flag in ("--json", "--md", "--png", "--out"):
        parser.add_argument(flag)
    assert checked_args(parser, ["--json", str(tmp_path / "r.json")]).json == str(
        tmp_path / "r.json"
    )
    with pytest.raises(FileExistsError, match="would overwrite the run's own manifest.json"):
        checked_args(parser, ["--json", str(tiny_set / "manifest.json")])
    with pytest.raises(FileExistsError, match="is a folder; give --md a file path"):
        checked_args(parser, ["--md", str(tmp_path)])
    with pytest.raises(ValueError, match="--png .*a figure must end in one of"):
        checked_args(parser, ["--png", str(tmp_path / "t.txt")])
    (tmp_path / "file").write_text("mine")
    with pytest.raises(
        FileExistsError, match="is an existing file, not a folder; choose another --out"
    ):
        checked_args(parser, ["--out", str(tmp_path / "file")])


@pytest.mark.parametrize(
    "argv", [["evaluate", "RUN", "--json", ""], ["export", "RUN", "--out", ""]]
)
def test_an_empty_path_is_refused_not_read_as_the_working_directory(argv, tiny_set, capsys):
    argv = [str(tiny_set) if a == "RUN" else a for a in argv]
    assert main(argv) == 1
    _one_line_error(capsys, "is empty: give it a path")


def test_show_says_how_many_images_a_formation_set_decodes_to(tiny_set, tmp_path, capsys):
    data = DistilledData.load(tiny_set)
    data.manifest["formation"] = 2
    data.save(tmp_path / "f2")
    assert main(["show", str(tmp_path / "f2")]) == 0
    out = capsys.readouterr().out
    assert '"formation": 2' in out and "formation 2: 20 stored images decode to 80" in out

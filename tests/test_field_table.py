"""benchmarks/field_table.py refuses a bad flag with one line before it distils anything (a cell runs for an
hour; a bad --models found after it would lose the hour)."""

import runpy
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "field_table.py"


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--models", "0"], "--models"),
        (["--epochs", "0"], "--epochs"),
        (["--minutes", "-1"], "--minutes"),
        (["--minutes", "nan"], "--minutes"),
        (["--cross-arch", "lenett"], "'lenett'"),
        (["--cells", "mnist:5"], "--cells"),
        (["--nproc", "0"], "--nproc"),
        (["--jobs", "0"], "--jobs"),
        (["--device", "gpu"], "--device"),
        (["--set", "unroll=0"], "unroll"),
    ],
)
def test_bad_flag_is_one_line_before_any_work(tmp_path, monkeypatch, capsys, flags, named):
    monkeypatch.syspath_prepend(str(SCRIPT.parent))  # as `python benchmarks/field_table.py` has it
    monkeypatch.setattr(sys, "argv", [SCRIPT.name, *flags, "--out", str(tmp_path / "runs")])
    with pytest.raises(SystemExit) as exit:
        runpy.run_path(str(SCRIPT), run_name="__main__")
    assert exit.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("field_table.py: error:") and named in last
    assert not (tmp_path / "runs").exists()


def test_a_cell_stopped_mid_way_is_named_before_any_other_cell_distils(
    tmp_path, monkeypatch, capsys
):
    """The script has no --resume; a cell folder holding a checkpoint is the user's to continue or remove."""
    stopped = tmp_path / "runs" / "fashion-mnist-1"
    stopped.mkdir(parents=True)
    (stopped / "checkpoint.safetensors").write_bytes(b"state")
    monkeypatch.syspath_prepend(str(SCRIPT.parent))
    argv = [SCRIPT.name, "--cells", "mnist:1", "fashion-mnist:1", "--out", str(tmp_path / "runs")]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exit:
        runpy.run_path(str(SCRIPT), run_name="__main__")
    assert exit.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last == (
        f"field_table.py: error: {stopped} already holds a distillation run: remove it or choose another "
        f"--out (continue it with `datadistill distill --resume --out {stopped}`)"
    )
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["fashion-mnist-1"]
    assert (stopped / "checkpoint.safetensors").read_bytes() == b"state"

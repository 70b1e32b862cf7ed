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

"""torchrun data parallelism over inits: same answer as one process, and a dead rank stops the job."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from datadistill.artifacts import load_tensors
from datadistill.checkpoint import CHECKPOINT
from datadistill.distributed import init_world, resolve_device


def torchrun(test):
    """Processes started with torchrun: ~15 s each."""
    return pytest.mark.distributed(pytest.mark.slow(test))


COMMON = [
    "--dataset",
    "digits",
    "--model",
    "mlp",
    "--init",
    "random",
    "--steps",
    "2",
    "--epochs",
    "2",
    "--batch-size",
    "256",
    "--lr",
    "0.05",
    "--eval-every",
    "1000",
    "--eval-models",
    "4",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "DATADISTILL_DIST_TIMEOUT": "30"}


def _torchrun(nproc: int, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node",
        str(nproc),
        "--master-addr",
        "127.0.0.1",
        "--master-port",
        str(_free_port()),
        "-m",
        "datadistill",
        "distill",
        *COMMON,
        *args,
    ]


def _distil(cmd: list[str]) -> dict[str, torch.Tensor]:
    """Run a distillation command; return the tensors of the set it wrote to its --out."""
    done = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return load_tensors(Path(cmd[cmd.index("--out") + 1]) / "distilled.safetensors")


def _single(*args: str) -> list[str]:
    return [sys.executable, "-m", "datadistill", "distill", *COMMON, *args]


@pytest.mark.parametrize("labels", [[], ["--learn-labels", "--label-targets", "free"]])
@torchrun
def test_two_ranks_times_k_equal_one_process_times_2k(tmp_path, labels):
    one, two = tmp_path / "one", tmp_path / "two"
    a = _distil(
        _single("--inits-per-iteration", "4", "--iterations", "4", "--out", str(one), *labels)
    )
    b = _distil(
        _torchrun(2, "--inits-per-iteration", "2", "--iterations", "4", "--out", str(two), *labels)
    )
    # Same inits and batches; only the float summation order differs (Adam steps are 0.05).
    torch.testing.assert_close(a["images"], b["images"], rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(a["lrs"], b["lrs"], rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(a["labels"], b["labels"], rtol=1e-3, atol=1e-3)
    assert a["labels"].is_floating_point() == bool(labels)
    assert "processes" in (two / "manifest.json").read_text()


@torchrun
def test_batch_per_rank_on_two_ranks_equals_one_process_with_both_batches(tmp_path):
    """With one fixed θ_0 the mean of two ranks' meta-gradients, each on its own B real images, is the
    meta-gradient of the mean loss over those 2B images: one process with --batch-size 2B."""
    one, two = tmp_path / "one", tmp_path / "two"
    fixed = ["--init", "fixed", "--iterations", "3"]
    a = _distil(_single(*fixed, "--batch-size", "512", "--out", str(one)))
    b = _distil(
        _torchrun(2, *fixed, "--inits-per-iteration", "1", "--batch-per-rank", "--out", str(two))
    )
    torch.testing.assert_close(a["images"], b["images"], rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(a["lrs"], b["lrs"], rtol=1e-4, atol=1e-6)
    assert json.loads((two / "manifest.json").read_text())["real_batch"] == 512
    shared = tmp_path / "shared"  # without the flag both ranks take the same 256: another answer
    c = _distil(_torchrun(2, *fixed, "--inits-per-iteration", "1", "--out", str(shared)))
    assert not torch.allclose(b["images"], c["images"], rtol=1e-3, atol=1e-3)


def _worker_pids(launcher: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(launcher)], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


@torchrun
def test_a_dead_rank_stops_the_job_and_resume_finishes_it(tmp_path):
    out = tmp_path / "run"
    args = [
        "--inits-per-iteration",
        "1",
        "--iterations",
        "400",
        "--checkpoint-every",
        "5",
        "--out",
        str(out),
    ]
    launcher = subprocess.Popen(
        _torchrun(2, *args),
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 180
    while not (out / CHECKPOINT).exists() and time.time() < deadline:
        time.sleep(0.1)
    assert (out / CHECKPOINT).exists(), "no checkpoint was written"
    workers = _worker_pids(launcher.pid)
    assert len(workers) == 2
    os.kill(workers[1], signal.SIGKILL)
    try:
        status = launcher.wait(timeout=90)  # bounded: no hang on the surviving rank
    except subprocess.TimeoutExpired:
        launcher.kill()
        pytest.fail("the job did not stop within 90 s of a rank dying")
    assert status != 0
    assert not (out / "distilled.safetensors").exists()

    resumed = subprocess.run(
        _torchrun(2, *args[:-2], "--iterations", "20", "--out", str(out), "--resume"),
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert Path(out / "distilled.safetensors").is_file()


@pytest.mark.parametrize("name", ["gpu", "cuda:", "cuda:-1", "CPU", "cuda:0 ", ""])
def test_a_device_that_is_no_device_name_is_refused_in_one_line(name):
    with pytest.raises(ValueError, match=r"^--device takes cpu, cuda or cuda:N, got "):
        resolve_device(name)


def test_cuda_on_a_machine_without_one_says_so(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="no CUDA GPU is visible; use --device cpu"):
        resolve_device("cuda:0")


def test_a_gpu_index_past_the_last_gpu_names_the_ones_there(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda:1") == torch.device("cuda:1")
    with pytest.raises(
        ValueError, match=r"--device cuda:2 names a GPU .* has 2 \(cuda:0 to cuda:1\)"
    ):
        resolve_device("cuda:2")


def test_cuda_under_torchrun_is_the_ranks_own_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert resolve_device("cuda") == torch.device("cuda:1")
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is for a machine without a GPU")
def test_a_rank_asked_for_cuda_without_a_gpu_gets_the_fix_not_the_backends_error(monkeypatch):
    # torchrun ... --device cuda on a CPU machine said "Distributed package doesn't have NCCL built in"
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match="no CUDA GPU is visible; use --device cpu"):
        init_world("cuda")

"""Tests for datadistill.data.files: data dir resolution, checksum verification and its cache,
and downloads against a real HTTP server on 127.0.0.1 (success, mirror, corrupt file, 404,
offline, timeout, archive unpacking). Nothing here touches the internet.
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import hashlib
import io
import os
import socket
import struct
import tarfile
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch

from datadistill.data import (
    DatasetSpec,
    FileSpec,
    get_dataset_spec,
    load_dataset,
    register_dataset,
    resolve_data_dir,
)
from datadistill.data import files as files_module
from datadistill.data.registry import _unregister_dataset

MNIST_NAMES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


# ----------------------------------------------------------------------------- fixtures


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # keep pytest output clean
        pass


@pytest.fixture
def server(tmp_path):
    """An HTTP server on 127.0.0.1 (random port, own thread) serving tmp_path/"served"."""
    root = tmp_path / "served"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    # A short poll interval so shutdown() returns quickly at teardown.
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", root
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture
def closed_port():
    """A local port with nothing listening: connecting fails at once, like being offline."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def register():
    names = []

    def _register(spec: DatasetSpec) -> DatasetSpec:
        register_dataset(spec)
        names.append(spec.name)
        return spec

    yield _register
    for name in names:
        _unregister_dataset(name)


@pytest.fixture(autouse=True)
def _no_mirror(monkeypatch):
    """Tests decide about the mirror themselves; a developer's setting must not leak in."""
    monkeypatch.delenv("DATADISTILL_MIRROR", raising=False)


def _idx_gz(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return gzip.compress(header + array.astype(np.uint8).tobytes(), mtime=0)


def _tiny_mnist(folder: Path) -> dict[str, bytes]:
    """Write four tiny MNIST-format files (5 train, 3 test images) and return their bytes."""
    rng = np.random.default_rng(0)
    blobs = {}
    for split, n in (("train", 5), ("test", 3)):
        images_name, labels_name = MNIST_NAMES[split]
        blobs[images_name] = _idx_gz(rng.integers(0, 256, size=(n, 28, 28)))
        blobs[labels_name] = _idx_gz(np.arange(n) % 10)
    folder.mkdir(parents=True, exist_ok=True)
    for name, blob in blobs.items():
        (folder / name).write_bytes(blob)
    return blobs


def _tiny_spec(name: str, blobs: dict[str, bytes], base_url: str, **overrides) -> DatasetSpec:
    """An MNIST-shaped spec named `name`, files under subdir `name`, pinned to `blobs`."""
    files = tuple(
        FileSpec(
            name=fname,
            sha256=hashlib.sha256(blob).hexdigest(),
            md5=hashlib.md5(blob).hexdigest(),
            url=f"{base_url}/{name}/{fname}",
            split="train" if fname.startswith("train") else "test",
        )
        for fname, blob in blobs.items()
    )
    return dataclasses.replace(
        get_dataset_spec("mnist"), name=name, subdir=name, files=files, **overrides
    )


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*")) if folder.exists() else []


# ----------------------------------------------------------------------------- data dir


def test_resolve_data_dir_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("DATADISTILL_DATA", raising=False)
    assert resolve_data_dir() == tmp_path / "cache" / "datadistill"
    monkeypatch.setenv("DATADISTILL_DATA", str(tmp_path / "env"))
    assert resolve_data_dir() == tmp_path / "env"
    assert resolve_data_dir(tmp_path / "arg") == tmp_path / "arg"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATADISTILL_DATA", "relative/data")
    assert resolve_data_dir() == tmp_path / "relative" / "data"  # absolute, against the cwd
    assert not (tmp_path / "relative").exists()  # resolving creates nothing


# ----------------------------------------------------------------------------- downloads


def test_a_data_dir_that_is_a_file_is_refused_naming_where_it_came_from(tmp_path, monkeypatch):
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    with pytest.raises(ValueError, match="--data-dir .*notes.txt is a file, not a folder"):
        resolve_data_dir(notes)
    monkeypatch.setenv("DATADISTILL_DATA", str(notes))
    with pytest.raises(ValueError, match=r"\$DATADISTILL_DATA .*notes.txt is a file"):
        resolve_data_dir()
    assert notes.read_text() == "mine"


def test_download_verify_and_load(server, tmp_path, register):
    base, served = server
    blobs = _tiny_mnist(served / "tiny")
    register(_tiny_spec("tiny", blobs, base))
    data_dir = tmp_path / "data"

    test = load_dataset("tiny", "test", data_dir=data_dir)
    assert test.images.shape == (3, 1, 28, 28) and test.labels.tolist() == [0, 1, 2]
    # Only the test split's files were fetched, byte-identical, with no temp files left.
    folder = data_dir / "tiny"
    assert _leftovers(folder) == sorted([".verified.json", *MNIST_NAMES["test"]])
    for name in MNIST_NAMES["test"]:
        assert (folder / name).read_bytes() == blobs[name]

    train = load_dataset("tiny", "train", data_dir=data_dir)
    assert len(train) == 5
    raw = np.frombuffer(gzip.decompress(blobs["train-images-idx3-ubyte.gz"]), np.uint8, offset=16)
    pixels = train.denormalize(train.images).flatten()
    assert torch.allclose(pixels, torch.from_numpy(raw / 255).float(), atol=1e-5)


def test_mirror_takes_precedence(server, tmp_path, register, monkeypatch, closed_port):
    base, served = server
    blobs = _tiny_mnist(served / "tiny")
    register(_tiny_spec("tiny", blobs, f"http://127.0.0.1:{closed_port}"))  # canonical URL is dead
    monkeypatch.setenv("DATADISTILL_MIRROR", base + "/")  # serves <subdir>/<file>
    assert len(load_dataset("tiny", "train", data_dir=tmp_path / "data")) == 5


def test_corrupt_download_is_rejected_and_removed(server, tmp_path, register):
    base, served = server
    blobs = _tiny_mnist(served / "tiny")
    spec = _tiny_spec("tiny", blobs, base)
    bad = dataclasses.replace(spec.files[0], sha256="0" * 64)  # train images: first fetched
    register(dataclasses.replace(spec, files=(bad, *spec.files[1:])))
    data_dir = tmp_path / "data"

    with pytest.raises(ValueError) as info:
        load_dataset("tiny", "train", data_dir=data_dir)
    message = str(info.value)
    assert "checksum mismatch" in message and bad.name in message
    assert "0" * 64 in message and hashlib.sha256(blobs[bad.name]).hexdigest() in message
    assert "not kept" in message
    assert _leftovers(data_dir) == []  # no temp file, no corrupt file, no empty folder


def test_404_is_a_clear_error_with_nothing_left_behind(server, tmp_path, register):
    base, served = server
    blobs = _tiny_mnist(served / "tiny")
    (served / "tiny" / "train-labels-idx1-ubyte.gz").unlink()  # the server lacks one file
    register(_tiny_spec("tiny", blobs, base))
    folder = tmp_path / "data" / "tiny"

    with pytest.raises(FileNotFoundError) as info:
        load_dataset("tiny", "train", data_dir=tmp_path / "data")
    message = str(info.value)
    assert "HTTP 404" in message and "train-labels-idx1-ubyte.gz" in message
    assert str(folder) in message and "$DATADISTILL_DATA" in message
    # The file that did download is complete and verified; nothing partial exists.
    assert _leftovers(folder) == ["train-images-idx3-ubyte.gz"]


def test_offline_error_says_what_to_do(tmp_path, register, closed_port):
    blobs = _tiny_mnist(tmp_path / "unused")
    spec = register(_tiny_spec("tiny", blobs, f"http://127.0.0.1:{closed_port}"))
    data_dir = tmp_path / "data"

    with pytest.raises(FileNotFoundError) as info:
        load_dataset("tiny", "test", data_dir=data_dir)
    message = str(info.value)
    assert "'tiny'" in message and str(data_dir / "tiny") in message
    assert "t10k-images-idx3-ubyte.gz" in message
    assert spec.files_for("test")[0].url in message  # where to get it
    assert "--data-dir" in message and "$DATADISTILL_DATA" in message
    assert "network" in message
    assert not data_dir.exists()  # folders created for the download are removed again


def test_download_false_never_touches_the_network(tmp_path, register, monkeypatch):
    blobs = _tiny_mnist(tmp_path / "unused")
    register(_tiny_spec("tiny", blobs, "http://example.invalid"))
    monkeypatch.setattr(files_module, "_download", pytest.fail)
    with pytest.raises(FileNotFoundError, match="download=False"):
        load_dataset("tiny", data_dir=tmp_path / "data", download=False)
    assert not (tmp_path / "data").exists()


def test_download_times_out(tmp_path, register, monkeypatch):
    blobs = _tiny_mnist(tmp_path / "unused")
    # A server that accepts the connection (kernel backlog) but never answers.
    with socket.create_server(("127.0.0.1", 0)) as silent:
        port = silent.getsockname()[1]
        register(_tiny_spec("tiny", blobs, f"http://127.0.0.1:{port}"))
        monkeypatch.setattr(files_module, "_DOWNLOAD_TIMEOUT_S", 0.3)
        with pytest.raises(FileNotFoundError, match="timed out"):
            load_dataset("tiny", "test", data_dir=tmp_path / "data")
    assert _leftovers(tmp_path / "data") == []


def test_canonical_urls_and_mirror_layout(monkeypatch):
    mnist = get_dataset_spec("mnist")
    assert mnist.files[0].url.startswith("https://ossci-datasets.s3.amazonaws.com/mnist/")
    monkeypatch.setenv("DATADISTILL_MIRROR", "http://mirror.local/data")
    url = files_module._source_url(mnist, mnist.files[0])
    assert url == f"http://mirror.local/data/mnist/{mnist.files[0].name}"


# ----------------------------------------------------------------------------- verification


def test_existing_corrupt_file_is_never_used(tmp_path, register):
    blobs = _tiny_mnist(tmp_path / "data" / "tiny")
    register(_tiny_spec("tiny", blobs, "http://example.invalid"))
    path = tmp_path / "data" / "tiny" / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(_idx_gz(np.array([7, 7, 7])))  # valid format, wrong content

    with pytest.raises(ValueError) as info:
        load_dataset("tiny", "test", data_dir=tmp_path / "data", download=False)
    message = str(info.value)
    assert str(path) in message and "expected sha256" in message and "Delete it" in message
    assert path.exists()  # the user's file is reported, not deleted


def test_verification_is_cached_and_invalidated(tmp_path, register, monkeypatch):
    blobs = _tiny_mnist(tmp_path / "data" / "tiny")
    register(_tiny_spec("tiny", blobs, "http://example.invalid"))
    load_dataset("tiny", "test", data_dir=tmp_path / "data", download=False)
    assert (tmp_path / "data" / "tiny" / ".verified.json").is_file()

    # A fresh process (empty in-memory memo) trusts the cache file and hashes nothing.
    monkeypatch.setattr(files_module, "_VERIFIED_IN_PROCESS", set())
    monkeypatch.setattr(files_module, "_hash_file", pytest.fail)
    load_dataset("tiny", "test", data_dir=tmp_path / "data", download=False)

    # Any change of size or mtime forces a new check, which now fails.
    monkeypatch.undo()
    path = tmp_path / "data" / "tiny" / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(ValueError, match="checksum mismatch"):
        load_dataset("tiny", "test", data_dir=tmp_path / "data", download=False)


@pytest.mark.parametrize("fresh_process", [False, True])
def test_file_corrupted_in_place_with_size_and_mtime_kept_gives_the_checksum_message(
    tmp_path, register, monkeypatch, fresh_process
):
    blobs = _tiny_mnist(tmp_path / "data" / "tiny")
    register(_tiny_spec("tiny", blobs, "http://example.invalid"))
    load_dataset("tiny", "test", data_dir=tmp_path / "data", download=False)  # verified, cached
    if fresh_process:  # only the .verified.json file vouches for it
        monkeypatch.setattr(files_module, "_VERIFIED_IN_PROCESS", set())

    path = tmp_path / "data" / "tiny" / "t10k-images-idx3-ubyte.gz"
    st = path.stat()
    raw = bytearray(path.read_bytes())
    raw[:4] = b"\xde\xad\xbe\xef"  # no longer a gzip stream; same size
    path.write_bytes(bytes(raw))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # same mtime: the cache still trusts it
    assert path.stat().st_size == st.st_size and path.stat().st_mtime_ns == st.st_mtime_ns

    with pytest.raises(ValueError, match="checksum mismatch") as info:
        load_dataset("tiny", "test", data_dir=tmp_path / "data", download=False)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    # The next load hashes the file again instead of trusting the stale entry.
    monkeypatch.setattr(files_module, "_VERIFIED_IN_PROCESS", set())
    with pytest.raises(ValueError, match="checksum mismatch"):
        load_dataset("tiny", "test", data_dir=tmp_path / "data", download=False)


def test_undecodable_file_without_a_digest_names_the_folder(tmp_path, register):
    blobs = _tiny_mnist(tmp_path / "data" / "tiny")
    spec = _tiny_spec("tiny", blobs, "http://example.invalid")
    unpinned = tuple(dataclasses.replace(f, sha256=None, md5=None) for f in spec.files)
    register(dataclasses.replace(spec, files=unpinned))
    (tmp_path / "data" / "tiny" / "t10k-images-idx3-ubyte.gz").write_bytes(b"not gzip at all")
    with pytest.raises(ValueError, match="cannot decode the files in .*tiny.*BadGzipFile"):
        load_dataset("tiny", "test", data_dir=tmp_path / "data", download=False)


def test_read_only_folder_gets_no_cache_file(tmp_path, register):
    folder = tmp_path / "data" / "tiny"
    blobs = _tiny_mnist(folder)
    register(_tiny_spec("tiny", blobs, "http://example.invalid"))
    folder.chmod(0o555)
    try:
        load_dataset("tiny", "test", data_dir=tmp_path / "data", download=False)
        assert not (folder / ".verified.json").exists()
    finally:
        folder.chmod(0o755)


# ----------------------------------------------------------------------------- archives (CIFAR-10)


def _cifar_tarball(n: int = 2) -> tuple[bytes, dict[str, bytes]]:
    """A cifar-10-python.tar.gz look-alike with tiny batches (and one member we never extract)."""
    import pickle

    rng = np.random.default_rng(3)
    members = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        batch = {b"data": data, b"labels": [int(v) for v in rng.integers(0, 10, size=n)]}
        members[f"cifar-10-batches-py/{name}"] = pickle.dumps(batch, protocol=2)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, blob in {**members, "cifar-10-batches-py/readme.html": b"<html/>"}.items():
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return buffer.getvalue(), members


def test_archive_is_downloaded_verified_and_unpacked(server, tmp_path, register):
    base, served = server
    tarball, members = _cifar_tarball()
    (served / "cifar-fixture").mkdir()
    (served / "cifar-fixture" / "cifar-10-python.tar.gz").write_bytes(tarball)
    real = get_dataset_spec("cifar10")
    files = tuple(
        dataclasses.replace(f, sha256=hashlib.sha256(members[f.name]).hexdigest(), md5=None)
        for f in real.files
    )
    archive = FileSpec(
        name="cifar-10-python.tar.gz",
        sha256=None,
        md5=hashlib.md5(tarball).hexdigest(),
        url=f"{base}/cifar-fixture/cifar-10-python.tar.gz",
    )
    register(
        dataclasses.replace(
            real, name="cifar-fixture", subdir="cifar-fixture", files=files, archive=archive
        )
    )
    data_dir = tmp_path / "data"

    test = load_dataset("cifar-fixture", "test", data_dir=data_dir)
    assert test.images.shape == (2, 3, 32, 32)
    folder = data_dir / "cifar-fixture"
    for name, blob in members.items():  # every split unpacked in one pass
        assert (folder / name).read_bytes() == blob
    assert not (folder / "cifar-10-batches-py" / "readme.html").exists()  # only what we need
    assert not [p for p in folder.rglob("*.part")]
    assert len(load_dataset("cifar-fixture", "train", data_dir=data_dir, download=False)) == 10


def test_corrupt_archive_is_rejected(server, tmp_path, register):
    base, served = server
    tarball, _ = _cifar_tarball()
    (served / "cifar-fixture").mkdir()
    (served / "cifar-fixture" / "cifar-10-python.tar.gz").write_bytes(tarball[:-10] + bytes(10))
    real = get_dataset_spec("cifar10")
    archive = dataclasses.replace(
        real.archive,
        md5=hashlib.md5(tarball).hexdigest(),
        url=f"{base}/cifar-fixture/cifar-10-python.tar.gz",
    )
    register(
        dataclasses.replace(real, name="cifar-fixture", subdir="cifar-fixture", archive=archive)
    )
    with pytest.raises(ValueError, match="checksum mismatch.*cifar-10-python.tar.gz"):
        load_dataset("cifar-fixture", "test", data_dir=tmp_path / "data")
    assert _leftovers(tmp_path / "data") == []

"""Where data sets live on disk, and getting checksum-verified files there.

Three rules hold here:

* A file is read only after its known digests match. Verification results are cached in
  ``<folder>/.verified.json`` keyed by file size and mtime, so only the first load pays for hashing.
* A download (or an archive member) is streamed to a temporary file in the destination folder,
  verified, and only then ``os.replace``-d into place. On any failure the temporary file is deleted,
  so nothing half-written is ever left behind.
* Errors say what is missing, where it was looked for, and how to get it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tarfile
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import IO

from datadistill.data.registry import DatasetSpec, FileSpec

logger = logging.getLogger(__name__)

_ENV_DATA = "DATADISTILL_DATA"  # data root when --data-dir is not given
_ENV_MIRROR = "DATADISTILL_MIRROR"  # base URL serving <subdir>/<file name>; overrides spec URLs
_DOWNLOAD_TIMEOUT_S = 30.0  # per socket operation, so a dead server fails instead of hanging
_VERIFIED_NAME = ".verified.json"
_CHUNK = 1 << 20
_USER_AGENT = "datadistill"  # some hosts refuse urllib's default agent

# Digests already checked in this process, keyed by (path, size, mtime_ns, expected digests).
# This keeps read-only folders (where no .verified.json can be written) fast on repeated loads.
_VERIFIED_IN_PROCESS: set[tuple[str, int, int, tuple[tuple[str, str], ...]]] = set()


def resolve_data_dir(data_dir: str | Path | None = None) -> Path:
    """The folder that holds one sub-folder per data set.

    Precedence: the `data_dir` argument (``--data-dir``), else ``$DATADISTILL_DATA``, else the user
    cache dir (``$XDG_CACHE_HOME/datadistill``, default ``~/.cache/datadistill``). Relative paths
    are resolved against the current working directory. Nothing is created here.

    Args:
        data_dir: An explicit folder, or None to fall back to the environment.

    Returns:
        An absolute path (it may not exist yet).

    Raises:
        ValueError: the path exists and is a file.
    """
    source = "--data-dir"
    if data_dir is None or str(data_dir) == "":
        data_dir, source = os.environ.get(_ENV_DATA) or None, f"${_ENV_DATA}"
    if data_dir is None:
        cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        data_dir, source = (
            Path(cache) / "datadistill",
            "the cache folder ($XDG_CACHE_HOME/datadistill)",
        )
    folder = Path(data_dir).expanduser().resolve()
    if folder.exists() and not folder.is_dir():
        raise ValueError(
            f"{source} {data_dir} is a file, not a folder: point it to the folder holding one sub-folder "
            "per data set (see `datadistill datasets`)"
        )
    return folder


def _expected_digests(fspec: FileSpec) -> dict[str, str]:
    """The known digests of a file, by hashlib algorithm name."""
    expected = {"sha256": fspec.sha256, "md5": fspec.md5}
    return {alg: value.lower() for alg, value in expected.items() if value}


def _hash_file(path: Path, algorithms: Iterable[str]) -> dict[str, str]:
    """Hex digests of a file, all algorithms computed in one pass over the bytes."""
    hashers = {alg: hashlib.new(alg) for alg in algorithms}
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            for h in hashers.values():
                h.update(chunk)
    return {alg: h.hexdigest() for alg, h in hashers.items()}


def _mismatch_message(
    dataset: str, what: str, expected: dict[str, str], actual: dict[str, str]
) -> str:
    """Name the first digest that differs, with both values."""
    alg = next(a for a in expected if expected[a] != actual[a])
    return (
        f"dataset {dataset!r}: checksum mismatch for {what}: expected {alg} {expected[alg]}, "
        f"got {actual[alg]}. The file is corrupt or not the canonical release"
    )


def _writable_dir(folder: Path) -> bool:
    """Whether we may add our cache file to `folder`.

    The mode bits are checked as well as os.access because os.access says yes to root even for
    a folder someone made read-only on purpose (a shared data set copy).
    """
    try:
        mode = folder.stat().st_mode
    except OSError:
        return False
    return bool(mode & 0o222) and os.access(folder, os.W_OK)


class _VerifiedCache:
    """Which files in one folder have already matched their expected digests."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.path = folder / _VERIFIED_NAME
        self.entries: dict[str, dict] = {}
        self.dirty = False
        with contextlib.suppress(OSError, ValueError):
            data = json.loads(self.path.read_text())
            if isinstance(data, dict) and isinstance(data.get("files"), dict):
                self.entries = data["files"]

    @staticmethod
    def _key(path: Path, st: os.stat_result, expected: dict[str, str]):
        return (str(path), st.st_size, st.st_mtime_ns, tuple(sorted(expected.items())))

    def is_verified(self, fspec: FileSpec, expected: dict[str, str]) -> bool:
        path = self.folder / fspec.name
        st = path.stat()
        if self._key(path, st, expected) in _VERIFIED_IN_PROCESS:
            return True
        entry = self.entries.get(fspec.name)
        return (
            isinstance(entry, dict)
            and entry.get("size") == st.st_size
            and entry.get("mtime_ns") == st.st_mtime_ns
            and entry.get("digests") == expected
        )

    def record(self, fspec: FileSpec, expected: dict[str, str]) -> None:
        path = self.folder / fspec.name
        st = path.stat()
        _VERIFIED_IN_PROCESS.add(self._key(path, st, expected))
        entry = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "digests": expected}
        if self.entries.get(fspec.name) != entry:
            self.entries[fspec.name] = entry
            self.dirty = True

    def forget(self, fspec: FileSpec) -> None:
        """Drop a file whose digest no longer matches (changed in place with size and mtime kept)."""
        path = self.folder / fspec.name
        for key in [k for k in _VERIFIED_IN_PROCESS if k[0] == str(path)]:
            _VERIFIED_IN_PROCESS.discard(key)
        if self.entries.pop(fspec.name, None) is not None:
            self.dirty = True

    def save(self) -> None:
        """Write the cache atomically; silently skipped where the folder is read-only."""
        if not self.dirty or not _writable_dir(self.folder):
            return
        text = json.dumps({"version": 1, "files": self.entries}, indent=1, sort_keys=True)
        with contextlib.suppress(OSError):
            _atomic_write_bytes(self.path, text.encode())
        self.dirty = False


def _atomic_write_bytes(dest: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _verify_files(
    spec: DatasetSpec, folder: Path, fspecs: Iterable[FileSpec], *, recheck: bool = False
) -> None:
    """Check each file's known digests (cached by size + mtime; ``recheck=True`` hashes them anyway).

    Files with no known digest are accepted as they are: nothing trusted exists to compare with.

    Raises:
        ValueError: On the first file whose digest differs; the file is not read further.
    """
    cache = _VerifiedCache(folder)
    try:
        for fspec in fspecs:
            expected = _expected_digests(fspec)
            if not expected or (not recheck and cache.is_verified(fspec, expected)):
                continue
            path = folder / fspec.name
            actual = _hash_file(path, expected)
            if actual != expected:
                cache.forget(fspec)
                source = fspec.url or spec.homepage
                raise ValueError(
                    _mismatch_message(spec.name, str(path), expected, actual)
                    + f". Delete it and load again to download a fresh copy, or replace it with "
                    f"the file from {source}."
                )
            cache.record(fspec, expected)
    finally:
        cache.save()  # keep what did verify, even when a later file fails


def recheck_after_read_error(
    spec: DatasetSpec, folder: Path, fspecs: Iterable[FileSpec], err: Exception
) -> Exception:
    """The error to raise when a reader failed on files the cache had trusted by size and mtime.

    Their digests are checked again: a file changed in place gives the checksum-mismatch message (and
    leaves the cache); otherwise a one-line ValueError that names the folder and the decoding error.
    """
    try:
        _verify_files(spec, folder, fspecs, recheck=True)
    except ValueError as mismatch:
        return mismatch
    if isinstance(err, ValueError):
        return err  # the readers' own messages already say what is wrong with which file
    detail = " ".join(str(err).split()) or type(err).__name__
    return ValueError(
        f"dataset {spec.name!r}: cannot decode the files in {folder} ({type(err).__name__}: "
        f"{detail}); delete them and load again to download fresh copies, or replace them with "
        f"the files from {spec.homepage}"
    )


def _source_url(spec: DatasetSpec, fspec: FileSpec) -> str | None:
    """Where to download a file: under $DATADISTILL_MIRROR when set, else the spec's URL."""
    mirror = os.environ.get(_ENV_MIRROR, "").strip()
    if mirror:
        return f"{mirror.rstrip('/')}/{spec.subdir}/{fspec.name}"
    return fspec.url


def _write_verified(
    stream: IO[bytes], dest: Path, fspec: FileSpec, spec: DatasetSpec, source: str
) -> None:
    """Copy `stream` to `dest` via a verified temporary file in the same folder.

    Raises:
        ValueError: If the bytes do not match `fspec`'s digests; nothing is left at `dest`.
    """
    expected = _expected_digests(fspec)
    hashers = {alg: hashlib.new(alg) for alg in expected}
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := stream.read(_CHUNK):
                out.write(chunk)
                for h in hashers.values():
                    h.update(chunk)
        actual = {alg: h.hexdigest() for alg, h in hashers.items()}
        if actual != expected:
            raise ValueError(
                _mismatch_message(spec.name, f"{fspec.name} from {source}", expected, actual)
                + "; it was not kept. Try again later, or fetch the file by hand from "
                f"{fspec.url or spec.homepage} and put it in {dest.parent}."
            )
        os.replace(tmp, dest)  # atomic on one filesystem, hence the temp file in the same folder
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _download(spec: DatasetSpec, folder: Path, fspec: FileSpec, timeout: float) -> None:
    """Fetch one file into `folder`, verified.

    Raises:
        FileNotFoundError: If the file has no URL or the server cannot deliver it.
        ValueError: If the delivered bytes do not match the expected digests.
    """
    url = _source_url(spec, fspec)
    if url is None:
        raise FileNotFoundError(
            _missing_message(spec, folder, [fspec], f"no download URL is known for {fspec.name}")
        )
    dest = folder / fspec.name
    dest.parent.mkdir(parents=True, exist_ok=True)
    logger.info("downloading %s -> %s", url, dest)
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            _write_verified(response, dest, fspec, spec, url)
    except urllib.error.HTTPError as e:
        reason = f"downloading {url} failed: HTTP {e.code} {e.reason}"
        raise FileNotFoundError(_missing_message(spec, folder, [fspec], reason)) from e
    except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
        why = getattr(e, "reason", None) or e
        reason = f"downloading {url} failed ({why}); is the network reachable?"
        raise FileNotFoundError(_missing_message(spec, folder, [fspec], reason)) from e


def _extract(spec: DatasetSpec, folder: Path, fspecs: Iterable[FileSpec]) -> None:
    """Unpack the named members of the (already verified) archive, each verified on the way.

    Only members named by the spec are read, by exact name, so a crafted archive cannot write
    outside `folder` (no path traversal through "../" or links).
    """
    assert spec.archive is not None  # internal: only called for specs that have an archive
    archive = folder / spec.archive.name
    logger.info("unpacking %s", archive)
    with tarfile.open(archive, "r:*") as tar:
        for fspec in fspecs:
            try:
                member = tar.getmember(fspec.name)
            except KeyError:
                member = None
            stream = tar.extractfile(member) if member is not None and member.isfile() else None
            if stream is None:
                raise ValueError(
                    f"dataset {spec.name!r}: archive {archive} has no file {fspec.name}; delete "
                    f"the archive and load again to download a fresh copy"
                )
            dest = folder / fspec.name
            dest.parent.mkdir(parents=True, exist_ok=True)
            with stream:
                _write_verified(stream, dest, fspec, spec, f"{archive.name}:{fspec.name}")


def _missing_message(
    spec: DatasetSpec, folder: Path, missing: Iterable[FileSpec], reason: str
) -> str:
    """An error text: which files, where we looked, why we could not fetch them, what to do."""
    missing = list(missing)
    lines = [
        f"dataset {spec.name!r}: files not found in {folder} ({reason}).",
        "Expected: " + ", ".join(f.name for f in missing) + ".",
    ]
    if spec.archive is not None:
        url = spec.archive.url or spec.homepage
        lines.append(f"Get {spec.archive.name} from {url} and put it (or its contents) in {folder}")
    else:
        lines.append("Get them from:")
        lines += [f"  {f.url or spec.homepage}" for f in missing]
        lines.append(f"and put them in {folder}.")
    if spec.alternatives:
        names = ", ".join(f.name for f in spec.alternatives)
        lines.append(f"The alternative files {names} are accepted instead.")
    lines.append(
        f"Or set --data-dir or ${_ENV_DATA} to a folder that holds {spec.subdir}/ "
        f"(${_ENV_MIRROR} sets a base URL to download <subdir>/<file> from)."
    )
    return "\n".join(lines)


def _missing_for_split(spec: DatasetSpec, folder: Path, split: str) -> list[FileSpec]:
    """The files that must still be obtained before `split` can be read ([] = ready offline).

    Ready means: all primary files present, or all alternatives present, or the archive present
    (it will be unpacked).
    """
    primary = spec.files_for(split)
    missing = [f for f in primary if not (folder / f.name).is_file()]
    if not missing:
        return []
    alternatives = spec.alternatives_for(split)
    if alternatives and all((folder / f.name).is_file() for f in alternatives):
        return []
    if spec.archive is not None and (folder / spec.archive.name).is_file():
        return []
    return missing


def _remove_empty_dirs(dirs: list[Path]) -> None:
    """Undo folder creation after a failed download (deepest first; only if still empty)."""
    for d in sorted(dirs, key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):
            d.rmdir()


def _ensure_split_files(
    spec: DatasetSpec,
    folder: Path,
    split: str,
    *,
    download: bool,
    timeout: float | None = None,
) -> tuple[FileSpec, ...]:
    """Make `split`'s files present and verified, downloading or unpacking as needed.

    Args:
        spec: The data set.
        folder: ``<data_dir>/<subdir>``.
        split: Which split will be read.
        download: Whether missing files may be fetched over the network.
        timeout: Seconds per socket operation; None for the module default.

    Returns:
        The verified files the reader will use (primary files or the alternatives).

    Raises:
        FileNotFoundError: Files missing and not obtainable (offline, HTTP error, download=False).
        ValueError: A file (present or downloaded) does not match its checksum.
    """
    primary = spec.files_for(split)
    if not primary:
        return ()  # data shipped inside a package (sklearn digits)
    if all((folder / f.name).is_file() for f in primary):
        _verify_files(spec, folder, primary)
        return primary
    alternatives = spec.alternatives_for(split)
    if alternatives and all((folder / f.name).is_file() for f in alternatives):
        _verify_files(spec, folder, alternatives)
        return alternatives

    missing = [f for f in primary if not (folder / f.name).is_file()]
    archive = spec.archive
    have_archive = archive is not None and (folder / archive.name).is_file()
    if not have_archive and not download:
        raise FileNotFoundError(_missing_message(spec, folder, missing, "download=False"))

    # Remember which folders we create so a failed download leaves the tree as it found it.
    created = [p for p in (folder, *folder.parents) if not p.exists()]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if archive is not None:
            if not have_archive:
                _download(spec, folder, archive, timeout or _DOWNLOAD_TIMEOUT_S)
            _verify_files(spec, folder, (archive,))
            # Unpack every missing file of every split in one pass over the archive.
            _extract(spec, folder, [f for f in spec.files if not (folder / f.name).is_file()])
        else:
            for fspec in missing:
                _download(spec, folder, fspec, timeout or _DOWNLOAD_TIMEOUT_S)
    except BaseException:
        _remove_empty_dirs(created)
        raise
    _verify_files(spec, folder, primary)
    return primary

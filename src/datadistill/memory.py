"""Memory the machine has free, and refusing up front what would not fit in it.

An allocation far beyond the memory free does not fail cleanly: the kernel's OOM killer ends the process
with no message, or the allocator prints its own "can't allocate" line. Sizes a flag sets (``--pad``,
``--resize``, ``linear --dim``) are therefore estimated before the work and compared with
``MemAvailable``.
"""

from __future__ import annotations

from pathlib import Path

MEMINFO = Path("/proc/meminfo")


def free_memory_bytes() -> int | None:
    """Bytes the kernel could give this process now (``MemAvailable``); None where it does not say."""
    try:
        for line in MEMINFO.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024  # the file counts kibibytes
    except (OSError, ValueError, IndexError):
        return None
    return None


def check_fits_in_memory(nbytes: int, what: str, fix: str) -> None:
    """Raise ValueError if ``nbytes`` exceeds the memory free (nothing is checked where that is unknown).

    Args:
        nbytes: the estimated peak of the allocation.
        what: what would be allocated, e.g. ``"mnist train: 60000 images of 1x2028x2028"``.
        fix: the flag to change, e.g. ``"choose a smaller --pad"``.
    """
    free = free_memory_bytes()
    if free is not None and nbytes > free:
        raise ValueError(
            f"{what} would take {_size(nbytes)}, more than the {_size(free)} of memory free: {fix}"
        )


def _size(nbytes: int) -> str:
    return f"{nbytes / 2**30:.1f} GiB" if nbytes >= 2**30 else f"{nbytes / 2**20:.0f} MiB"

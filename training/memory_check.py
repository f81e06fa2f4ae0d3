"""Refuse to read an export whole when it cannot fit in memory, before trying.

Without ``--max-rows`` an export is read into pandas and every row's text kept (5.5× the
CSV's size for the read alone, measured on a 63 MB export of 150,000 rows: +351 MB peak
RSS), then the features and the fits come on top. A stranger's 4 GB export was an OOM
kill minutes later with no message (or a machine swapping to a halt); here it is an
:class:`~triage.errors.InputError` at once that names ``--max-rows`` and a value that
fits.
"""

from __future__ import annotations

import os
from pathlib import Path

from triage.errors import InputError

# memory per byte of export for a whole-file training: the read (5.5×) plus texts,
# features and fits; rounded up, as a guard must not be the thing that fails
BYTES_PER_EXPORT_BYTE = 10


def available_memory() -> int | None:
    """Bytes this process may still use: the kernel's MemAvailable, or the cgroup's
    limit minus its usage when lower (a container); None when neither can be read."""
    found = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
        if limit != "max":
            found.append(int(limit) - used)
    except (OSError, ValueError):
        pass
    return min(found) if found else None


def check_fits(path: Path, rows_hint: int | None = None) -> None:
    """An InputError when reading ``path`` whole would need more memory than is available."""
    size = path.stat().st_size
    need = size * BYTES_PER_EXPORT_BYTE
    free = available_memory()
    if free is None or need <= free:
        return
    rows = rows_hint or _rows_estimate(path)
    fit = max(1000, int(rows * free / need) // 1000 * 1000)
    raise InputError(
        f"the export is {size / 1e9:.1f} GB: reading it whole needs about {need / 1e9:.0f} GB of memory "
        f"and {free / 1e9:.1f} GB is available; pass --max-rows {min(fit, 200_000)} to read it as a stream "
        "(a stratified sample for the candidates, the rest of the file for a full-data one)",
        file=str(path),
    )


def _rows_estimate(path: Path) -> int:
    """Rows in ``path`` by the line length of its first megabyte."""
    with open(path, "rb") as f:
        head = f.read(1 << 20)
    lines = max(head.count(b"\n"), 1)
    return int(os.path.getsize(path) / (len(head) / lines))

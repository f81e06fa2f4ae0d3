"""Compressed exports (``tickets.csv.gz``, a ``.zip`` holding one CSV, ``.json.bz2``, ...).

Help desks hand large exports over compressed, and mail gateways and download buttons
zip them. Every reader here sniffs its file more than once (encoding, delimiter, header,
then pyarrow's block reads), so a compressed export is unpacked once, as a stream
(bounded memory, whatever its size), into a temporary file of the same inner name that
both readers then read like any other; the copy is reused for the rest of the process
and removed when it exits. The compression is told by the file's first bytes, not its
name, so a gzip file named ``.csv`` is read too, and a ``.gz`` that is not gzip is refused
saying so. ``TMPDIR`` says where the copy goes; a disk too small for it is an
:class:`~triage.errors.InputError` naming the size reached.
"""

from __future__ import annotations

import atexit
import bz2
import errno
import gzip
import logging
import lzma
import shutil
import tempfile
import zipfile
from contextlib import ExitStack
from pathlib import Path
from typing import IO

from triage.errors import InputError, TriageError

log = logging.getLogger(__name__)

MAGIC = ((b"\x1f\x8b", "gzip"), (b"PK\x03\x04", "zip"), (b"BZh", "bz2"), (b"\xfd7zXZ\x00", "xz"))
SUFFIXES = {".gz": "gzip", ".gzip": "gzip", ".zip": "zip", ".bz2": "bz2", ".xz": "xz"}
# named so, but not read here: what to do instead
OTHER = {".zst": "zstd -d", ".7z": "7z x", ".rar": "unrar x", ".tgz": "tar xzf", ".tar": "tar xf"}
CHUNK = 1 << 20

_unpacked: dict[tuple[str, int, int], Path] = {}
_where: dict[Path, str] = {}  # the copy -> the export it was unpacked from, for messages


def compression(path: Path) -> str | None:
    """gzip, bz2 or xz by the file's first bytes (zip: and its name); None for a plain file."""
    try:
        with open(path, "rb") as f:
            start = f.read(6)
    except OSError:
        return None
    for magic, name in MAGIC:
        if start.startswith(magic):
            # .xlsx, .ods and .numbers are zips too: a zip is unpacked only when named so
            return None if name == "zip" and path.suffix.lower() != ".zip" else name
    return None


def inner_name(path: Path) -> str:
    """The export's own name inside the compression: ``tickets.csv`` for ``tickets.csv.gz``
    (and for a gzip file named ``tickets.csv``), the one member's name for a zip."""
    kind = compression(path)
    suffix = path.suffix.lower()
    if suffix in OTHER:
        raise InputError(
            f"cannot read a {suffix} archive; unpack it first ({OTHER[suffix]} {path.name})",
            file=str(path),
            expected="a CSV, TSV, JSON Lines, JSON or Parquet export, plain or as .gz, .zip, .bz2, .xz",
            got=suffix,
        )
    if suffix in SUFFIXES and kind != SUFFIXES[suffix] and path.is_file():
        raise InputError(
            f"the file is named {suffix} but is not {SUFFIXES[suffix]}-compressed",
            file=str(path),
            expected=f"{SUFFIXES[suffix]} data (or the file renamed to what it holds)",
            got=f"{kind}-compressed data" if kind else "uncompressed data",
        )
    if kind == "zip":
        return Path(_member(path).filename).name
    if kind is None or suffix not in SUFFIXES:
        return path.name  # plain, or compressed under its inner name (gzip named .csv)
    return path.name[: -len(suffix)]


def _member(path: Path) -> zipfile.ZipInfo:
    """The zip's one file (macOS's __MACOSX/ resource forks and folders not counted)."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = [
                m
                for m in archive.infolist()
                if not m.is_dir()
                and not m.filename.startswith("__MACOSX/")
                and not Path(m.filename).name.startswith("._")
            ]
    except (zipfile.BadZipFile, OSError) as exc:
        raise InputError(f"cannot read the zip archive: {exc}", file=str(path)) from None
    if len(members) != 1:
        raise InputError(
            "a zipped export must hold exactly one file",
            file=str(path),
            expected="one CSV, TSV, JSON Lines, JSON or Parquet file",
            got=[m.filename for m in members][:10] if members else "an empty archive",
        )
    return members[0]


def plain_export(path: Path) -> Path:
    """``path`` itself when it is not compressed, else its unpacked copy (made once)."""
    kind = compression(path)
    inner = inner_name(path)  # also refuses a .gz that is not gzip
    if kind is None:
        return path
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _unpacked:
        _unpacked[key] = _unpack(path, kind, inner)
        _where[_unpacked[key]] = f"{path} ({inner} inside)"
    return _unpacked[key]


def described(path: Path | str) -> str:
    """How messages name ``path``: an unpacked copy by the export it came from."""
    return _where.get(Path(path), str(path))


def _unpack(path: Path, kind: str, inner: str) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="triage-unpacked-"))
    atexit.register(shutil.rmtree, folder, True)
    target = folder / inner
    log.info("unpacking %s (%s, %.1f MB) to %s", path, kind, path.stat().st_size / 1e6, target)
    try:
        with ExitStack() as stack, open(target, "wb") as out:
            shutil.copyfileobj(_open(stack, path, kind), out, CHUNK)
    except (OSError, EOFError, zipfile.BadZipFile, lzma.LZMAError, RuntimeError) as exc:
        size = target.stat().st_size if target.exists() else 0
        shutil.rmtree(folder, True)
        full = isinstance(exc, OSError) and exc.errno == errno.ENOSPC
        raise InputError(
            f"cannot unpack the {kind} export ({size / 1e6:.1f} MB unpacked when it stopped"
            + (f"; no room left in {folder.parent}: set TMPDIR to a larger disk" if full else "")
            + f"): {exc}",
            file=str(path),
        ) from None
    log.info("unpacked %s: %.1f MB", path, target.stat().st_size / 1e6)
    return target


def _open(stack: ExitStack, path: Path, kind: str) -> IO[bytes]:
    """The decompressed bytes of ``path`` (closed with ``stack``)."""
    if kind == "gzip":
        return stack.enter_context(gzip.open(path, "rb"))
    if kind == "bz2":
        return stack.enter_context(bz2.open(path, "rb"))
    if kind == "xz":
        return stack.enter_context(lzma.open(path, "rb"))
    archive = stack.enter_context(zipfile.ZipFile(path))
    return stack.enter_context(archive.open(_member(path)))


def renamed(exc: TriageError, copy: Path) -> TriageError:
    """``exc`` naming the export a copy was unpacked from rather than the temporary copy."""
    name = described(copy)
    if name != str(copy):
        exc.args = tuple(a.replace(str(copy), name) if isinstance(a, str) else a for a in exc.args)
        exc.message = exc.message.replace(str(copy), name)
        exc.details = {
            k: v.replace(str(copy), name) if isinstance(v, str) else v for k, v in exc.details.items()
        }
    return exc

"""Attachments: bytes stored by content (sha256) under a folder, metadata in the database.

Files come from e-mail, the portal and the API. The bytes are written once per
content (``<root>/ab/cd/<sha256>``, via a temporary file and a rename, so no
half-written file is ever served) and the ``attachments`` table says which ticket
(and which comment) holds them, under what name and type. Limits per file and per
ticket are checked before anything is written.

Uploads by people are refused when the declared type and the bytes disagree (a
"PNG" that is HTML): the type a file is served with must be the type it is.
Mail clients label attachments loosely, so a mail attachment that disagrees is
kept as ``application/octet-stream`` with a warning instead of being refused.
"""

from __future__ import annotations

import hashlib
import mimetypes
import os
import re
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Integer, String, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from triage.errors import InputError
from triage.filenames import safe_filename
from triage.store.tables import Base, TicketRow, utcnow

OCTET = "application/octet-stream"
# Raster images a browser may show inline (never SVG: it can carry script).
PREVIEWABLE = {"image/png", "image/jpeg", "image/gif", "image/webp"}
_MAGIC = [
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"%PDF-", "application/pdf"),
    (b"PK\x03\x04", "application/zip"),
]
# Types whose bytes we can recognise: a file declared as one of them must carry its signature.
_SIGNED = {t for _, t in _MAGIC} | {"image/webp"}
# OOXML/ODF documents are zip files.
_ZIP_FAMILY = re.compile(
    r"^application/(zip|vnd\.openxmlformats-|vnd\.oasis\.opendocument|"
    r"epub\+zip|java-archive)"
)
_TYPE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,62}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$")


class AttachmentRefused(InputError):
    """A file over a size limit (413) or whose type is not what it claims (415)."""

    def __init__(self, message: str, *, status: int, **details: Any) -> None:
        super().__init__(message, **details)
        self.status = status


class Attachment(Base):
    __tablename__ = "attachments"
    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    comment_id: Mapped[int | None] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(200))
    size: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(20))  # email | portal | api | web
    public: Mapped[bool] = mapped_column(Boolean, default=True)
    uploaded_by: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


@dataclass(frozen=True)
class Files:
    """Where the bytes live and how much is allowed (from the service settings)."""

    root: Path
    max_file_bytes: int = 10 * 1024 * 1024
    max_ticket_bytes: int = 25 * 1024 * 1024

    def path(self, sha256: str) -> Path:
        if not re.fullmatch(r"[0-9a-f]{64}", sha256):
            raise ValueError(f"expected a sha256 hex digest, got {sha256!r}")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def put(self, data: bytes) -> str:
        """Write the bytes once (atomically); their sha256 is their name."""
        sha = hashlib.sha256(data).hexdigest()
        target = self.path(sha)
        if target.exists():
            return sha
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".part-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return sha

    def read(self, sha256: str) -> bytes:
        return self.path(sha256).read_bytes()


def sniff(data: bytes) -> str | None:
    """The type the bytes announce by their signature, or None when they carry none we know."""
    for magic, kind in _MAGIC:
        if data.startswith(magic):
            return kind
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def clean_type(declared: str | None, filename: str) -> str:
    value = (declared or "").split(";")[0].strip().lower()
    if not _TYPE.match(value):
        value = mimetypes.guess_type(filename)[0] or OCTET
    return value


def type_problem(declared: str, filename: str, data: bytes) -> str | None:
    """Why the declared type, the name and the bytes disagree, or None when they agree."""
    found = sniff(data)
    if declared in _SIGNED and found != declared:
        return f"declared {declared} but the bytes are {found or 'not that type'}"
    if (
        found
        and found != declared
        and not (found == "application/zip" and _ZIP_FAMILY.match(declared))
        and declared != OCTET
    ):
        return f"declared {declared} but the bytes are {found}"
    by_name = mimetypes.guess_type(filename)[0]
    if by_name in _SIGNED and found != by_name:
        return f"the name says {by_name} but the bytes are {found or 'not that type'}"
    return None


safe_name = safe_filename  # the one rule for stored names (triage/filenames.py)


def ticket_bytes(session: Session, ticket_id: int) -> int:
    return int(
        session.scalar(
            select(func.coalesce(func.sum(Attachment.size), 0)).where(Attachment.ticket_id == ticket_id)
        )
        or 0
    )


def add(
    session: Session,
    files: Files,
    ticket: TicketRow,
    *,
    filename: str | None,
    content_type: str | None,
    data: bytes,
    source: str,
    uploaded_by: str,
    comment_id: int | None = None,
    public: bool = True,
    strict: bool = True,
    now: datetime | None = None,
) -> tuple[Attachment, str | None]:
    """Store one file on a ticket; ``(row, warning)``. Raises :class:`InputError` (413/415).

    ``strict`` (uploads by people): a type mismatch is refused. Otherwise (mail)
    the file is kept as ``application/octet-stream`` and the mismatch is the warning.
    """
    name = safe_name(filename)
    kind, warning = clean_type(content_type, name), None
    if len(data) > files.max_file_bytes:
        raise _too_large(name, len(data), files.max_file_bytes, "per file")
    used = ticket_bytes(session, ticket.id)
    if used + len(data) > files.max_ticket_bytes:
        raise _too_large(name, used + len(data), files.max_ticket_bytes, "per ticket")
    problem = type_problem(kind, name, data)
    if problem and strict:
        raise AttachmentRefused(
            f"{name}: {problem}", column="file", expected=kind, got=sniff(data) or "other bytes", status=415
        )
    if problem:
        kind, warning = OCTET, f"attachment {name}: {problem}; kept as {OCTET}"
    row = Attachment(
        ticket_id=ticket.id,
        comment_id=comment_id,
        sha256=files.put(data),
        filename=name,
        content_type=kind,
        size=len(data),
        source=source,
        public=public,
        uploaded_by=uploaded_by[:320],
        created_at=now or utcnow(),
    )
    session.add(row)
    session.flush()
    return row, warning


def _too_large(name: str, size: int, limit: int, scope: str) -> AttachmentRefused:
    return AttachmentRefused(
        f"{name}: {size} bytes is over the limit of {limit} bytes {scope}",
        column="file",
        expected=f"at most {limit} bytes {scope}",
        got=f"{size} bytes",
        status=413,
    )


def of_ticket(session: Session, ticket_id: int, *, public_only: bool = False) -> list[Attachment]:
    stmt = select(Attachment).where(Attachment.ticket_id == ticket_id).order_by(Attachment.id)
    if public_only:
        stmt = stmt.where(Attachment.public.is_(True))
    return list(session.scalars(stmt))


def to_dict(row: Attachment) -> dict[str, Any]:
    return {
        "id": row.id,
        "ticket_id": row.ticket_id,
        "comment_id": row.comment_id,
        "filename": row.filename,
        "content_type": row.content_type,
        "size": row.size,
        "sha256": row.sha256,
        "source": row.source,
        "public": row.public,
        "uploaded_by": row.uploaded_by,
        "created_at": row.created_at.isoformat(),
        "previewable": row.content_type in PREVIEWABLE,
    }

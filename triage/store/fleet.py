"""One champion for the fleet: bundles and the champion pointer in the shared database.

Every server of a desk already reaches one database; nothing else is shared (no network
filesystem, no MLflow server in the request path). So ``triage promote`` and ``triage
rollback`` (``training.tracking``), besides moving the MLflow alias and the local
``CHAMPION`` file, *publish* here when ``TRIAGE_DATABASE_URL`` is set:

* ``fleet_bundles`` — each promoted bundle folder once, as a gzipped tar with its
  sha256 (a bundle is ~10-20 MB; the database keeps every champion there has been,
  so a rollback needs nothing from the machine that trained it);
* ``fleet_champion`` — one row per promotion or rollback, newest last: the pointer is
  the latest row, and the table is the fleet's promotion history.

Each server polls :func:`current` (one indexed row, every ``TRIAGE_FOLLOW_CHAMPION``
seconds; ``service.state.ServiceState.start_follower``), unpacks a bundle it lacks
into its own models dir with :func:`materialize`, and swaps with the existing
no-drop reload. A promotion reaches every server within one poll interval plus the
bundle's load time.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import ForeignKey, Integer, LargeBinary, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from triage.errors import BundleError
from triage.store.tables import Base, utcnow


class FleetBundle(Base):
    """A promoted bundle folder, archived, so any server can unpack it."""

    __tablename__ = "fleet_bundles"
    bundle_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    archive: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class FleetChampion(Base):
    """One promotion or rollback; the newest row is the fleet's champion."""

    __tablename__ = "fleet_champion"
    id: Mapped[int] = mapped_column(primary_key=True)
    bundle_id: Mapped[str] = mapped_column(ForeignKey("fleet_bundles.bundle_id"))
    action: Mapped[str] = mapped_column(String(20))  # promote | rollback
    by: Mapped[str | None] = mapped_column(String(200))
    reason: Mapped[str | None] = mapped_column(String(1000))
    at: Mapped[datetime] = mapped_column(default=utcnow)


@dataclass(frozen=True)
class Champion:
    id: int
    bundle_id: str
    sha256: str
    action: str
    at: datetime


def _archive(folder: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                tar.add(path, arcname=str(path.relative_to(folder)), recursive=False)
    return buf.getvalue()


def publish(
    session: Session,
    bundle_dir: str | Path,
    *,
    action: str = "promote",
    by: str | None = None,
    reason: str | None = None,
    bundle_id: str | None = None,
) -> Champion:
    """Make ``bundle_dir`` the fleet's champion (archiving it if the database lacks it)."""
    folder = Path(bundle_dir)
    if not (folder / "manifest.json").is_file():
        raise BundleError(f"{folder}: not a bundle folder (no manifest.json)")
    bundle_id = bundle_id or folder.name
    if session.get(FleetBundle, bundle_id) is None:
        data = _archive(folder)
        session.add(
            FleetBundle(
                bundle_id=bundle_id, sha256=hashlib.sha256(data).hexdigest(), size=len(data), archive=data
            )
        )
        session.flush()
    row = FleetChampion(bundle_id=bundle_id, action=action, by=by, reason=(reason or None) and reason[:1000])
    session.add(row)
    session.flush()
    return current(session)  # type: ignore[return-value]


def current(session: Session) -> Champion | None:
    """The fleet's champion now (the newest pointer row), or None before any promotion."""
    found = session.execute(
        select(
            FleetChampion.id,
            FleetChampion.bundle_id,
            FleetBundle.sha256,
            FleetChampion.action,
            FleetChampion.at,
        )
        .join(FleetBundle, FleetBundle.bundle_id == FleetChampion.bundle_id)
        .order_by(FleetChampion.id.desc())
        .limit(1)
    ).first()
    return None if found is None else Champion(*found)


def materialize(session: Session, bundle_id: str, models_dir: str | Path) -> Path:
    """``<models dir>/<bundle_id>``, unpacked from the database if this server lacks it.

    Unpacked into a temporary folder beside it and renamed into place, so a worker
    never loads half a bundle and two workers unpacking at once both end with one.
    """
    models = Path(models_dir)
    target = models / bundle_id
    if (target / "manifest.json").is_file():
        return target
    row = session.get(FleetBundle, bundle_id)
    if row is None:
        raise BundleError(f"bundle {bundle_id!r} is not in the fleet database")
    if hashlib.sha256(row.archive).hexdigest() != row.sha256:
        raise BundleError(f"bundle {bundle_id!r}: archive does not match its sha256")
    models.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{bundle_id}.", dir=models))
    try:
        with tarfile.open(fileobj=io.BytesIO(row.archive), mode="r:gz") as tar:
            tar.extractall(tmp, filter="data")  # no absolute paths, links or devices
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / "manifest.json").is_file():
                raise
    finally:
        if tmp.exists():
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
    return target

"""Attachments over HTTP: upload (API multipart, portal and agent forms), list, download.

Bytes are served only to people who may see the ticket (others get 404, as
for the ticket itself), always as a download (``Content-Disposition:
attachment``) with the stored type and ``nosniff``, so a file can never run as
a page of this site. Raster images (PNG, JPEG, GIF, WebP whose bytes match)
may be shown inline for a preview, under a CSP that allows nothing but the
image itself; SVG is never previewed.
"""

from __future__ import annotations

from urllib.parse import quote

from flask import Blueprint, Response, jsonify, request

from triage.errors import NotFound
from triage.store import access, notices
from triage.store import attachments as store_files
from triage.store.tables import utcnow

from .auth import require_role
from .errors import ApiError, field_error
from .files import files
from .pages_security import current_user, error_page, lift_body_limit
from .store import get_store
from .tickets import _viewer

bp = Blueprint("attachments", __name__)
PREVIEW_CSP = "default-src 'none'; img-src 'self'; style-src 'none'; sandbox"


def allow_upload_body() -> None:
    """Lift the request body limit for this request only, to what the attachment limits allow."""
    lift_body_limit()


def save_uploads(
    session, ticket, uploads, *, source: str, by: str, public: bool = True, comment_id: int | None = None
) -> list[dict]:
    """Store each uploaded file on the ticket (raises AttachmentRefused: 413 / 415)."""
    out = []
    try:
        for upload in uploads:
            if not upload or not upload.filename:
                continue
            row, _ = store_files.add(
                session,
                files(),
                ticket,
                filename=upload.filename,
                content_type=upload.mimetype,
                data=upload.read(),
                source=source,
                uploaded_by=by,
                comment_id=comment_id,
                public=public,
                now=utcnow(),
            )
            out.append(store_files.to_dict(row))
    finally:
        for upload in uploads:  # large parts are spooled to temporary files
            upload.close()
    if comment_id is not None and public and out:
        notices.attach_to_reply(
            session, comment_id, [{k: a[k] for k in ("sha256", "filename", "content_type")} for a in out]
        )
    return out


# ----------------------------------------------------------------- API
@bp.post("/v1/tickets/<id:ticket_id>/attachments")
@require_role("intake", "agent")
def upload(ticket_id: int):
    """``multipart/form-data`` with one or more ``file`` parts (``public=0``: staff only)."""
    allow_upload_body()
    if not (request.mimetype or "").startswith("multipart/form-data"):
        raise ApiError(
            415,
            "expected multipart/form-data with one or more 'file' parts",
            [
                field_error(
                    "Content-Type", "not multipart", expected="multipart/form-data", got=request.mimetype
                )
            ],
        )
    uploads = request.files.getlist("file")
    if not any(u.filename for u in uploads):
        raise ApiError(422, "no file", [field_error("file", "missing", expected="a file part")])
    with get_store().session() as s:
        viewer = _viewer(s)
        ticket = access.visible(s, viewer, ticket_id, lock=True)
        flag = request.form.get("public", "1")
        if flag not in ("0", "1"):  # documented as an enum: anything else is refused, not guessed
            raise ApiError(
                422,
                "public must be 0 or 1",
                [field_error("public", "not an allowed value", expected="0 or 1", got=flag)],
            )
        public = flag != "0" or not viewer.is_staff
        saved = save_uploads(s, ticket, uploads, source="api", by=viewer.id or "api", public=public)
    return jsonify({"ok": True, "attachments": saved}), 201


@bp.get("/v1/tickets/<id:ticket_id>/attachments")
@require_role("intake", "agent")
def listing(ticket_id: int):
    with get_store().session(readonly=True) as s:
        viewer = _viewer(s)
        access.visible(s, viewer, ticket_id)
        rows = store_files.of_ticket(s, ticket_id, public_only=not viewer.is_staff)
        return jsonify({"ok": True, "attachments": [store_files.to_dict(r) for r in rows]})


@bp.get("/v1/attachments/<id:attachment_id>")
@require_role("intake", "agent")
def download_api(attachment_id: int):
    with get_store().session(readonly=True) as s:
        row = _visible_file(s, _viewer(s), attachment_id)
    return _serve(row, inline=False)


# ----------------------------------------------------------------- pages
@bp.get("/files/<id:attachment_id>")
def download_page(attachment_id: int):
    """For signed-in people (portal and agent pages); ``?preview=1`` shows a safe image inline."""
    user = current_user()
    if user is None:
        return error_page(404, "not found")
    with get_store().session(readonly=True) as s:
        viewer = access.viewer_for(s, user["role"], user["id"])
        try:
            row = _visible_file(s, viewer, attachment_id)
        except NotFound:
            return error_page(404, "not found")
    return _serve(row, inline=request.args.get("preview") == "1")


def _visible_file(session, viewer: access.Viewer, attachment_id: int):
    row = session.get(store_files.Attachment, attachment_id)
    if row is None or (not row.public and not viewer.is_staff):
        raise NotFound(f"attachment {attachment_id} not found")
    access.visible(session, viewer, row.ticket_id)  # NotFound for other people's tickets
    session.expunge(row)
    return row


def _serve(row, *, inline: bool) -> Response:
    inline = inline and row.content_type in store_files.PREVIEWABLE
    data = files().read(row.sha256)
    name = quote(row.filename)
    ascii_name = row.filename.encode("ascii", "replace").decode().replace('"', "")
    disposition = "inline" if inline else "attachment"
    response = Response(data, mimetype=row.content_type)
    response.headers["Content-Disposition"] = (
        f"{disposition}; filename=\"{ascii_name}\"; filename*=UTF-8''{name}"
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = PREVIEW_CSP
    response.headers["Cache-Control"] = "private, no-store"
    response.headers["Cross-Origin-Resource-Policy"] = "same-origin"
    return response


def current_files_of(session, ticket_id: int, *, staff: bool) -> list[dict]:
    """What a ticket page lists (public files only for customers)."""
    return [store_files.to_dict(r) for r in store_files.of_ticket(session, ticket_id, public_only=not staff)]


# ----------------------------------------------------------------- OpenAPI (read by service.openapi)
def OPENAPI_PATHS(config: dict) -> dict:  # noqa: N802 - the name service.openapi looks for
    from .openapi import INT, _json, _obj, _op
    from .tickets_openapi import AUTH, REQUESTER, TID

    everyone = ["intake", "agent", "admin"]
    item = _obj(
        {
            "id": INT,
            "ticket_id": INT,
            "filename": {"type": "string"},
            "content_type": {"type": "string"},
            "size": INT,
            "sha256": {"type": "string"},
            "public": {"type": "boolean"},
            "previewable": {"type": "boolean"},
        },
        ["id", "ticket_id", "filename", "content_type", "size"],
    )
    files = _obj(
        {"ok": {"const": True}, "attachments": {"type": "array", "items": item}}, ["ok", "attachments"]
    )
    upload_body = {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": _obj(
                    {
                        "file": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "minItems": 1,
                        },
                        "public": {"enum": ["0", "1"]},
                    },
                    ["file"],
                )
            }
        },
    }
    from .validation import path_id

    aid = path_id("attachment_id", "attachment id")
    return {
        "/v1/tickets/{ticket_id}/attachments": {
            "post": _op(
                f"Attach files (multipart 'file' parts; at most "
                f"{config.get('TRIAGE_ATTACHMENT_MAX_BYTES')} bytes each; a type that "
                "does not match the bytes is refused with 415)",
                {"201": _json(files, "stored")},
                (404, 413, 415, 422) + AUTH,
                everyone,
                parameters=[TID, REQUESTER],
                requestBody=upload_body,
            ),
            "get": _op(
                "The ticket's files (customers see public ones)",
                {"200": _json(files, "files")},
                (404,) + AUTH,
                everyone,
                parameters=[TID, REQUESTER],
            ),
        },
        "/v1/attachments/{attachment_id}": {
            "get": _op(
                "Download one file (Content-Disposition: attachment, stored type, nosniff)",
                {
                    "200": {
                        "description": "the bytes, with their stored type",
                        "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
                    }
                },
                (404,) + AUTH,
                everyone,
                parameters=[aid, REQUESTER],
            )
        },
    }

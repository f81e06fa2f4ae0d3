"""Knowledge-base articles: one shape, loaded from JSON Lines or a folder of Markdown.

Two sources matter: the shared Microsoft support corpus (JSON Lines, CC BY 4.0, so
every article keeps an ``attribution`` the UI must show) and a help desk's own
articles written as Markdown files with YAML front matter. Both become
:class:`Article`; the index (``triage.kb``) never sees where they came from.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable

import yaml

from .errors import InputError

MICROSOFT_ATTRIBUTION = "Microsoft, CC BY 4.0 (https://creativecommons.org/licenses/by/4.0/)"
_BODY_FIELDS = ("body_text", "body", "body_markdown")
_MD_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")
_MD_NOISE = re.compile(r"^\s*(#{1,6}\s*|>\s*(\[!\w+\])?\s*|[-*+]\s+|\d+\.\s+)", re.M)
_MD_MARKS = re.compile(r"[`*_]{1,3}|&nbsp;|<[^>]{1,200}>")


@dataclass(frozen=True)
class Article:
    """One article. ``attribution`` is the credit a licence requires wherever text is shown."""

    id: str
    title: str
    body: str = ""
    description: str = ""
    tags: tuple[str, ...] = ()
    product: str = ""
    attribution: str | None = None
    url: str | None = None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["tags"] = list(self.tags)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Article":
        return cls(**{**d, "tags": tuple(d.get("tags") or ())})


def markdown_to_text(md: str) -> str:
    """Plain text from Markdown, good enough for embedding and snippets (not for display)."""
    text = _MD_LINK.sub(r"\1", md)
    text = _MD_NOISE.sub("", text)
    text = _MD_MARKS.sub(" ", text)
    return re.sub(r"[ \t]+", " ", text).strip()


def _as_tags(value, *, file: str, row: int) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(t.strip() for t in value.split(",") if t.strip())
    if isinstance(value, (list, tuple)) and all(isinstance(t, (str, int)) for t in value):
        return tuple(str(t) for t in value)
    raise InputError("bad tags", file=file, row=row, column="tags", expected="a list of strings", got=value)


def _attribution(rec: dict) -> str | None:
    if rec.get("attribution"):
        return str(rec["attribution"])
    if str(rec.get("source_repo", "")).startswith("MicrosoftDocs/"):
        return MICROSOFT_ATTRIBUTION
    return None


def article_from_record(rec: dict, *, file: str = "<record>", row: int = 0) -> Article:
    """An :class:`Article` from a JSON object (shared corpus field names or plain ones)."""
    for key in ("id", "title"):
        if not isinstance(rec.get(key), (str, int)) or str(rec.get(key)).strip() == "":
            raise InputError(
                f"missing {key}",
                file=file,
                row=row,
                column=key,
                expected="a non-empty string",
                got=rec.get(key),
            )
    body = next((rec[k] for k in _BODY_FIELDS if isinstance(rec.get(k), str) and rec[k].strip()), "")
    if body and not rec.get("body_text") and rec.get("body_markdown") == body:
        body = markdown_to_text(body)
    url = rec.get("url")
    if not url and rec.get("source_repo") and rec.get("source_path"):
        url = f"https://github.com/{rec['source_repo']}/blob/main/{rec['source_path']}"
    return Article(
        id=str(rec["id"]),
        title=str(rec["title"]).strip(),
        body=body.strip(),
        description=str(rec.get("description") or "").strip(),
        tags=_as_tags(rec.get("tags"), file=file, row=row),
        product=str(rec.get("product") or ""),
        attribution=_attribution(rec),
        url=url,
    )


def load_jsonl(path: str | Path) -> list[Article]:
    """Articles from JSON Lines; a bad line is an :class:`InputError` naming its row."""
    out = []
    with open(path, encoding="utf-8") as fh:
        for row, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise InputError(f"not JSON: {e.msg}", file=str(path), row=row) from None
            if not isinstance(rec, dict):
                raise InputError(
                    "not a JSON object", file=str(path), row=row, expected="object", got=type(rec).__name__
                )
            out.append(article_from_record(rec, file=str(path), row=row))
    return _unique(out, path)


def split_front_matter(text: str, *, file: str) -> tuple[dict, str]:
    """``(metadata, body)`` of a Markdown file with an optional ``---`` YAML header."""
    if not text.startswith("---"):
        return {}, text
    parts = re.split(r"^---\s*$", text, maxsplit=2, flags=re.M)
    if len(parts) < 3:
        raise InputError("front matter opened with --- but never closed", file=file, row=1)
    try:
        meta = yaml.safe_load(parts[1]) or {}
    except yaml.YAMLError as e:
        raise InputError(f"bad YAML front matter: {e}", file=file, row=1) from None
    if not isinstance(meta, dict):
        raise InputError("front matter is not a mapping", file=file, row=1)
    return meta, parts[2]


def load_markdown_dir(path: str | Path) -> list[Article]:
    """Articles from ``*.md`` files; ``id`` defaults to the file name, ``title`` to the first heading.

    A ``README.md`` describes the folder, it is not an article.
    """
    out = []
    for f in sorted(Path(path).glob("*.md")):
        if f.name.lower() == "readme.md":
            continue
        meta, body = split_front_matter(f.read_text(encoding="utf-8"), file=str(f))
        heading = re.search(r"^#\s+(.+)$", body, re.M)
        rec = {
            "id": meta.get("id", f.stem),
            "title": meta.get("title") or (heading.group(1) if heading else None),
            "description": meta.get("description", ""),
            "tags": meta.get("tags"),
            "product": meta.get("product", ""),
            "attribution": meta.get("attribution"),
            "url": meta.get("url"),
            "body_text": markdown_to_text(body),
        }
        out.append(article_from_record(rec, file=str(f), row=1))
    return _unique(out, path)


def load_articles(path: str | Path) -> list[Article]:
    """A folder means Markdown files, a file means JSON Lines."""
    p = Path(path)
    if p.is_dir():
        return load_markdown_dir(p)
    if p.is_file():
        return load_jsonl(p)
    raise InputError("no such knowledge base", file=str(path))


def _unique(articles: list[Article], path) -> list[Article]:
    seen: set[str] = set()
    for a in articles:
        if a.id in seen:
            raise InputError(f"duplicate article id {a.id!r}", file=str(path))
        seen.add(a.id)
    return articles


def content_hash(articles: Iterable[Article], extra: dict | None = None) -> str:
    """A hash of everything that changes the index: the articles and the index settings."""
    h = hashlib.sha256()
    h.update(json.dumps(extra or {}, sort_keys=True).encode())
    for a in articles:
        h.update(json.dumps(a.to_dict(), sort_keys=True).encode())
        h.update(b"\n")
    return h.hexdigest()

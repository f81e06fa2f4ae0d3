"""The outbound mail templates (Jinja2): a subject line, a plain-text body, an HTML alternative.

Each notice ``name`` has three files in the package's ``templates/`` folder:
``name.subject.txt``, ``name.txt`` and ``name.html``. A deployment overrides any
of them by putting a file of the same name in its own folder
(``TRIAGE_MAIL_TEMPLATES``): that folder is searched first.

The HTML templates autoescape (ticket text is customer text); the text ones do
not need to. Links are built from the public URL the caller passes, never from a
request's Host header, so a forged header cannot plant a link in a mail.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2

PACKAGE_TEMPLATES = Path(__file__).with_name("templates")
NAMES = ("received", "reply", "reminder", "resolved", "deadline", "signin")


def _when(value: str | None) -> str:
    """An ISO time as people read it in mail: ``2026-12-01 14:30 UTC``."""
    if not value:
        return ""
    try:
        return datetime.fromisoformat(value).strftime("%Y-%m-%d %H:%M UTC")
    except ValueError:
        return str(value)


class Templates:
    """Renders ``(subject, text, html)`` for a notice from its context."""

    def __init__(self, folder: str | Path | None = None) -> None:
        folders = [str(folder)] if folder else []
        loader = jinja2.FileSystemLoader(folders + [str(PACKAGE_TEMPLATES)])
        self.text_env = jinja2.Environment(
            loader=loader,
            autoescape=False,
            auto_reload=False,
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
        )
        self.html_env = jinja2.Environment(
            loader=loader, autoescape=True, auto_reload=False, undefined=jinja2.StrictUndefined
        )
        for env in (self.text_env, self.html_env):
            env.filters["when"] = _when

    def render(self, name: str, context: dict[str, Any]) -> tuple[str, str, str]:
        if name not in NAMES:
            raise ValueError(f"expected a mail template in {NAMES}, got {name!r}")
        subject = self.text_env.get_template(f"{name}.subject.txt").render(**context)
        text = self.text_env.get_template(f"{name}.txt").render(**context)
        html = self.html_env.get_template(f"{name}.html").render(**context)
        return " ".join(subject.split()), text, html

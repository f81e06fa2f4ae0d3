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
        self._loaded: dict[str, tuple[jinja2.Template, dict[str, Any]]] = {}

    def render(self, name: str, context: dict[str, Any]) -> tuple[str, str, str]:
        if name not in NAMES:
            raise ValueError(f"expected a mail template in {NAMES}, got {name!r}")
        subject = self._render(f"{name}.subject.txt", context)
        text = self._render(f"{name}.txt", context)
        html = self._render(f"{name}.html", context)
        return " ".join(subject.split()), text, html

    def _render(self, file: str, context: dict[str, Any]) -> str:
        """``Template.render(**context)`` without its per-call merge of the globals.

        ``render`` builds a fresh context from the template's globals (a ``ChainMap`` over the
        environment's, walked on every call) and the variables: about a third of a notice's
        rendering, three templates a mail. Here the globals are flattened once per template
        (templates are loaded once: ``auto_reload`` is off) and the context is built from them
        and the variables as ``shared``: the same names, the variables winning, as before."""
        if file not in self._loaded:
            env = self.html_env if file.endswith(".html") else self.text_env
            template = env.get_template(file)
            self._loaded[file] = template, dict(template.globals)
        template, globals_ = self._loaded[file]
        try:
            return template.environment.concat(  # type: ignore[attr-defined]
                template.root_render_func(template.new_context({**globals_, **context}, shared=True))
            )
        except Exception:
            return template.environment.handle_exception()

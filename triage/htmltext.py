"""HTML e-mail bodies to plain text, with the stdlib ``html.parser`` only.

HTML-only mail is common (web forms, phones, marketing-style templates); the
model and the agents read text. Scripts, styles and the ``<head>`` are dropped,
entities decoded, block elements become line breaks, list items get a dash, and
``<blockquote>`` content (Gmail/Apple quoted history) is prefixed with ``> `` so
:func:`triage.text.normalise` strips it like a plain-text quote.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

_DROP = frozenset({"script", "style", "head", "title", "template", "noscript", "svg"})
_BLOCK = frozenset(
    {
        "address",
        "article",
        "aside",
        "br",
        "center",
        "dd",
        "div",
        "dl",
        "dt",
        "fieldset",
        "figcaption",
        "figure",
        "footer",
        "form",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "header",
        "hr",
        "li",
        "main",
        "nav",
        "ol",
        "p",
        "pre",
        "section",
        "table",
        "tbody",
        "tfoot",
        "thead",
        "tr",
        "ul",
    }
)
_PARAGRAPH = frozenset({"p", "h1", "h2", "h3", "h4", "h5", "h6", "table", "ul", "ol"})
_VOID = frozenset({"br", "hr", "img", "meta", "link", "input", "area", "base", "col", "wbr"})
_SPACES = re.compile(r"[ \t\r\n\f\v]+")


class _TextExtractor(HTMLParser):
    """Collects visible text; keeps just enough structure (lines, quotes, lists)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.drop_depth = 0  # > 0 while inside <script>, <style>, ...
        self.quote_depth = 0  # nesting of <blockquote>
        self.pre_depth = 0
        self.at_line_start = True

    # -- output helpers --------------------------------------------------
    def _newline(self, force: bool = False) -> None:
        """End the current line; a soft break does nothing at the start of a line."""
        if self.at_line_start and not force:
            return
        self.out.append("\n")
        self.at_line_start = True

    def _write(self, text: str) -> None:
        if not text:
            return
        if self.at_line_start:
            if self.pre_depth == 0:
                text = text.lstrip(" ")
                if not text:
                    return
            if self.quote_depth:
                self.out.append("> " * self.quote_depth)
        self.out.append(text)
        self.at_line_start = text.endswith("\n")

    # -- parser callbacks --------------------------------------------------
    def handle_starttag(self, tag: str, attrs) -> None:
        if tag in _DROP:
            if tag not in _VOID:
                self.drop_depth += 1
            return
        if self.drop_depth:
            return
        if tag == "blockquote":
            self._newline()
            self.quote_depth += 1
        elif tag == "pre":
            self._newline()
            self.pre_depth += 1
        elif tag == "br":
            self._newline(force=True)
        elif tag in _BLOCK:
            self._newline()
            if tag == "li":
                self._write("- ")
        elif tag in ("td", "th"):
            self._write(" ")

    def handle_startendtag(self, tag: str, attrs) -> None:
        if not self.drop_depth and tag in _BLOCK:
            self._newline(force=tag == "br")

    def handle_endtag(self, tag: str) -> None:
        if tag in _DROP:
            self.drop_depth = max(0, self.drop_depth - 1)
            return
        if self.drop_depth or tag in _VOID:
            return
        if tag == "blockquote":
            self.quote_depth = max(0, self.quote_depth - 1)
            self._newline()
        elif tag == "pre":
            self.pre_depth = max(0, self.pre_depth - 1)
            self._newline()
        elif tag in _PARAGRAPH:
            self._newline()
            self._newline(force=True)
        elif tag in _BLOCK:
            self._newline()
        elif tag in ("td", "th"):
            self._write(" ")

    def handle_data(self, data: str) -> None:
        if self.drop_depth:
            return
        if self.pre_depth:
            for i, line in enumerate(data.split("\n")):
                if i:
                    self._newline()
                self._write(line)
            return
        self._write(_SPACES.sub(" ", data))


_MARKED_END = re.compile(r"\]\s*>")


def defuse(html: str) -> str:
    """``html`` with every construct that cannot end written as text (``&lt;``).

    ``html.parser`` (CPython 3.11) rescans from an unfinished ``<`` to the end of the input
    for each one it meets: "<a " repeated 20,000 times (60 kB, a ticket body's size) took 19 s
    of CPU, a megabyte of it hours. A tag needs a later ">", a comment a later "-->", a marked
    section ("<![CDATA[", Outlook's "<![endif]>") a later "]>": a "<" past the last of its
    terminator can only become text, which is what the parser makes of it at the end anyway.
    """
    last_gt = html.rfind(">")
    head, tail = html[: last_gt + 1], html[last_gt + 1 :].replace("<", "&lt;")
    comments_from = html.rfind("-->") + 1  # 0 when there is none
    if "<!--" in head[comments_from:]:
        head = head[:comments_from] + head[comments_from:].replace("<!--", "&lt;!--")
    marked_from = max((m.start() + 1 for m in _MARKED_END.finditer(head)), default=0)
    if "<![" in head[marked_from:]:
        head = head[:marked_from] + head[marked_from:].replace("<![", "&lt;![")
    return head + tail


def html_to_text(html: str) -> str:
    """Visible text of an HTML document: one paragraph per line, blank lines collapsed.

    Never raises on malformed markup: ``html.parser`` is lenient and unclosed
    tags simply end with the document (read as text, see :func:`defuse`).
    """
    parser = _TextExtractor()
    parser.feed(defuse(html or ""))
    parser.close()
    lines = [ln.rstrip() for ln in "".join(parser.out).replace("\xa0", " ").split("\n")]
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


# Tags of formatted text as editors, forms and mail clients produce it.
_MARKUP = re.compile(
    r"<\s*/?\s*(?:html|body|head|p|div|span|br|table|tr|td|th|ul|ol|li|a|b|i|u|"
    r"strong|em|font|h[1-6]|blockquote|pre|img|style|meta)\b[^<>]*>",
    re.I,
)
_DOCUMENT = re.compile(r"^\s*<(?:!doctype\s+html|html)\b", re.I)


def looks_like_html(text: str) -> bool:
    """A body that is formatted markup, not prose that mentions a tag.

    An HTML document, or at least two HTML tags: "the page shows <br> literally"
    stays text, a pasted rich-text fragment (``<p>…</p>``) does not.
    """
    if not text or "<" not in text:
        return False
    return bool(_DOCUMENT.match(text)) or len(_MARKUP.findall(text, 0, 200_000)) >= 2


def as_text(body: str | None) -> str:
    """What every channel stores: HTML bodies converted like mail's, plain text as given."""
    body = body or ""
    return html_to_text(body) if looks_like_html(body) else body

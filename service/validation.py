"""One validation layer for the JSON API: each request shape is declared once, as data.

The same declaration does two jobs: :meth:`Spec.check` enforces it on the
request, and :meth:`Spec.schema` writes it into ``/openapi.json``. So the
document cannot promise what the code does not check (and a schemathesis run in
the test suite holds both to it). Rules every route gets from here:

* text never carries NUL (PostgreSQL cannot store it; SQLite would, so the two
  stores would disagree) nor a lone surrogate (not encodable as UTF-8);
* a length limit is the column's (or a declared setting), never more;
* ids are integers from 1 to 2^31-1, PostgreSQL's ``integer``, on both stores;
* lists have an item type and a ``maxItems``;
* a required text must contain something besides white space;
* unknown fields are refused, and every problem is reported in one 422.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from werkzeug.routing import BaseConverter, ValidationError

from triage.store.tables import ID_MAX  # PostgreSQL integer; both stores are held to it

from .errors import ApiError, describe, field_error

NO_NUL = "^[^\\u0000]*$"
# What Python's str.strip() removes, spelt out: the schema's regex dialect (ECMA-262) has
# another \s (without U+001C-U+001F and U+0085, with U+FEFF), and a fuzzer reading the
# schema then sends "\x1e" as valid text that the handler refuses as blank
PY_SPACE = (
    "\\u0009-\\u000d\\u001c-\\u0020\\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000"
)
NON_BLANK = f"^[^\\u0000]*[^\\u0000{PY_SPACE}][^\\u0000]*$"
# Line breaks and control characters (C0, DEL, C1, U+2028/2029): never part of an address or
# an id, and what would become an extra header line ("ann@x\r\nBcc: eve@y") were such a value
# ever written into a mail. Refused where a field names a person.
LINE_BREAKING = "\\u0000-\\u001f\\u007f-\\u009f\\u2028\\u2029"
# "no newline anywhere", spelt so both dialects agree: Python's "$" (the handlers', jsonschema's
# and schemathesis' reading of a schema) also matches before a final "\n", ECMA-262's does not,
# so "^[^\\n]*$" accepts "ann@x\n" in Python only
NO_NEWLINE = "(?![^\\u000a]*\\u000a)"
ONE_LINE = f"^{NO_NEWLINE}[^{LINE_BREAKING}]*$"
ONE_LINE_NON_BLANK = f"^{NO_NEWLINE}[^{LINE_BREAKING}]*[^{LINE_BREAKING}{PY_SPACE}][^{LINE_BREAKING}]*$"
ONE_LINE_ADDRESS = f"^{NO_NEWLINE}[^{LINE_BREAKING}]*@[^{LINE_BREAKING}]*$"
ASCII_INT = re.compile(r"[0-9]{1,18}", re.ASCII)


def _limit(value: int | str | None, config: Mapping[str, Any]) -> int | None:
    """A length bound: a number, or the name of a ``TRIAGE_*`` setting holding one."""
    if value is None or isinstance(value, int):
        return value
    return int(config[value])


def text_problem(value: str) -> str | None:
    """What is wrong with a text no column may hold (NUL, lone surrogate), or None."""
    if "\x00" in value:
        return "contains a NUL character (U+0000)"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "contains a lone surrogate (not valid Unicode)"
    return None


class Spec:
    """A declared value: ``check`` converts or reports, ``schema`` documents."""

    nullable = False
    doc = ""

    def check(self, value: Any, path: str, config: Mapping[str, Any], errs: list[dict]) -> Any:
        raise NotImplementedError

    def schema(self, config: Mapping[str, Any]) -> dict:
        raise NotImplementedError

    def _document(self, schema: dict) -> dict:
        if self.nullable:
            if "type" in schema:
                kinds = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
                schema["type"] = kinds + ["null"]
            else:
                schema = {"anyOf": [schema, {"type": "null"}]}
            if "enum" in schema:
                schema["enum"] = schema["enum"] + [None]
        if self.doc:
            schema["description"] = self.doc
        return schema


def _wrong(path: str, expected: str, value: Any, errs: list[dict]) -> None:
    errs.append(field_error(path, "wrong type", expected=expected, got=value))


@dataclass(frozen=True)
class Text(Spec):
    max_len: int | str | None = None
    required: bool = False  # must hold something besides white space
    enum: tuple[str, ...] | None = None
    pattern: str | None = None  # an extra (search) pattern, also stated in the schema
    form: str | None = None  # what the pattern asks for, in words (the 422's "expected")
    format: str | None = None
    nullable: bool = False
    doc: str = ""

    def check(self, value, path, config, errs):
        if not isinstance(value, str):
            _wrong(path, "string", value, errs)
            return None
        problem = text_problem(value)
        if problem:
            errs.append(
                field_error(
                    path,
                    problem,
                    expected="text without NUL or lone surrogates",
                    got_text=problem.removeprefix("contains "),
                )
            )
            return None
        limit = _limit(self.max_len, config)
        if limit is not None and len(value) > limit:
            errs.append(
                field_error(
                    path,
                    "too long",
                    expected=f"at most {limit} characters",
                    got_text=f"{len(value)} characters",
                )
            )
            return None
        if self.required and not value.strip():
            errs.append(field_error(path, "must not be empty", expected="non-empty text", got=value))
            return None
        if self.enum is not None and value not in self.enum:
            errs.append(
                field_error(
                    path, "not an allowed value", expected="one of " + ", ".join(self.enum), got=value
                )
            )
            return None
        if self.pattern and not re.search(self.pattern, value):
            expected = self.form or f"text matching {self.pattern}"
            errs.append(field_error(path, "not in the expected form", expected=expected, got=value))
            return None
        return value

    def schema(self, config):
        out: dict = {"type": "string"}
        if self.enum is not None:
            out["enum"] = list(self.enum)
        else:
            out["pattern"] = self._pattern()
        limit = _limit(self.max_len, config)
        if limit is not None:
            out["maxLength"] = limit
        if self.required:
            out["minLength"] = 1
        if self.format:
            out["format"] = self.format
        return self._document(out)

    def _pattern(self) -> str:
        if self.pattern and self.pattern.startswith("^"):  # a whole-text pattern, as given
            return self.pattern
        if self.pattern:  # "something matching X, and no NUL anywhere"
            return f"^[^\\u0000]*{self.pattern}[^\\u0000]*$"
        return NON_BLANK if self.required else NO_NUL


@dataclass(frozen=True)
class Int(Spec):
    minimum: int = 1
    maximum: int = ID_MAX
    nullable: bool = False
    doc: str = ""

    def check(self, value, path, config, errs):
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # JSON has one number type: 5.0 is the integer 5 (JSON Schema)
        if not isinstance(value, int) or isinstance(value, bool):
            _wrong(path, "integer", value, errs)
            return None
        if not self.minimum <= value <= self.maximum:
            errs.append(
                field_error(
                    path, "out of range", expected=f"integer {self.minimum}..{self.maximum}", got=value
                )
            )
            return None
        return value

    def schema(self, config):
        return self._document({"type": "integer", "minimum": self.minimum, "maximum": self.maximum})


ID = Int(doc="a ticket id")


@dataclass(frozen=True)
class Bool(Spec):
    nullable: bool = False
    doc: str = ""

    def check(self, value, path, config, errs):
        if not isinstance(value, bool):
            _wrong(path, "boolean", value, errs)
            return None
        return value

    def schema(self, config):
        return self._document({"type": "boolean"})


@dataclass(frozen=True)
class OneOf(Spec):
    """The first alternative that accepts the value wins (e.g. priority: 2 or "P2")."""

    options: tuple[Spec, ...] = ()
    nullable: bool = False
    doc: str = ""

    def check(self, value, path, config, errs):
        last: list[dict] = []
        for option in self.options:
            mine: list[dict] = []
            out = option.check(value, path, config, mine)
            if not mine:
                return out
            last = mine
        errs.extend(last)
        return None

    def schema(self, config):
        return self._document({"anyOf": [o.schema(config) for o in self.options]})


@dataclass(frozen=True)
class List(Spec):
    item: Spec = field(default_factory=Text)
    max_items: int | str = 20
    nullable: bool = False
    doc: str = ""

    def check(self, value, path, config, errs):
        if not isinstance(value, list):
            _wrong(path, "array", value, errs)
            return None
        limit = _limit(self.max_items, config)
        if len(value) > limit:
            errs.append(
                field_error(
                    path, "too many items", expected=f"at most {limit} items", got_text=f"{len(value)} items"
                )
            )
            return None
        mine: list[dict] = []
        out = [self.item.check(v, f"{path}[{i}]", config, mine) for i, v in enumerate(value)]
        errs.extend(mine[:20])  # a hostile list is not echoed back item by item
        return None if mine else out

    def schema(self, config):
        return self._document(
            {"type": "array", "items": self.item.schema(config), "maxItems": _limit(self.max_items, config)}
        )


@dataclass(frozen=True)
class Obj(Spec):
    """A JSON object with declared fields; unknown ones are refused.

    ``one_required`` names fields of which at least one must be present and
    non-empty (a ticket needs a subject or a body).
    """

    fields: Mapping[str, Spec] = field(default_factory=dict)
    required: tuple[str, ...] = ()
    one_required: tuple[str, ...] = ()
    nullable: bool = False
    doc: str = ""
    # ``only_with``: {"reason": ("to", "pending")}: a field allowed only when another has a value
    only_with: Mapping[str, tuple[str, str]] = field(default_factory=dict)

    def check(self, value, path, config, errs):
        if not isinstance(value, dict):
            _wrong(path or "$", "object", value, errs)
            return None
        mine: list[dict] = []
        out = {}
        for key, item in value.items():
            spec = self.fields.get(key)
            where = f"{path}.{key}" if path else key
            if spec is None:
                mine.append(
                    field_error(where, "unknown field", expected="one of " + ", ".join(self.fields), got=key)
                )
            elif item is None and spec.nullable:
                out[key] = None
            else:
                out[key] = spec.check(item, where, config, mine)
        for key in self.required:
            if key not in value:
                mine.append(
                    field_error(
                        f"{path}.{key}" if path else key,
                        "required field missing",
                        expected=self._describe(key, config),
                        got=None,
                    )
                )
        if (
            self.one_required
            and not mine
            and not any(isinstance(out.get(k), str) and out[k].strip() for k in self.one_required)
        ):
            mine.append(
                field_error(
                    self.one_required[0],
                    "at least one of " + " or ".join(self.one_required) + " must be non-empty",
                    expected="non-empty " + " or ".join(self.one_required),
                    got=value.get(self.one_required[0]),
                )
            )
        for name, (other, wanted) in self.only_with.items():
            if not mine and out.get(name) is not None and out.get(other) != wanted:
                mine.append(
                    field_error(
                        name,
                        f"only allowed when {other} is {wanted!r}",
                        expected=f"{other}={wanted!r} or no {name}",
                        got=f"{other}={out.get(other)!r}",
                    )
                )
        errs.extend(mine)
        return None if mine else out

    def _describe(self, key: str, config) -> str:
        kind = self.fields[key].schema(config).get("type", "value")
        return kind if isinstance(kind, str) else "/".join(kind)

    def schema(self, config):
        out: dict = {
            "type": "object",
            "properties": {k: s.schema(config) for k, s in self.fields.items()},
            "additionalProperties": False,
        }
        if self.required:
            out["required"] = list(self.required)
        if self.only_with:
            out["allOf"] = [
                {
                    "if": {"required": [name], "properties": {name: {"not": {"type": "null"}}}},
                    "then": {"required": [other], "properties": {other: {"const": wanted}}},
                }
                for name, (other, wanted) in self.only_with.items()
            ]
        if self.one_required:
            # at least one named field present, with a non-blank value
            out["anyOf"] = [
                {"required": [k], "properties": {k: {"type": "string", "pattern": NON_BLANK}}}
                for k in self.one_required
            ]
        return self._document(out)


def validate(spec: Spec, value: Any, config: Mapping[str, Any], what: str = "request body"):
    """The checked value, or a 422 listing every problem."""
    errs: list[dict] = []
    out = spec.check(value, "", config, errs)
    if errs:
        raise ApiError(422, f"invalid {what}: {summary(errs)}", errs)
    return out


def summary(errs: list[dict]) -> str:
    first = errs[0]
    text = f"{first['field']}: {first['message']}"
    if "expected" in first:
        text += f" (expected {first['expected']}, got {first['got']})"
    return text + (f"; and {len(errs) - 1} more" if len(errs) > 1 else "")


# ----------------------------------------------------------------- query strings and paths
def header_text(headers: Mapping[str, str], name: str, max_len: int) -> str | None:
    """A text header within its documented length (422 beyond)."""
    raw = headers.get(name)
    if raw is None:
        return None
    errs: list[dict] = []
    value = Text(max_len=max_len).check(raw, name, {}, errs)
    if errs:
        raise ApiError(422, summary(errs), errs)
    return value


def enum_arg(args: Mapping[str, str], name: str, allowed: tuple[str, ...], default: str) -> str:
    raw = args.get(name)
    if raw is None:
        return default
    if raw not in allowed:
        raise ApiError(
            422,
            f"{name} must be one of {', '.join(allowed)}",
            [field_error(name, "not an allowed value", expected="one of " + ", ".join(allowed), got=raw)],
        )
    return raw


def int_arg(args: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    """An integer query parameter in ASCII digits ("²" and "٣" are not numbers here)."""
    raw = args.get(name)
    if raw is None:
        return default
    value = int(raw) if ASCII_INT.fullmatch(raw) else None
    if value is None or not low <= value <= high:
        raise ApiError(
            422,
            f"{name} must be an integer from {low} to {high}",
            [field_error(name, "out of range", expected=f"integer {low}..{high}", got=raw)],
        )
    return value


def text_arg(args: Mapping[str, str], name: str, max_len: int, *, required: bool = False) -> str | None:
    raw = args.get(name)
    errs: list[dict] = []
    if raw is None:
        if required:
            errs.append(field_error(name, "missing query parameter", expected="text", got=None))
    else:
        raw = Text(max_len=max_len).check(raw, name, {}, errs)
    if errs:
        raise ApiError(422, summary(errs), errs)
    return raw


def query_schema(name: str, spec: Spec, config, *, required: bool = False, doc: str = "") -> dict:
    out = {"name": name, "in": "query", "required": required, "schema": spec.schema(config)}
    if doc:
        out["description"] = doc
    return out


class IdConverter(BaseConverter):
    """``<id:ticket_id>``: ASCII digits within 1..2^31-1; anything else matches no route (404)."""

    # 1..2147483647 spelled out: the route matcher must reject a bigger id before it looks at
    # the method (a converter that refuses later turns a PATCH of a huge id into 405)
    regex = (
        "(?:[1-9][0-9]{0,8}|1[0-9]{9}|20[0-9]{8}|21[0-3][0-9]{7}|214[0-6][0-9]{6}"
        "|2147[0-3][0-9]{5}|21474[0-7][0-9]{4}|214748[0-2][0-9]{3}|2147483[0-5][0-9]{2}"
        "|21474836[0-3][0-9]|214748364[0-7])"
    )

    def to_python(self, value: str) -> int:
        number = int(value)
        if not 1 <= number <= ID_MAX:
            raise ValidationError()
        return number

    def to_url(self, value: Any) -> str:
        return str(int(value))


def path_id(name: str, doc: str = "ticket id") -> dict:
    return {"name": name, "in": "path", "required": True, "description": doc, "schema": ID.schema({})}


def init_app(app) -> None:
    app.url_map.converters["id"] = IdConverter

    @app.before_request
    def _requester_header():
        """``X-Requester`` is documented on every /v1 route that takes it as at most 320
        characters (the requester column); checked once here for all of them."""
        from flask import request

        if request.path.startswith("/v1/"):
            header_text(request.headers, "X-Requester", 320)


def describe_value(value: Any) -> str:
    return describe(value)

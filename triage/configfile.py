"""YAML configuration that remembers line numbers, so every config error names its line.

``yaml.safe_load`` throws positions away; an admin told "unknown operator" in a
300-line rule file needs the line. We compose the node tree and build plain
values whose mappings and lists also carry the line of each key / item.
Duplicate keys, which YAML silently lets the last one win, are an error here.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from yaml.constructor import SafeConstructor

from .errors import ConfigError


class LMap(dict):
    """A mapping with ``line`` (its own) and ``lines[key]`` (each key's line), 1-based."""

    line: int = 0
    lines: dict


class LList(list):
    """A list with ``line`` and ``lines[i]`` for each item."""

    line: int = 0
    lines: list


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _build(node: yaml.Node, file: str, constructor: SafeConstructor):
    if isinstance(node, yaml.MappingNode):
        out = LMap()
        out.line, out.lines = _line(node), {}
        for k_node, v_node in node.value:
            key = constructor.construct_object(k_node, deep=True)
            if not isinstance(key, (str, int, bool)):
                raise ConfigError(
                    f"a key must be a plain value, got {type(key).__name__}", file=file, line=_line(k_node)
                )
            if key in out:
                raise ConfigError(
                    f"duplicate key {key!r} (first on line {out.lines[key]})", file=file, line=_line(k_node)
                )
            out[key] = _build(v_node, file, constructor)
            out.lines[key] = _line(k_node)
        return out
    if isinstance(node, yaml.SequenceNode):
        out = LList(_build(n, file, constructor) for n in node.value)
        out.line, out.lines = _line(node), [_line(n) for n in node.value]
        return out
    try:
        return constructor.construct_object(node, deep=True)
    except yaml.YAMLError as e:
        raise ConfigError(f"bad value: {getattr(e, 'problem', e)}", file=file, line=_line(node)) from None


def load_yaml(path: str | Path):
    """Parse a YAML file into plain values with line information; syntax errors → ConfigError."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read: {e}", file=file) from None
    return loads_yaml(text, file)


def loads_yaml(text: str, file: str = "<string>"):
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        raise ConfigError(
            f"YAML syntax: {e.problem}", file=file, line=mark.line + 1 if mark else None
        ) from None
    except yaml.YAMLError as e:
        raise ConfigError(f"YAML syntax: {e}", file=file) from None
    if node is None:
        raise ConfigError("the file is empty", file=file, line=1)
    return _build(node, file, SafeConstructor())


def line_of(container, key, default: int | None = None) -> int | None:
    """The line of ``container[key]`` (or of the container) if known."""
    lines = getattr(container, "lines", None)
    try:
        return lines[key] if lines is not None else default
    except (KeyError, IndexError, TypeError):
        return getattr(container, "line", default)

"""Many rows, one statement: the batch's INSERTs and UPDATEs as PostgreSQL ``unnest`` forms.

A group commit writes each table's rows with one call (``event_log.write_later``). On
SQLite that is the driver's ``executemany``, a loop in C. On PostgreSQL, psycopg's
``executemany`` sends one Bind/Execute per row and the server runs each one: about
fourteen executions per ticket, which cost more CPU (ours and the server's) than the
rest of the ticket's writes. Here the rows go as one array per column instead:

    INSERT INTO t (a, b) SELECT * FROM unnest(%s::a_type[], %s::b_type[])
    UPDATE t SET y = u.y FROM unnest(%s::x_type[], %s::y_type[]) AS u(x, y) WHERE t.x = u.x

one statement per table and group, with a fixed text (psycopg prepares it after a few
runs). Values pass through the columns' own bind processors first (``UTCDateTime`` to
naive UTC, JSON to psycopg's ``Json``), and columns a row leaves out get their Python
defaults, so the rows stored are those SQLAlchemy's executemany would have stored.
Statements of another shape, and every statement on other databases, run as before.

:func:`execute_all` writes several such statements whose results nobody reads (the end of a
batch: predictions, clocks, outbox, events, the new tickets' fields) in one round trip on
PostgreSQL, through psycopg's pipeline mode: the server runs them one after another as
before, but the client sends them together and waits once, not once per statement.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from sqlalchemy import Column, Table
from sqlalchemy.engine import Connection, CursorResult
from sqlalchemy.sql.dml import Insert, Update
from sqlalchemy.sql.elements import BinaryExpression, BindParameter
from sqlalchemy.sql.operators import eq

_PLANS: dict[tuple[int, tuple[str, ...], str], _Plan | _Positional | None] = {}


class _Plan:
    """One statement's unnest form: SQL text, the row keys it reads, each column's converter."""

    __slots__ = ("sql", "keys", "convert", "defaults", "statement")

    def __init__(self, statement, sql: str, keys: list[str], convert, defaults) -> None:
        self.statement = statement  # kept alive: the plan cache is keyed by its id
        self.sql, self.keys, self.convert, self.defaults = sql, keys, convert, defaults

    def params(self, rows: Sequence[dict[str, Any]]) -> tuple[list[Any], ...]:
        """One array per column, each value as the column's bind processor makes it."""
        return tuple(_columns(self.keys, self.convert, self.defaults, rows))


def _columns(keys, convert, defaults, rows: Sequence[dict[str, Any]]) -> list[list[Any]]:
    """Each key's values over the rows, through its processor (a column every row leaves
    out: its default; the rows all have the same keys)."""
    out = []
    for key, process in zip(keys, convert):
        default = defaults.get(key)
        values = [row[key] for row in rows] if default is None else [default() for _ in rows]
        out.append(values if process is None else [process(v) for v in values])
    return out


def unless_present(statement: Insert, column: Column) -> Insert:
    """``statement`` (an ``INSERT ... ON CONFLICT DO NOTHING``) that, on PostgreSQL, inserts
    only the rows whose ``column`` value is not in the table yet (``WHERE NOT EXISTS``), so a
    row already there does not draw a value from the table's id sequence, as ``ON CONFLICT``
    alone would on every call (a team named by every intake would use up ``teams.id``)."""
    return statement.execution_options(triage_unless_present=column.key)


def execute(conn: Connection, statement, rows: Sequence[dict[str, Any]]) -> CursorResult:
    """``conn.execute(statement, rows)``, as one unnest statement on PostgreSQL when it can be."""
    marked = "triage_unless_present" in statement.get_execution_options()
    plan = _plan(conn, statement, rows) if len(rows) > 1 or marked else None
    if plan is None:
        return conn.execute(statement, list(rows))
    return conn.exec_driver_sql(plan.sql, plan.params(rows))


def execute_all(conn: Connection, work: Sequence[tuple[Any, Sequence[dict[str, Any]]]]) -> None:
    """Each ``(statement, rows)`` in order, results unread: on PostgreSQL in one round trip
    when every statement has an unnest form (then even one row goes as arrays: one text per
    table, prepared once, whatever the group's size); else one :func:`execute` each.

    A failure raises as :func:`execute` would (SQLAlchemy's exception for psycopg's), after
    the round trip: the transaction is then aborted and its caller rolls it back."""
    plans = [_plan(conn, statement, rows) if rows else None for statement, rows in work]
    if conn.dialect.name != "postgresql" or len(work) < 2 or not all(isinstance(p, _Plan) for p in plans):
        for statement, rows in work:
            execute(conn, statement, rows)
        return
    _pipelined(conn, [(plan.sql, plan.params(rows)) for plan, (_, rows) in zip(plans, work)])  # type: ignore[union-attr]


def _pipelined(conn: Connection, work: list[tuple[str, tuple[list[Any], ...]]]) -> None:
    """psycopg's pipeline: every statement sent, then one sync. Listeners of
    ``before_cursor_execute`` still see each statement (the statement budget's tests count
    them: a pipeline saves round trips, not statements)."""
    dbapi: Any = conn.connection.dbapi_connection
    events = conn._has_events or conn.engine._has_events
    sql, params = work[0]
    cursor = dbapi.cursor()
    try:
        with dbapi.pipeline():
            for sql, params in work:
                if events:
                    conn.dispatch.before_cursor_execute(conn, cursor, sql, params, None, False)
                cursor.execute(sql, params)
    except Exception as err:  # noqa: BLE001 - raised as SQLAlchemy raises psycopg's errors
        conn._handle_dbapi_exception(err, sql, params, cursor, None)  # type: ignore[arg-type]
    finally:
        cursor.close()


def fetch_pipelined(conn: Connection, work: list[tuple[str, Any]]) -> list[list[Any]]:
    """Each ``(sql, params)`` (driver SQL) in one round trip on PostgreSQL, and each one's rows.

    At the start of a transaction psycopg's ``BEGIN`` goes in the same round trip (in pipeline
    mode it is queued with the first statement instead of waited for alone)."""
    dbapi: Any = conn.connection.dbapi_connection
    events = conn._has_events or conn.engine._has_events
    cursors: list[Any] = []
    sql, params = work[0]
    try:
        with dbapi.pipeline():
            for sql, params in work:
                cursor = dbapi.cursor()
                cursors.append(cursor)
                if events:
                    conn.dispatch.before_cursor_execute(conn, cursor, sql, params, None, False)
                cursor.execute(sql, params)
        return [cursor.fetchall() for cursor in cursors]
    except Exception as err:  # noqa: BLE001 - raised as SQLAlchemy raises psycopg's errors
        conn._handle_dbapi_exception(err, sql, params, cursors[-1] if cursors else None, None)  # type: ignore[arg-type]
        raise  # not reached: the handler raises
    finally:
        for cursor in cursors:
            cursor.close()


def driver_form(conn: Connection, statement, rows: Sequence[dict[str, Any]]) -> tuple[str, Any] | None:
    """``statement`` for ``rows`` as driver SQL and parameters (its unnest form), for
    :func:`fetch_pipelined`; None when it has none (then run it with :func:`execute`)."""
    plan = _plan(conn, statement, rows) if rows and conn.dialect.name == "postgresql" else None
    return (plan.sql, plan.params(rows)) if isinstance(plan, _Plan) else None


class _Positional:
    """SQLite: the statement as SQLAlchemy compiles it, run by the driver's executemany with
    each row a tuple of processed values (SQLAlchemy's own executemany builds and processes
    a dict per row first, which costs more than SQLite's insert of the row)."""

    __slots__ = ("sql", "keys", "convert", "defaults", "statement")

    def __init__(self, statement, sql: str, keys: list[str], convert, defaults) -> None:
        self.statement = statement  # kept alive: the plan cache is keyed by its id
        self.sql, self.keys, self.convert, self.defaults = sql, keys, convert, defaults

    def params(self, rows: Sequence[dict[str, Any]]) -> list[tuple[Any, ...]]:
        return list(zip(*_columns(self.keys, self.convert, self.defaults, rows)))


def _positional(conn: Connection, statement, given: tuple[str, ...]) -> _Positional | None:
    """A plain INSERT (maybe ``ON CONFLICT DO NOTHING``) or UPDATE of bound values, no RETURNING."""
    if not isinstance(statement, (Insert, Update)) or statement._returning:
        return None
    compiled = statement.compile(dialect=conn.dialect, column_keys=list(given))
    names = list(compiled.positiontup or [])
    if not names or len(set(names)) != len(names):
        return None
    table = statement.table
    defaults: dict[str, Callable[[], Any]] = {}
    for name in names:
        if name in given:
            continue
        column = table.columns.get(name) if isinstance(statement, Insert) else None
        default = getattr(column, "default", None)
        if default is None or not (default.is_scalar or default.is_callable):
            return None
        defaults[name] = _default(default)
    if any(key not in names for key in given):
        return None
    convert = [compiled.binds[name].type._cached_bind_processor(conn.dialect) for name in names]
    return _Positional(statement, compiled.string, names, convert, defaults)


def _plan(conn: Connection, statement, rows: Sequence[dict[str, Any]]) -> _Plan | _Positional | None:
    if conn.dialect.name not in ("postgresql", "sqlite"):
        return None
    keys = rows[0].keys()
    if not all(row.keys() == keys for row in rows):  # rows of several shapes: as before
        return None
    given = tuple(keys)
    cache_key = (id(statement), given, conn.dialect.name)
    if cache_key not in _PLANS:
        if len(_PLANS) > 1000:  # statements are built once (module constants): this is a guard
            _PLANS.clear()
        _PLANS[cache_key] = _build(conn, statement, given)
    return _PLANS[cache_key]


def _build(conn: Connection, statement, given: tuple[str, ...]) -> _Plan | _Positional | None:
    if conn.dialect.name == "sqlite":
        return _positional(conn, statement, given)
    if isinstance(statement, Insert):
        return _insert_plan(conn, statement, given)
    if isinstance(statement, Update):
        return _update_plan(conn, statement, given)
    return None


def _insert_plan(conn: Connection, statement: Insert, given: tuple[str, ...]) -> _Plan | None:
    """``INSERT INTO t (cols) SELECT * FROM unnest(...)`` [``ON CONFLICT ... DO NOTHING``]
    [``RETURNING`` columns: then the rows are inserted in the order given, so a serial id
    returned ascends with that order, as SQLAlchemy's own sorted RETURNING assumes]."""
    table = statement.table
    returning = list(statement._returning)
    if (
        not isinstance(table, Table)
        or not all(isinstance(c, Column) and c.table is table for c in returning)
        or getattr(statement, "_multi_values", None)
        or statement._values
        or getattr(statement, "select", None) is not None
    ):
        return None
    conflict = getattr(statement, "_post_values_clause", None)
    suffix = ""
    if conflict is not None:
        if type(conflict).__name__ != "OnConflictDoNothing" or conflict.constraint_target is not None:
            return None
        targets = conflict.inferred_target_elements or []
        if conflict.inferred_target_whereclause is not None:
            return None
        names = [getattr(t, "name", t) for t in targets]
        if not all(isinstance(n, str) for n in names):
            return None
        suffix = (
            " ON CONFLICT"
            + (f" ({', '.join(_quote(conn, n) for n in names)})" if names else "")
            + " DO NOTHING"
        )
    columns: list[Column] = []
    defaults: dict[str, Callable[[], Any]] = {}
    for column in table.columns:
        if column.key in given:
            columns.append(column)
            continue
        default = column.default
        if default is None:
            continue  # the database's default (or NULL), as a Core INSERT would leave it
        if not (default.is_scalar or default.is_callable):
            return None  # a SQL expression or a sequence: leave it to SQLAlchemy
        columns.append(column)
        defaults[column.key] = _default(default)
    if any(key not in table.columns for key in given):
        return None
    names = ", ".join(_quote(conn, c.name) for c in columns)
    arrays = ", ".join(f"%b::{_array_type(conn, c)}" for c in columns)
    rows = f"SELECT * FROM unnest({arrays})"
    absent = statement.get_execution_options().get("triage_unless_present")
    if absent is not None:  # unless_present
        if returning or absent not in [c.key for c in columns]:
            return None
        alias = [f"p{i}" for i in range(len(columns))]
        key = alias[[c.key for c in columns].index(absent)]
        quoted = _table(conn, table)
        column = _quote(conn, table.columns[absent].name)
        rows = (
            f"SELECT {', '.join(alias)} FROM unnest({arrays}) AS u({', '.join(alias)}) "
            f"WHERE NOT EXISTS (SELECT 1 FROM {quoted} WHERE {quoted}.{column} = u.{key})"
        )
    if returning:
        alias = ", ".join(f"p{i}" for i in range(len(columns)))
        rows = f"SELECT {alias} FROM unnest({arrays}) WITH ORDINALITY AS u({alias}, n) ORDER BY n"
        suffix += " RETURNING " + ", ".join(_quote(conn, c.name) for c in returning)
    sql = f"INSERT INTO {_table(conn, table)} ({names}) {rows}{suffix}"
    return _Plan(statement, sql, [c.key for c in columns], [_processor(conn, c) for c in columns], defaults)


def _update_plan(conn: Connection, statement: Update, given: tuple[str, ...]) -> _Plan | None:
    """``UPDATE t SET c = u.p ... WHERE t.k = :k`` for rows of bound parameters only."""
    table = statement.table
    where = statement.whereclause
    if (
        not isinstance(table, Table)
        or statement._returning
        or not isinstance(where, BinaryExpression)
        or where.operator is not eq
        or not isinstance(where.left, Column)
        or not isinstance(where.right, BindParameter)
        or where.left.table is not table
    ):
        return None
    sets: list[tuple[Column, str]] = []
    for target, value in statement._values.items():
        column = table.columns.get(getattr(target, "key", target))
        if column is None or not isinstance(value, BindParameter):
            return None
        sets.append((column, value.key))
    key_column, key_param = where.left, where.right.key
    params = [key_param] + [param for _, param in sets]
    if sorted(params) != sorted(given) or len(set(params)) != len(params):
        return None
    columns = [key_column] + [column for column, _ in sets]
    alias = [f"p{i}" for i in range(len(columns))]
    quoted = _table(conn, table)
    assignments = ", ".join(f"{_quote(conn, c.name)} = u.{a}" for c, a in zip(columns[1:], alias[1:]))
    arrays = ", ".join(f"%b::{_array_type(conn, c)}" for c in columns)
    sql = (
        f"UPDATE {quoted} SET {assignments} FROM unnest({arrays}) AS u({', '.join(alias)}) "
        f"WHERE {quoted}.{_quote(conn, key_column.name)} = u.{alias[0]}"
    )
    return _Plan(statement, sql, params, [_processor(conn, c) for c in columns], {})


def _default(default) -> Callable[[], Any]:
    if default.is_scalar:
        value = default.arg
        return lambda: value
    call = default.arg  # SQLAlchemy wraps a plain callable to take the execution context
    return lambda: call(None)


def _processor(conn: Connection, column: Column):
    return column.type._cached_bind_processor(conn.dialect)


def _array_type(conn: Connection, column: Column) -> str:
    return column.type.compile(dialect=conn.dialect) + "[]"


def _quote(conn: Connection, name: str) -> str:
    return conn.dialect.identifier_preparer.quote(name)


def _table(conn: Connection, table: Table) -> str:
    return conn.dialect.identifier_preparer.format_table(table)

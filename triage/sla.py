"""SLA time: business calendars, policies, clocks and escalation levels — all pure.

Every function here is a function of its inputs and ``now``: nothing reads the
wall clock, so the store, the escalation sweep and the tests agree on what a
clock says at any instant. Times are timezone-aware; a naive datetime is taken
as UTC (that is what SQLite hands back). Working hours are wall-clock times in
the calendar's IANA time zone, so a DST change shortens or lengthens a 24x7
day but never a 09:00-17:00 one.

A :class:`Clock` carries its own calendar, so a clock started under one policy
keeps counting the same way after an admin edits ``rules.yaml``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

UTC = timezone.utc
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_MAX_DAYS = 3 * 366  # no SLA target reaches further; a calendar with no hours fails loudly
_DURATION = re.compile(r"^\s*(?:(\d+(?:\.\d+)?)\s*h)?\s*(?:(\d+(?:\.\d+)?)\s*m(?:in)?)?\s*$")


def parse_duration(value) -> float:
    """Minutes from ``90``, ``"90m"``, ``"4h"`` or ``"1h30m"``; raises ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as '4h' or '30m', got {value!r}")
    if isinstance(value, (int, float)):
        minutes = float(value)
    else:
        m = _DURATION.match(str(value))
        if not m or not any(m.groups()):
            raise ValueError(f"expected a duration such as '4h' or '30m', got {value!r}")
        minutes = float(m.group(1) or 0) * 60 + float(m.group(2) or 0)
    if minutes <= 0:
        raise ValueError(f"expected a positive duration, got {value!r}")
    return minutes


def parse_hours(text: str) -> tuple[int, int]:
    """``"09:00-17:30"`` → (540, 1050) minutes after local midnight; ``24:00`` is allowed."""
    m = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*", str(text))
    if not m:
        raise ValueError(f"expected working hours like '09:00-17:00', got {text!r}")
    h1, m1, h2, m2 = map(int, m.groups())
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if m1 > 59 or m2 > 59 or not 0 <= start < end <= 1440:
        raise ValueError(f"expected start < end within one day, got {text!r}")
    return start, end


def as_utc(t: datetime) -> datetime:
    """Aware UTC; naive input is read as UTC."""
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


@dataclass(frozen=True)
class Calendar:
    """Weekly working hours in a time zone, minus holidays. ``hours[0]`` is Monday."""

    name: str
    tz: str = "UTC"
    hours: tuple[tuple[tuple[int, int], ...], ...] = ((),) * 7
    holidays: frozenset[date] = frozenset()

    def __post_init__(self) -> None:
        try:
            zone = ZoneInfo(self.tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA time zone {self.tz!r}") from None
        if len(self.hours) != 7:
            raise ValueError("expected working hours for 7 days")
        if not any(self.hours):
            raise ValueError(f"calendar {self.name!r} has no working hours at all")
        # derived once: every clock asks them several times per ticket (not fields: no
        # part of equality, repr or the stored form)
        always = not self.holidays and all(h == ((0, 1440),) for h in self.hours)
        object.__setattr__(self, "_zone", zone)
        object.__setattr__(self, "_always", always)
        object.__setattr__(self, "_hash", hash((self.name, self.tz, self.hours, self.holidays)))

    def __hash__(self) -> int:  # the caches below key on calendars: hash the fields once
        return self._hash  # type: ignore[attr-defined]

    @classmethod
    def always(cls, name: str = "24x7", tz: str = "UTC", holidays=()) -> "Calendar":
        return cls(name, tz, (((0, 1440),),) * 7, frozenset(holidays))

    @classmethod
    def weekly(cls, name: str, tz: str, spec: dict[str, list[str] | str], holidays=()) -> "Calendar":
        """From ``{"mon": "09:00-17:00", "tue": [...], ...}``; missing days are closed."""
        hours = []
        for day in DAYS:
            value = spec.get(day) or []
            ranges = sorted(parse_hours(v) for v in ([value] if isinstance(value, str) else value))
            if any(a[1] > b[0] for a, b in zip(ranges, ranges[1:])):
                raise ValueError(f"overlapping working hours on {day}")
            hours.append(tuple(ranges))
        return cls(name, tz, tuple(hours), frozenset(holidays))

    @property
    def is_always(self) -> bool:
        return self._always  # type: ignore[attr-defined]

    def to_dict(self) -> dict:
        """As stored in each SLA clock's state: built once per calendar (every clock started
        writes it), so treat the returned dict as read-only."""
        return _calendar_dict(self)

    def _as_dict(self) -> dict:
        return {
            "name": self.name,
            "timezone": self.tz,
            "hours": {
                d: [f"{a // 60:02d}:{a % 60:02d}-{b // 60:02d}:{b % 60:02d}" for a, b in h]
                for d, h in zip(DAYS, self.hours)
            },
            "holidays": sorted(d.isoformat() for d in self.holidays),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Calendar":
        return cls.weekly(
            d["name"],
            d.get("timezone", "UTC"),
            d.get("hours", {}),
            [date.fromisoformat(x) for x in d.get("holidays", [])],
        )


@lru_cache(maxsize=256)
def _calendar_dict(cal: Calendar) -> dict:
    return cal._as_dict()


@lru_cache(maxsize=65536)
def _day_intervals(cal: Calendar, day: date) -> tuple[tuple[datetime, datetime], ...]:
    """Working intervals of one local day, as UTC instants (cached: sweeps repeat days)."""
    if day in cal.holidays:
        return ()
    zone = cal._zone  # type: ignore[attr-defined]
    out = []
    for a, b in cal.hours[day.weekday()]:
        start = datetime.combine(day, time(a // 60, a % 60), zone).astimezone(UTC)
        end_day, end_min = (day + timedelta(days=1), 0) if b == 1440 else (day, b)
        end = datetime.combine(end_day, time(end_min // 60, end_min % 60), zone).astimezone(UTC)
        if end > start:
            out.append((start, end))
    return tuple(out)


def _local_day(t: datetime, cal: Calendar) -> date:
    return t.astimezone(cal._zone).date()  # type: ignore[attr-defined]


def add_business_time(start: datetime, minutes: float, calendar: Calendar) -> datetime:
    """The instant ``minutes`` of business time after ``start`` (UTC, aware)."""
    start = as_utc(start)
    if minutes < 0:
        raise ValueError(f"expected minutes >= 0, got {minutes}")
    if minutes == 0:
        return start
    if calendar.is_always:
        return start + timedelta(minutes=minutes)
    remaining = timedelta(minutes=minutes)
    day = _local_day(start, calendar) - timedelta(days=1)  # an interval may start the day before
    for _ in range(_MAX_DAYS):
        for a, b in _day_intervals(calendar, day):
            if b <= start:
                continue
            a = max(a, start)
            if b - a >= remaining:
                return a + remaining
            remaining -= b - a
        day += timedelta(days=1)
    raise ValueError(f"calendar {calendar.name!r} has no working time within {_MAX_DAYS} days")


def business_minutes_between(a: datetime, b: datetime, calendar: Calendar) -> float:
    """Business minutes in ``[a, b)``; negative when ``b`` is before ``a``."""
    a, b = as_utc(a), as_utc(b)
    if b < a:
        return -business_minutes_between(b, a, calendar)
    if calendar.is_always:
        return (b - a).total_seconds() / 60
    total = timedelta()
    day, last = _local_day(a, calendar) - timedelta(days=1), _local_day(b, calendar)
    while day <= last:
        for s, e in _day_intervals(calendar, day):
            lo, hi = max(s, a), min(e, b)
            if hi > lo:
                total += hi - lo
        day += timedelta(days=1)
    return total.total_seconds() / 60


# ---------------------------------------------------------------- policies
@dataclass(frozen=True)
class SlaTarget:
    priority: int
    tier: str | None
    first_response: float  # business minutes
    resolution: float


@dataclass(frozen=True)
class SlaPolicy:
    """First-response and resolution targets per priority (and optionally customer tier)."""

    name: str
    calendar: Calendar
    targets: tuple[SlaTarget, ...]

    def target(self, priority: int, tier: str | None = None) -> SlaTarget:
        """The tier-specific row if there is one, else the row for every tier.

        ITIL's P5 ("planning") falls back to the P4 row when a policy declares none,
        so policies written for four priorities keep working with the 5-level matrix.
        """
        rows = [t for t in self.targets if t.priority == int(priority)]
        if not rows and int(priority) == 5:
            return self.target(4, tier)
        exact = [t for t in rows if tier is not None and t.tier == tier]
        generic = [t for t in rows if t.tier is None]
        if exact or generic:
            return (exact or generic)[0]
        raise KeyError(f"SLA policy {self.name!r} has no target for priority {priority}")


# ------------------------------------------------------------------ clocks
@dataclass(frozen=True)
class Clock:
    """One SLA clock. Immutable: every operation returns a new clock for the store to save."""

    started_at: datetime
    target_minutes: float
    calendar: Calendar
    pauses: tuple[tuple[datetime, datetime | None], ...] = ()
    stopped_at: datetime | None = None
    name: str = ""
    retargets: tuple[tuple[datetime, float, float], ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.target_minutes > 0:
            raise ValueError(f"expected a positive target, got {self.target_minutes}")

    @classmethod
    def start(cls, now: datetime, target_minutes: float, calendar: Calendar, name: str = "") -> "Clock":
        return cls(as_utc(now), float(target_minutes), calendar, name=name)

    @property
    def paused(self) -> bool:
        return bool(self.pauses) and self.pauses[-1][1] is None

    def pause(self, now: datetime) -> "Clock":
        """Stop counting (pending on the customer). Idempotent; a stopped clock is unchanged."""
        if self.paused or self.stopped_at is not None:
            return self
        return replace(self, pauses=self.pauses + ((max(as_utc(now), self.started_at), None),))

    def resume(self, now: datetime) -> "Clock":
        """Count again from ``now``. Idempotent on a running clock."""
        if not self.paused:
            return self
        since = self.pauses[-1][0]
        return replace(self, pauses=self.pauses[:-1] + ((since, max(as_utc(now), since)),))

    def stop(self, now: datetime) -> "Clock":
        """Final: first response given, or ticket resolved. An open pause ends here too."""
        if self.stopped_at is not None:
            return self
        clock = self.resume(now)
        return replace(clock, stopped_at=max(as_utc(now), self.started_at))

    def retarget(self, new_minutes: float, now: datetime, mode: str = "proportional") -> "Clock":
        """A priority change: ``proportional`` keeps the share of time left (25 % of the old
        target left → 25 % of the new one), so raising priority pulls the due time in without
        breaching a clock instantly; ``absolute`` applies the new target from the start."""
        if self.stopped_at is not None:
            return self
        new_minutes = float(new_minutes)
        if mode == "absolute":
            target = new_minutes
        elif mode == "proportional":
            used = self.elapsed(now)
            left = max(0.0, 1.0 - used / self.target_minutes)
            target = max(used + new_minutes * left, 1e-6)
        else:
            raise ValueError(f"expected mode 'proportional' or 'absolute', got {mode!r}")
        return replace(
            self,
            target_minutes=target,
            retargets=self.retargets + ((as_utc(now), self.target_minutes, target),),
        )

    def _segments(self, now: datetime) -> list[tuple[datetime, datetime]]:
        """The intervals in which the clock ran, up to ``now`` (or the stop)."""
        end = as_utc(now) if self.stopped_at is None else min(as_utc(now), self.stopped_at)
        out, cursor = [], self.started_at
        for p_start, p_end in self.pauses:
            out.append((cursor, min(p_start, end)))
            cursor = end if p_end is None else max(cursor, p_end)
        out.append((cursor, end))
        return [(a, b) for a, b in out if b > a]

    def elapsed(self, now: datetime) -> float:
        """Business minutes counted so far (pauses excluded)."""
        return sum(business_minutes_between(a, b, self.calendar) for a, b in self._segments(now))

    def due_at(self, now: datetime) -> datetime | None:
        """When the target is (or was) reached if the clock keeps running from ``now``.

        Never moves earlier as ``now`` advances (a paused clock pushes it later);
        ``None`` for a clock stopped before its target.
        """
        acc = 0.0
        for a, b in self._segments(now):
            m = business_minutes_between(a, b, self.calendar)
            if acc + m >= self.target_minutes:
                return add_business_time(a, self.target_minutes - acc, self.calendar)
            acc += m
        if self.stopped_at is not None and as_utc(now) >= self.stopped_at:
            return None
        return add_business_time(as_utc(now), self.target_minutes - acc, self.calendar)

    def fraction(self, now: datetime) -> float:
        return self.elapsed(now) / self.target_minutes

    def state(self, now: datetime) -> str:
        """``met`` / ``breached`` once stopped, else ``breached`` / ``paused`` / ``running``."""
        over = self.elapsed(now) > self.target_minutes
        if self.stopped_at is not None and as_utc(now) >= self.stopped_at:
            return "breached" if over else "met"
        if over:
            return "breached"
        return "paused" if self.paused else "running"

    def to_dict(self) -> dict:
        iso = lambda t: None if t is None else t.isoformat()  # noqa: E731
        return {
            "name": self.name,
            "started_at": iso(self.started_at),
            "target_minutes": self.target_minutes,
            "calendar": self.calendar.to_dict(),
            "pauses": [[iso(a), iso(b)] for a, b in self.pauses],
            "stopped_at": iso(self.stopped_at),
            "retargets": [[iso(t), old, new] for t, old, new in self.retargets],
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Clock":
        t = lambda s: None if s is None else as_utc(datetime.fromisoformat(s))  # noqa: E731
        return cls(
            t(d["started_at"]),
            float(d["target_minutes"]),
            Calendar.from_dict(d["calendar"]),
            tuple((t(a), t(b)) for a, b in d.get("pauses", [])),
            t(d.get("stopped_at")),
            d.get("name", ""),
            tuple((t(x), float(o), float(n)) for x, o, n in d.get("retargets", [])),
        )


# -------------------------------------------------------------- escalation
@dataclass(frozen=True)
class EscalationLevel:
    """Fires once the clock has used ``at`` of its target (0.75 = warn at 75 %)."""

    name: str
    at: float


def levels_reached(clock: Clock, levels: list[EscalationLevel], now: datetime) -> list[EscalationLevel]:
    """Every level the clock has reached by ``now``, lowest first (a stopped clock stops here)."""
    f = clock.fraction(now)
    return sorted((lv for lv in levels if f >= lv.at), key=lambda lv: lv.at)


def escalation_level(clock: Clock, levels: list[EscalationLevel], now: datetime) -> EscalationLevel | None:
    """The highest level reached, or None."""
    reached = levels_reached(clock, levels, now)
    return reached[-1] if reached else None


def levels_due(
    clock: Clock, levels: list[EscalationLevel], now: datetime, fired: set[str] | frozenset[str] = frozenset()
) -> list[EscalationLevel]:
    """Levels reached but not yet recorded: what a sweep should fire, each exactly once."""
    return [lv for lv in levels_reached(clock, levels, now) if lv.name not in fired]

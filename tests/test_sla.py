"""Business time, SLA clocks and escalation levels: all pure, so every case pins `now`."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings, strategies as st

from triage.sla import (
    DAYS,
    Calendar,
    Clock,
    EscalationLevel,
    SlaPolicy,
    SlaTarget,
    add_business_time,
    business_minutes_between,
    escalation_level,
    levels_due,
    parse_duration,
)

UTC = timezone.utc
BERLIN = ZoneInfo("Europe/Berlin")
NY = ZoneInfo("America/New_York")


def office(tz="Europe/Berlin", holidays=()):
    return Calendar.weekly("office", tz, {d: "09:00-17:00" for d in DAYS[:5]}, holidays)


def local(tz, *args):
    return datetime(*args, tzinfo=tz)


def test_parse_duration():
    assert parse_duration("4h") == 240
    assert parse_duration("1h30m") == 90
    assert parse_duration(15) == 15
    for bad in ("soon", "0m", -5, True, ""):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_friday_afternoon_rolls_over_the_weekend():
    cal = office()
    start = local(BERLIN, 2026, 11, 27, 16, 0)  # Friday 16:00
    due = add_business_time(start, 120, cal)
    assert due == local(BERLIN, 2026, 11, 30, 10, 0)  # Monday 10:00
    assert business_minutes_between(start, due, cal) == 120


def test_start_in_the_weekend_counts_from_monday_opening():
    cal = office()
    assert add_business_time(local(BERLIN, 2026, 11, 28, 12, 0), 30, cal) == local(
        BERLIN, 2026, 11, 30, 9, 30
    )


def test_holiday_is_skipped():
    cal = office(holidays=[date(2026, 12, 25)])
    start = local(BERLIN, 2026, 12, 24, 16, 0)  # Thursday; Friday is a holiday
    assert add_business_time(start, 120, cal) == local(BERLIN, 2026, 12, 28, 10, 0)
    assert business_minutes_between(start, local(BERLIN, 2026, 12, 28, 10, 0), cal) == 120


def test_time_zone_of_the_calendar_decides_the_hours():
    ny = office("America/New_York")
    start = datetime(2026, 11, 24, 13, 0, tzinfo=UTC)  # 08:00 in New York: not open yet
    assert add_business_time(start, 60, ny) == local(NY, 2026, 11, 24, 10, 0)


def test_dst_change_keeps_wall_clock_hours():
    """Europe/Berlin leaves summer time on 2026-10-25: 09:00 local is 07:00 UTC before, 08:00 after."""
    cal = office()
    fri = local(BERLIN, 2026, 10, 23, 16, 0)
    due = add_business_time(fri, 120, cal)
    assert due == local(BERLIN, 2026, 10, 26, 10, 0)
    assert due.astimezone(UTC).hour == 9
    assert business_minutes_between(fri, due, cal) == 120


def test_dst_day_is_25_hours_on_a_24x7_calendar_in_that_zone():
    cal = Calendar.always("always", "Europe/Berlin", holidays=[date(2026, 1, 1)])  # slow path
    a, b = local(BERLIN, 2026, 10, 25, 0, 0), local(BERLIN, 2026, 10, 26, 0, 0)
    assert business_minutes_between(a, b, cal) == 25 * 60
    assert add_business_time(a, 25 * 60, cal) == b


def test_naive_datetimes_are_utc_and_negative_spans_are_negative():
    cal = Calendar.always()
    a, b = datetime(2026, 1, 1, 0, 0), datetime(2026, 1, 1, 1, 0)
    assert business_minutes_between(b, a, cal) == -60
    assert add_business_time(a, 60, cal) == b.replace(tzinfo=UTC)


def test_bad_calendars_are_refused():
    with pytest.raises(ValueError, match="time zone"):
        Calendar.weekly("x", "Mars/Olympus", {"mon": "09:00-17:00"})
    with pytest.raises(ValueError, match="no working hours"):
        Calendar.weekly("x", "UTC", {})
    with pytest.raises(ValueError):
        Calendar.weekly("x", "UTC", {"mon": "17:00-09:00"})


def test_policy_prefers_tier_row():
    pol = SlaPolicy("p", Calendar.always(), (SlaTarget(1, None, 30, 240), SlaTarget(1, "gold", 15, 120)))
    assert pol.target(1, "gold").first_response == 15
    assert pol.target(1, "silver").first_response == 30
    with pytest.raises(KeyError):
        pol.target(2)


# -------------------------------------------------------------------- clocks
T0 = local(BERLIN, 2026, 11, 23, 9, 0)  # Monday 09:00


def test_clock_runs_and_breaches():
    c = Clock.start(T0, 240, office())
    assert c.due_at(T0) == local(BERLIN, 2026, 11, 23, 13, 0)
    assert c.state(T0 + timedelta(hours=2)) == "running"
    assert c.state(T0 + timedelta(hours=5)) == "breached"
    assert c.elapsed(T0 + timedelta(days=1)) == 480 + 0  # Monday's 8 h, Tuesday not yet open


def test_pause_and_resume_move_due_time_by_the_pause():
    c = Clock.start(T0, 240, office())
    p = c.pause(T0 + timedelta(hours=1))
    assert p.state(T0 + timedelta(hours=3)) == "paused"
    assert p.pause(T0 + timedelta(hours=2)) == p  # idempotent
    r = p.resume(T0 + timedelta(hours=3))
    assert r.elapsed(T0 + timedelta(hours=3)) == 60
    assert r.due_at(T0 + timedelta(hours=3)) == local(BERLIN, 2026, 11, 23, 15, 0)
    assert r.resume(T0 + timedelta(hours=4)) == r


def test_pause_over_night_counts_only_business_time():
    c = Clock.start(T0, 240, office()).pause(local(BERLIN, 2026, 11, 23, 16, 0))
    r = c.resume(local(BERLIN, 2026, 11, 24, 11, 0))
    assert r.elapsed(local(BERLIN, 2026, 11, 24, 12, 0)) == 7 * 60 + 60
    assert r.state(local(BERLIN, 2026, 11, 24, 12, 0)) == "breached"


def test_stop_meets_or_breaches():
    c = Clock.start(T0, 60, office())
    assert c.stop(T0 + timedelta(minutes=30)).state(T0 + timedelta(days=3)) == "met"
    late = c.stop(T0 + timedelta(minutes=90))
    assert late.state(T0 + timedelta(days=3)) == "breached"
    assert c.stop(T0 + timedelta(minutes=30)).due_at(T0 + timedelta(hours=2)) is None
    stopped_paused = c.pause(T0 + timedelta(minutes=10)).stop(T0 + timedelta(minutes=50))
    assert stopped_paused.elapsed(T0 + timedelta(hours=5)) == 10
    assert stopped_paused.pause(T0 + timedelta(hours=1)) == stopped_paused


def test_retarget_proportional_and_absolute():
    c = Clock.start(T0, 480, office())  # P3: 8 h
    now = T0 + timedelta(hours=2)  # a quarter used
    up = c.retarget(240, now)  # raised to P1: 4 h, three quarters of it left
    assert up.target_minutes == pytest.approx(120 + 180)
    assert up.due_at(now) == local(BERLIN, 2026, 11, 23, 14, 0)
    assert up.retargets[-1][1:] == (480, pytest.approx(300))
    assert c.retarget(240, now, mode="absolute").due_at(now) == local(BERLIN, 2026, 11, 23, 13, 0)
    with pytest.raises(ValueError):
        c.retarget(240, now, mode="magic")


def test_clock_round_trips_through_json_dict():
    import json

    c = (
        Clock.start(T0, 240, office(holidays=[date(2026, 12, 25)]), name="resolution")
        .pause(T0 + timedelta(hours=1))
        .resume(T0 + timedelta(hours=2))
        .retarget(120, T0 + timedelta(hours=3))
        .pause(T0 + timedelta(hours=4))
    )
    back = Clock.from_dict(json.loads(json.dumps(c.to_dict())))
    assert back == c
    assert back.elapsed(T0 + timedelta(hours=6)) == c.elapsed(T0 + timedelta(hours=6))


def test_every_escalation_level_fires_exactly_once_across_sweeps():
    levels = [
        EscalationLevel("warn", 0.75),
        EscalationLevel("escalate", 1.0),
        EscalationLevel("manager", 1.5),
    ]
    c = Clock.start(T0, 120, office())
    fired: list[str] = []
    for minute in range(0, 8 * 60, 5):  # a sweep every 5 minutes for a working day
        for lv in levels_due(c, levels, T0 + timedelta(minutes=minute), set(fired)):
            fired.append(lv.name)
    assert fired == ["warn", "escalate", "manager"]
    assert escalation_level(c, levels, T0 + timedelta(minutes=89)) is None
    assert escalation_level(c, levels, T0 + timedelta(minutes=90)).name == "warn"
    assert escalation_level(c, levels, T0 + timedelta(minutes=121)).name == "escalate"


def test_no_escalation_while_paused_past_the_mark():
    levels = [EscalationLevel("warn", 0.75)]
    c = Clock.start(T0, 120, office()).pause(T0 + timedelta(minutes=60))
    assert levels_due(c, levels, T0 + timedelta(hours=6)) == []


# ----------------------------------------------------------- property tests
instants = st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 1)).map(
    lambda t: t.replace(tzinfo=UTC, second=0, microsecond=0)
)
CALS = [
    office(holidays=[date(2026, 12, 25), date(2027, 1, 1)]),
    office("America/New_York"),
    Calendar.always(),
]


@settings(max_examples=60, deadline=None)
@given(
    start=instants,
    target=st.integers(1, 3000),
    cal=st.sampled_from(CALS),
    events=st.lists(
        st.tuples(st.integers(1, 4000), st.sampled_from(["pause", "resume", "tick"])), max_size=6
    ),
)
def test_due_time_never_moves_earlier_as_time_passes(start, target, cal, events):
    clock, now = Clock.start(start, target, cal), start
    due = clock.due_at(now)
    for minutes, op in events:
        now = now + timedelta(minutes=minutes)
        if op != "tick":
            clock = getattr(clock, op)(now)
        new_due = clock.due_at(now)
        assert new_due >= due
        due = new_due


@settings(max_examples=60, deadline=None)
@given(start=instants, minutes=st.integers(0, 5000), cal=st.sampled_from(CALS))
def test_add_and_between_are_inverse(start, minutes, cal):
    due = add_business_time(start, minutes, cal)
    assert due >= start
    assert business_minutes_between(start, due, cal) == pytest.approx(minutes)

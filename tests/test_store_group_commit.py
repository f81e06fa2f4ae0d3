"""Group commit (triage.store.group) and batch intake (intake_many), on both stores.

Concurrent intakes of one process share write transactions; a caller is answered only
after the commit that holds its ticket. What must hold, as with one transaction each:
everything of every ticket is stored, a bad ticket fails alone, a replayed key writes
nothing twice, and a failed commit acknowledges nobody.
"""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.exc import IntegrityError

from store_support import NOW, RULES, statements, sure_triager
from triage.errors import InputError
from triage.store.intake import IntakeResult, intake_grouped, intake_many
from triage.store.tables import IdempotencyKey, OutboxMessage, Prediction, SlaClockRow, TicketEvent, TicketRow

SURE = sure_triager()
COMMON = dict(actor="ann", triager=SURE, ruleset=RULES, now=NOW, auto_assign=False)


def payload(i: int) -> dict:
    return {
        "subject": f"VPN down {i}",
        "body": "since 9",
        "requester": f"user{i}@example.com",
        "affected_service": "vpn",
    }


def counts(store) -> dict[str, int]:
    with store.session(readonly=True) as s:
        return {
            table.__tablename__: s.scalar(select(func.count()).select_from(table)) or 0
            for table in (TicketRow, TicketEvent, SlaClockRow, OutboxMessage, Prediction, IdempotencyKey)
        }


def written_per_ticket(store, ticket_id: int) -> dict[str, int]:
    with store.session(readonly=True) as s:
        return {
            "events": s.scalar(select(func.count()).where(TicketEvent.ticket_id == ticket_id)) or 0,
            "clocks": s.scalar(select(func.count()).where(SlaClockRow.ticket_id == ticket_id)) or 0,
            "mails": s.scalar(select(func.count()).where(OutboxMessage.ticket_id == ticket_id)) or 0,
            "predictions": s.scalar(select(func.count()).where(Prediction.ticket_id == ticket_id)) or 0,
        }


def test_concurrent_intakes_from_threads_are_all_stored_whole(store):
    results: list[IntakeResult] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def client(c: int) -> None:
        try:
            for i in range(c * 100, c * 100 + 6):
                res = intake_grouped(store, payload(i), idempotency_key=f"k{i}", **COMMON)
                with lock:
                    results.append(res)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(c,)) for c in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len({r.ticket.id for r in results}) == 36 and all(r.created for r in results)
    for r in results:  # each answered ticket was committed with all of its rows
        assert written_per_ticket(store, r.ticket.id) == {
            "events": written_per_ticket(store, results[0].ticket.id)["events"],
            "clocks": 2,
            "mails": 1,
            "predictions": 3,
        }
    with store.session(readonly=True) as s:
        owners = dict(s.execute(select(IdempotencyKey.key, IdempotencyKey.ticket_id)).all())
    assert set(owners) == {f"k{c * 100 + i}" for c in range(6) for i in range(6)}
    assert set(owners.values()) == {r.ticket.id for r in results}  # every key names its ticket


def test_a_batch_is_one_transaction_with_one_insert_per_table(store):
    groups = store.committer.groups
    with statements(store) as seen:
        results = intake_many(
            store, [payload(i) for i in range(5)], keys=[f"b{i}" for i in range(5)], **COMMON
        )
    assert all(isinstance(r, IntakeResult) and r.created for r in results)
    assert store.committer.groups - groups == 1
    for table in ("tickets", "idempotency_keys", "sla_clocks", "ticket_events", "outbox", "predictions"):
        assert len([q for q in seen if q.startswith(f"insert into {table} ")]) == 1, table
    assert counts(store)["sla_clocks"] == 10 and counts(store)["outbox"] == 5
    assert [r.ticket.subject for r in results] == [f"VPN down {i}" for i in range(5)]  # payloads' order


def test_group_tickets_get_their_own_ids_in_the_payloads_order(store):
    results = intake_many(
        store, [payload(i) for i in range(7)], keys=[f"o{i}" if i % 2 else None for i in range(7)], **COMMON
    )
    ids = [r.ticket.id for r in results]
    assert ids == sorted(ids) and len(set(ids)) == 7
    with store.session(readonly=True) as s:
        stored = dict(s.execute(select(TicketRow.id, TicketRow.subject)).all())
        owners = dict(s.execute(select(IdempotencyKey.key, IdempotencyKey.ticket_id)).all())
    assert [stored[i] for i in ids] == [f"VPN down {i}" for i in range(7)]
    assert owners == {f"o{i}": ids[i] for i in (1, 3, 5)}
    for r in results:  # the model's fields and the rules' clocks went to the right row
        assert written_per_ticket(store, r.ticket.id)["clocks"] == 2
        assert r.ticket.requester == stored[r.ticket.id].replace("VPN down ", "user") + "@example.com"


def test_keys_claimed_earlier_answer_their_ticket_inside_a_group_and_write_nothing(store):
    (old,) = intake_many(store, [payload(0)], keys=["old"], **COMMON)
    before = counts(store)
    groups = store.committer.groups
    with statements(store) as seen:
        results = intake_many(
            store,
            [payload(9), payload(1), payload(9), payload(2)],
            keys=["old", "new", "old", "new"],
            **COMMON,
        )
    assert store.committer.groups - groups == 1
    assert [(r.created, r.ticket.id) for r in results] == [
        (False, old.ticket.id),
        (True, results[1].ticket.id),
        (False, old.ticket.id),
        (False, results[1].ticket.id),
    ]
    assert results[0].ticket.subject == "VPN down 0"  # the earlier ticket, not the replay's text
    after = counts(store)
    assert (
        after["tickets"] == before["tickets"] + 1
        and after["idempotency_keys"] == before["idempotency_keys"] + 1
    )
    assert after["outbox"] == before["outbox"] + 1 and after["sla_clocks"] == before["sla_clocks"] + 2
    assert len([q for q in seen if q.startswith("insert into idempotency_keys ")]) == 1


def test_a_bad_watcher_fails_its_ticket_alone_in_a_group(store):
    bad = {**payload(1), "watchers": ["ok@example.com", ""]}
    results = intake_many(store, [payload(0), bad, payload(2)], keys=["w0", "w1", "w2"], **COMMON)
    assert isinstance(results[1], InputError) and "watcher" in str(results[1])
    assert [r.created for r in (results[0], results[2])] == [True, True]
    assert counts(store)["tickets"] == 2
    with store.session(readonly=True) as s:
        assert s.get(IdempotencyKey, "w1") is None


def test_one_bad_ticket_in_a_group_fails_alone(store):
    bad = {**payload(1), "subject": "nul \x00 inside"}
    results = intake_many(store, [payload(0), bad, payload(2)], keys=["g0", "g1", "g2"], **COMMON)
    assert isinstance(results[1], InputError)
    good = [r for r in results if isinstance(r, IntakeResult)]
    assert len(good) == 2 and all(r.created for r in good)
    assert counts(store)["tickets"] == 2
    for r in good:
        assert written_per_ticket(store, r.ticket.id)["clocks"] == 2
    with store.session(readonly=True) as s:  # the bad ticket's key was not kept: a retry may use it
        assert s.get(IdempotencyKey, "g1") is None


def test_a_key_replayed_in_the_same_group_writes_nothing_twice(store):
    groups = store.committer.groups
    first, again = intake_many(store, [payload(0), payload(0)], keys=["same", "same"], **COMMON)
    assert store.committer.groups - groups == 1  # answered inside the group, not by a rerun alone
    assert isinstance(first, IntakeResult) and isinstance(again, IntakeResult)
    assert (first.created, again.created, again.ticket.id) == (True, False, first.ticket.id)
    assert counts(store)["tickets"] == 1 and counts(store)["outbox"] == 1
    assert written_per_ticket(store, first.ticket.id)["clocks"] == 2
    later = intake_grouped(store, payload(0), idempotency_key="same", **COMMON)  # and after the commit
    assert (later.created, later.ticket.id) == (False, first.ticket.id)


def test_an_error_in_commit_acknowledges_nobody(store):
    def refuse(session):  # the commit of the tickets' writes (not the reads before them)
        if any(isinstance(row, TicketRow) for row in session.identity_map.values()):
            raise RuntimeError("disk full")

    event.listen(store._sessions, "before_commit", refuse)
    try:
        results = intake_many(store, [payload(i) for i in range(3)], keys=["c0", "c1", "c2"], **COMMON)
    finally:
        event.remove(store._sessions, "before_commit", refuse)
    assert all(isinstance(r, RuntimeError) for r in results)
    assert counts(store) == dict.fromkeys(counts(store), 0)
    retried = intake_many(store, [payload(i) for i in range(3)], keys=["c0", "c1", "c2"], **COMMON)
    assert all(isinstance(r, IntakeResult) and r.created for r in retried)


@pytest.mark.parametrize("size", [1, 3])
def test_the_group_path_writes_what_the_single_path_writes(store, size):
    from triage.store.intake import intake

    with store.session() as s:
        alone = intake(s, payload(0), idempotency_key="one", **COMMON)
    grouped = intake_many(store, [payload(0)] * size, keys=[f"many{i}" for i in range(size)], **COMMON)
    with store.session(readonly=True) as s:

        def shape(ticket_id: int):
            t = s.get(TicketRow, ticket_id)
            events = s.execute(
                select(TicketEvent.field, TicketEvent.old, TicketEvent.new, TicketEvent.actor)
                .where(TicketEvent.ticket_id == ticket_id)
                .order_by(TicketEvent.id)
            ).all()
            clocks = s.execute(
                select(SlaClockRow.kind, SlaClockRow.due_at, SlaClockRow.next_level_at)
                .where(SlaClockRow.ticket_id == ticket_id)
                .order_by(SlaClockRow.kind)
            ).all()
            row = (t.category, t.priority, t.team, t.queue, t.status, t.tags)
            return row, [e for e in events if e.field != "created"], clocks

        for r in grouped:
            assert isinstance(r, IntakeResult)
            assert shape(r.ticket.id) == shape(alone.ticket.id)


class _HoldFirstGroup:
    """The rules, whose first evaluation (inside the leader's group) waits until another
    intake has been handed in: that intake arrives while the group runs, as a second request
    thread's does."""

    def __init__(self, store) -> None:
        self.store, self.held = store, False

    def __getattr__(self, name):
        return getattr(RULES, name)

    def evaluate(self, *args, **kwargs):
        if not self.held:
            self.held = True
            waited = threading.Event()
            while not self.store.committer._pending and not waited.wait(0.005):
                pass  # bounded by the test's timeout; the outcome is asserted, not the time
        return RULES.evaluate(*args, **kwargs)


class _HoldFirstEventsInsert:
    """An engine hook: the leader's INSERT of its group's events (written when the group's
    jobs have run, just before the flush) waits until another intake has been handed in,
    which thus arrives after the group's jobs ran, while its rows are being written."""

    def __init__(self, store) -> None:
        self.store, self.held = store, False

    def __call__(self, _conn, _cursor, statement, *_args) -> None:
        if not self.held and statement.lower().startswith("insert into ticket_events"):
            self.held = True
            waited = threading.Event()
            while not self.store.committer._pending and not waited.wait(0.005):
                pass  # bounded by the test's timeout; the outcome is asserted, not the time


def _two_threads(store, second: dict, ruleset, hold=None) -> list:
    results: list = [None, None]

    def run(i: int, body: dict) -> None:
        try:
            results[i] = intake_grouped(
                store, body, idempotency_key=f"late{i}", **{**COMMON, "ruleset": ruleset}
            )
        except Exception as exc:  # noqa: BLE001 - the test looks at it
            results[i] = exc

    first = threading.Thread(target=run, args=(0, payload(0)))
    first.start()
    while not (hold or ruleset).held:  # the leader's group is running its job (or its flush)
        threading.Event().wait(0.005)
    run(1, second)
    first.join()
    return results


@pytest.mark.timeout(120)
def test_an_intake_handed_in_while_a_group_runs_joins_its_transaction(store):
    groups, late = store.committer.groups, store.committer.late
    with statements(store) as seen:
        first, second = _two_threads(store, payload(1), _HoldFirstGroup(store))
    assert isinstance(first, IntakeResult) and isinstance(second, IntakeResult)
    assert first.created and second.created and first.ticket.id != second.ticket.id
    # one transaction: one commit, one INSERT per table for both tickets' rows
    assert (store.committer.groups - groups, store.committer.late - late) == (1, 1)
    for table in ("sla_clocks", "ticket_events", "outbox", "predictions"):
        assert len([q for q in seen if q.startswith(f"insert into {table} ")]) == 1, table
    for r in (first, second):
        assert written_per_ticket(store, r.ticket.id) == written_per_ticket(store, first.ticket.id)
        assert written_per_ticket(store, r.ticket.id)["clocks"] == 2


@pytest.mark.timeout(120)
def test_a_bad_intake_that_joined_late_fails_alone(store):
    bad = {**payload(1), "watchers": ["ok@example.com", ""]}
    first, second = _two_threads(store, bad, _HoldFirstGroup(store))
    assert isinstance(first, IntakeResult) and first.created
    assert isinstance(second, InputError) and "watcher" in str(second)
    assert counts(store)["tickets"] == 1 and written_per_ticket(store, first.ticket.id)["clocks"] == 2
    with store.session(readonly=True) as s:
        assert s.get(IdempotencyKey, "late1") is None


@pytest.mark.timeout(120)
def test_an_intake_handed_in_while_a_group_writes_its_rows_shares_its_commit(store):
    groups, late = store.committer.groups, store.committer.late
    hold = _HoldFirstEventsInsert(store)
    event.listen(store.engine, "before_cursor_execute", hold)
    try:
        first, second = _two_threads(store, payload(1), RULES, hold)
    finally:
        event.remove(store.engine, "before_cursor_execute", hold)
    assert isinstance(first, IntakeResult) and isinstance(second, IntakeResult)
    assert first.created and second.created and first.ticket.id != second.ticket.id
    assert (store.committer.groups - groups, store.committer.late - late) == (1, 1)  # one commit
    for r in (first, second):
        assert written_per_ticket(store, r.ticket.id) == written_per_ticket(store, first.ticket.id)
        assert written_per_ticket(store, r.ticket.id)["clocks"] == 2


@pytest.mark.timeout(120)
def test_a_bad_jobs_rerun_alone_takes_in_no_late_joiner(store):
    """A group failed: each job is rerun alone to find the bad one. A job handed in meanwhile
    waits for a group of its own; it does not join the bad job's rerun (to be failed with it
    and rerun once more)."""
    from triage.store.group import GroupCommitter

    committer = GroupCommitter(store._sessions)
    bad_runs, rerunning = [], threading.Event()

    def good(_session):
        return "ok"

    def bad(session):  # fails at the flush, as a constraint does
        from triage.store.tables import Team

        bad_runs.append(True)
        session.add(Team(name=None))
        if len(bad_runs) == 2:  # its rerun alone: another job is handed in now
            rerunning.set()
            waited = threading.Event()
            while not committer._pending and not waited.wait(0.005):
                pass  # bounded by the test's timeout; the outcome is asserted, not the time

    jobs: list = []
    first = threading.Thread(target=lambda: jobs.extend(committer.run_all([good, bad])))
    first.start()
    assert rerunning.wait(60)
    (late,) = committer.run_all([good])
    first.join()
    assert [job.result for job in jobs] == ["ok", None] and isinstance(jobs[1].error, IntegrityError)
    assert late.error is None and late.result == "ok"
    assert len(bad_runs) == 2  # the group's run and its rerun alone, no third
    assert committer.groups == 4  # the group, each of its jobs alone, the late one alone


def test_a_groups_tickets_are_assigned_at_intake(store):
    """Assignment locks the ticket's row in the database (``SELECT ... FOR UPDATE``) before the
    batch writes its rows: on PostgreSQL a group's new tickets, whose rows go in with the
    batch's others, are written first."""
    from triage.store import routing

    with store.session() as s:
        routing.upsert_agent(s, "nina", teams=["Net"], capacity=10)
    results = intake_many(store, [payload(i) for i in range(3)], **{**COMMON, "auto_assign": True})
    assert all(isinstance(r, IntakeResult) and r.created for r in results)
    with store.session(readonly=True) as s:
        stored = s.execute(
            select(TicketRow.assignee, TicketRow.queue, TicketRow.category).where(
                TicketRow.id.in_([r.ticket.id for r in results])
            )
        ).all()
    assert sorted(stored) == [("nina", "Net", "Network")] * 3
    assert counts(store)["tickets"] == 3


def test_a_flush_before_the_batch_ends_writes_the_new_tickets_first(store):
    """A new ticket of a group whose row is not written yet (PostgreSQL: its id drawn, its row
    inserted with the batch's others) is written, as it is then, before an ORM flush (which
    would otherwise update a row that is not there), and only once."""
    from triage.store import event_log, tickets

    with store.session() as s:
        with event_log.batched(s):
            ((ticket, created),) = tickets.create_many(s, [(payload(0), "ann", None, NOW)], defer=True)
            tickets.set_fields(s, ticket, {"category": "Network"}, actor="ann", now=NOW, retime=False)
            s.flush()
            seen = s.execute(select(TicketRow.category).where(TicketRow.id == ticket.id)).scalar()
            tickets.set_fields(s, ticket, {"priority": 2}, actor="ann", now=NOW, retime=False)
    assert created and seen == "Network"
    with store.session(readonly=True) as s:
        assert s.execute(select(TicketRow.category, TicketRow.priority)).all() == [("Network", 2)]

"""Group commit: the write transactions of concurrent callers in one process, committed together.

A ticket's intake writes about ten rows; the transaction around them (``BEGIN``,
the ORM flush, ``COMMIT``, the write gate on SQLite, a session and a pooled
connection) cost about as much CPU as the rows themselves (bench/profile_intake.txt).
When several threads of one process write at once, the first to get here becomes
the *leader*: it takes up to ``max_group`` waiting jobs (its own and the others'),
runs them in one session and commits once. The others wait for their turn; by
then their job is done (or they lead the next group). Jobs handed in while a group's
jobs run or flush join it before its commit (with two request threads per worker that
is the only way two intakes share a commit). With one caller at a time a group is one job:
nothing is delayed to wait for company.

What callers can rely on, as with one transaction each:

- a job's result is returned only after the commit that holds its writes, so nothing
  acknowledged is ever lost; a crash before that commit loses only jobs nobody was
  told about (``tests/test_store_crash.py``);
- a job that fails (bad input, a constraint) fails alone: the group is rolled back and
  every job of it is run again in a transaction of its own, so the others are stored
  and only the bad one raises (failures are rare: the common case pays no SAVEPOINT);
- when the commit itself fails, every job of the group raises that error: nobody is
  acknowledged, nothing of the group is stored, each caller may retry (idempotency
  keys make a retry safe).

A job is a function of a :class:`~sqlalchemy.orm.Session` that writes and does not
commit; it must not keep state outside the session that a rerun would duplicate.
A job may also have a ``create_group(session, jobs)``: called once per group, before
any job runs, with every job of the group sharing it (intake stores the group's
tickets there with one statement per table); it keeps per-job errors on the jobs
and raises only for what fails them all.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any, Callable, Iterable

from sqlalchemy.orm import Session

from triage.store import event_log

MAX_GROUP = 32  # jobs per transaction: enough to amortise the commit, short enough to keep p99 low


class Job:
    """One caller's writes and, once its group ended, their outcome."""

    __slots__ = ("work", "result", "error", "done")

    def __init__(self, work: Callable[[Session], Any]) -> None:
        self.work = work
        self.result: Any = None
        self.error: BaseException | None = None
        self.done = False

    def outcome(self) -> Any:
        """The job's result, or its error raised."""
        if self.error is not None:
            raise self.error
        return self.result


class GroupCommitter:
    """Runs jobs from many threads in shared transactions (see the module's docstring)."""

    def __init__(self, sessions: Callable[[], Session], max_group: int = MAX_GROUP) -> None:
        self._sessions = sessions
        self.max_group = max_group
        self._pending: deque[Job] = deque()
        self._changed = threading.Condition()  # guards _pending and _leading; held for microseconds
        self._leading = False  # one group at a time in this process
        self._callers = 0  # threads inside run_all (alone, a leader never waits for company)
        self.groups = 0  # how many transactions ran (tests and benches read it)
        self.late = 0  # jobs that joined a group already running (_join_late)

    def submit(self, work: Callable[[Session], Any]) -> Any:
        """Run ``work`` in a group transaction; its result once committed, or its error."""
        return self.run_all([work])[0].outcome()

    def run_all(self, works: Iterable[Callable[[Session], Any]]) -> list[Job]:
        """Run every work (in order) in groups of up to ``max_group``; the jobs with outcomes.

        A caller waits until its jobs are done (a leader ran them) or nobody leads (then it
        leads: runs groups from the front of the queue until its own jobs are done).
        """
        jobs = [Job(work) for work in works]
        with self._changed:
            self._callers += 1
        try:
            return self._run_all(jobs)
        finally:
            with self._changed:
                self._callers -= 1

    def _run_all(self, jobs: list[Job]) -> list[Job]:
        with self._changed:
            self._pending.extend(jobs)
            while not all(job.done for job in jobs):
                if not self._leading:
                    self._leading = True
                    break
                self._changed.wait()
            else:
                return jobs
        try:
            while not all(job.done for job in jobs):
                if self._callers > 1:  # let threads just answered hand in their next job: a larger group
                    time.sleep(0)
                with self._changed:
                    group = [self._pending.popleft() for _ in range(min(self.max_group, len(self._pending)))]
                if not group:  # cannot happen: a job not done is still pending
                    raise RuntimeError("group commit lost a job")
                self._run(group)
                with self._changed:
                    self._changed.notify_all()  # their jobs are done: they may answer now
        finally:
            with self._changed:
                self._leading = False
                self._changed.notify_all()  # someone else leads the jobs still pending
        return jobs

    def _run(self, group: list[Job], *, alone: bool = False) -> None:
        """One transaction for the group; on a job's failure, each job alone (``alone``: no
        late joiners, so that a bad job's rerun cannot take in, and fail, newcomers again)."""
        try:
            failed = self._commit(group, join=not alone)
            if failed is not None:
                if len(group) == 1:
                    group[0].error, group[0].done = failed, True
                    return
                for job in group:  # which one was bad: each in its own transaction
                    self._run([job], alone=True)
        except BaseException as exc:  # never leave a caller waiting on a job nobody will run
            for job in group:
                if not job.done:
                    job.error, job.done = exc, True
            raise

    def _commit(self, group: list[Job], *, join: bool = True) -> BaseException | None:
        """Run and commit; returns a job's error (the group rolled back), else None."""
        session = self._sessions()
        self.groups += 1
        try:
            try:
                results: list[Any] = []
                batch = list(group)
                while batch:  # after the first, the jobs handed in during a flush: same commit
                    with event_log.batched(session):  # each table's rows of the batch: one INSERT
                        _before(session, batch)
                        results += [job.work(session) for job in batch]
                        results += self._join_late(session, group) if join else []
                    session.flush()  # a failing write shows here, attributed to the jobs
                    batch = self._take_late(group) if join else []
            except Exception as exc:  # noqa: BLE001 - the jobs are rerun alone to find the bad one
                session.rollback()
                return exc
            try:
                session.commit()
            except Exception as exc:  # noqa: BLE001 - nobody acknowledged: each caller sees it
                session.rollback()
                for job in group:
                    job.error, job.done = exc, True
                return None
            for job, result in zip(group, results):
                job.result, job.done = result, True
            return None
        finally:
            session.close()

    def _join_late(self, session: Session, group: list[Job]) -> list[Any]:
        """Run the jobs handed in while the group's ran, in its transaction; their results.

        With two request threads a worker never has two jobs waiting when a group starts: the
        second intake arrives while the first one's group runs, and without this it waited for
        that commit, then paid a transaction of its own (every HTTP intake was a group of one
        at 4 clients, bench/README.md round 6). Taken before the flush, a late job shares the
        flush's INSERTs and the commit (one handed in during the flush gets INSERTs of its own
        and shares the commit: ``_commit``); it is appended to ``group``, so a failure reruns it
        alone like the others. Nobody waits for company: only jobs already pending join.
        """
        results: list[Any] = []
        while late := self._take_late(group):
            _before(session, late)
            results += [job.work(session) for job in late]
        return results

    def _take_late(self, group: list[Job]) -> list[Job]:
        """The jobs pending now (up to ``max_group`` in all), appended to ``group``."""
        with self._changed:
            late = [
                self._pending.popleft() for _ in range(min(self.max_group - len(group), len(self._pending)))
            ]
        group.extend(late)
        self.late += len(late)
        return late


def _before(session: Session, group: list[Job]) -> None:
    """Each distinct ``create_group`` of the group's works, once, with its works in order."""
    shared: dict[Any, list[Any]] = {}
    for job in group:
        hook = getattr(job.work, "create_group", None)
        if hook is not None:
            shared.setdefault(hook, []).append(job.work)
    for hook, works in shared.items():
        hook(session, works)

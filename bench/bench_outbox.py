"""Outbox mail: mails/s and CPU ms per mail, to the mail folder and to a real SMTP relay,
beside same-run references, for this tree and (``--before``) another checkout of the code.

Each tree is measured in a process of its own (the same script, ``--child``), with the same
store URL, the same relay and the same mails: ``received`` notices queued by intake (the
store path of ``intake_many``, no model), as ``POST /v1/tickets`` queues them.

References (same process, same run, the same for every tree):

* ``email.message alone``: one notice-shaped ``EmailMessage`` (the headers the outbox
  sets, a text and an HTML part) composed and flattened: the CPU a mail cost before any
  database or transport work;
* ``smtplib loop``: a prepared message sent N times over one connection to the relay:
  the relay's and smtplib's own floor.

Rows per tree:

* ``folder``: N notices delivered by ``outbound.deliver`` passes to ``FolderTransport``;
* ``smtp``: the same to an aiosmtpd relay on loopback (``SmtpTransport``, security none);
* ``mail intake``: N inbound messages (parsed beforehand) to tickets by ``inbox.receive_many``,
  32 a poll, as the mail poller hands them (tickets/s, CPU ms per message);
* ``during intake``: intake at ``--rate`` tickets/s for ``--seconds`` in one thread while
  the tree's own service loop (``service.mailer``: ``deliver_once`` every interval before,
  ``deliver_due`` after) drains the outbox to the relay in another, as one gunicorn worker
  does; then the backlog left, the delay from queued to sent (p50/p99), and the CPU ms per
  mail of the outbox thread alone.

``--http`` instead serves each tree (``triage serve``, 2 gunicorn workers, no model: the store
path; SQLite, or ``--database`` PostgreSQL whose ``public`` schema is dropped first: give it a
throw-away database) mailing to an aiosmtpd relay in a process of its own, posts ``--rate``
tickets/s for ``--seconds`` over HTTP (4 paced clients, distinct idempotency keys, a requester
each), once with the outbox loop off (``TRIAGE_MAIL_INTERVAL=0``, the same-run reference) and
once on: the mails the relay got by the end of intake and ``interval + 1`` s later, the notice
lag (the intake's 201 arrived at the client -> the relay accepted that requester's notice, both
clocks in this process) p50/p99, the workers' CPU per ticket (/proc), and the outbox's CPU per
mail as the difference of the two runs (scaled to the same number of tickets): what the
deployed shape pays for its mail. ``--rate 1 --seconds 30``: the idle desk.

CPU ms is the delivering thread's own CPU (``time.thread_time``): SQLite's work is in it;
the relay's thread, the intake thread and a PostgreSQL server are not.

    nice .venv/bin/python bench/bench_outbox.py --before /tmp/main-before
    git worktree add /tmp/main-before <commit>   # the "before": any checkout of the code
    BENCH_PORTS=20100-20199 nice .venv/bin/python bench/bench_outbox.py --mails 1000 --before ...
    ... --database postgresql+psycopg://postgres@127.0.0.1:5432/test_x   # a throw-away schema
    BENCH_PORTS=20100-20199 nice .venv/bin/python bench/bench_outbox.py --http --before /tmp/main-before
    ... --http --rate 1 --seconds 30 --before /tmp/main-before                # the idle desk
    ... --http --database postgresql+psycopg://postgres@127.0.0.1:5432/bench_x  # a throw-away db
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve()


async def offer_pipelining(self, server, session, envelope, hostname, responses):
    """aiosmtpd's EHLO hook: the relays here say PIPELINING, as Postfix and Exim do (aiosmtpd
    reads pipelined commands in order but does not say so itself)."""
    session.host_name = hostname
    responses.insert(-1, "250-PIPELINING")
    return responses


class Counting:
    """An aiosmtpd handler that accepts every mail and counts them (the relay in the benches),
    noting when it accepted the first mail to each recipient (``time.time()``)."""

    handle_EHLO = offer_pipelining

    def __init__(self):
        self.count = 0
        self.accepted: dict[str, float] = {}

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        at = time.time()
        for rcpt in envelope.rcpt_tos:
            self.accepted.setdefault(rcpt.lower(), at)
        return "250 OK"


class RelayProcess:
    """The served rows' relay: aiosmtpd in a process of its own (as a real relay is), so its
    answers do not wait on the bench's client threads for the GIL. It appends ``rcpt<TAB>
    time.time()`` per accepted recipient to a file that :attr:`accepted` reads."""

    def __init__(self, port: int, folder: str):
        self.port, self.log = port, Path(folder) / "relay.log"
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE), "--relay", str(port), "--tree", str(self.log)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "ready"

    @property
    def accepted(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for line in self.log.read_text().splitlines() if self.log.exists() else []:
            rcpt, at = line.split("\t")
            out.setdefault(rcpt, float(at))
        return out

    @property
    def count(self) -> int:
        return len(self.accepted)

    def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(30)


def _relay_main(port: int, log: str) -> None:
    """``--relay PORT --tree LOG``: accept every mail until stdin closes."""
    from aiosmtpd.controller import Controller

    out = open(log, "a", buffering=1)

    class Logging:
        handle_EHLO = offer_pipelining

        async def handle_DATA(self, server, session, envelope):
            at = time.time()
            out.write("".join(f"{r.lower()}\t{at}\n" for r in envelope.rcpt_tos))
            return "250 OK"

    controller = Controller(Logging(), hostname="127.0.0.1", port=port)
    controller.start()
    print("ready", flush=True)
    sys.stdin.read()
    controller.stop()
    out.close()


def _child(args) -> dict:
    """Every figure for the tree first on sys.path (the caller put it there)."""
    from aiosmtpd.controller import Controller

    from bench.serving import free_port

    relay = Counting()
    controller = Controller(relay, hostname="127.0.0.1", port=free_port())
    controller.start()
    out: dict = {}
    try:
        out["email_alone"] = _email_alone(200)
        out["smtplib"] = _smtplib_loop(controller.port, args.mails)
        with tempfile.TemporaryDirectory() as tmp:
            out["folder"] = _delivered(args, tmp, "folder", controller.port)
            out["smtp"] = _delivered(args, tmp, "smtp", controller.port)
            out["mail_intake"] = _mail_intake(args, tmp)
            if args.seconds > 0:
                out["during"] = _during_intake(args, tmp, controller.port)
    finally:
        controller.stop()
    out["relay_accepted"] = relay.count
    import triage

    out["code"] = str(Path(triage.__file__).parent)
    return out


def _email_alone(n: int) -> dict:
    import email.utils
    from email.message import EmailMessage

    text = "Hello,\n\nwe received your request and gave it the number 42 (TCK-42).\n" + "smoke " * 60
    html = "<p>" + text.replace("\n", "<br>") + "</p>"
    start = time.thread_time()
    for i in range(n):
        msg = EmailMessage()
        msg["From"] = email.utils.formataddr(("Help desk", "desk@desk.example"))
        msg["To"] = f"c{i}@example.com"
        msg["Subject"] = "[#TCK-42] We received your request: Printer on fire"
        msg["Date"] = email.utils.formatdate()
        msg["Message-ID"] = f"<{i}.triage@desk.example>"
        msg["In-Reply-To"] = "<orig@customer.example>"
        msg["References"] = "<orig@customer.example>"
        msg["Auto-Submitted"] = "auto-replied"
        msg["X-Auto-Response-Suppress"] = "All"
        msg["X-Triage-Ticket"] = "TCK-42"
        msg.set_content(text)
        msg.add_alternative(html, subtype="html")
        bytes(msg)
    return {"cpu_ms": (time.thread_time() - start) / n * 1000}


def _smtplib_loop(port: int, n: int) -> dict:
    import smtplib
    from email.message import EmailMessage

    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "desk@desk.example", "c@example.com", "floor"
    msg.set_content("x" * 400)
    data = msg.as_bytes().replace(b"\n", b"\r\n")
    wall, cpu = time.perf_counter(), time.thread_time()
    with smtplib.SMTP("127.0.0.1", port) as client:
        for _ in range(n):
            client.sendmail("desk@desk.example", ["c@example.com"], data)
    return {"rate": n / (time.perf_counter() - wall), "cpu_ms": (time.thread_time() - cpu) / n * 1000}


def _store(args, tmp: str, name: str):
    from triage.store import Store

    if args.database and args.database.startswith("postgresql"):
        from sqlalchemy import create_engine, text

        schema = f"bench_outbox_{uuid.uuid4().hex[:10]}"
        engine = create_engine(args.database)
        with engine.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        engine.dispose()
        store = Store(args.database, schema=schema)
    else:
        store = Store(f"sqlite:///{Path(tmp) / (name + '.db')}")
    store.upgrade()
    return store


def _drop(store) -> None:
    schema = getattr(store, "schema", None)
    store.dispose()
    if schema:
        from sqlalchemy import create_engine, text

        engine = create_engine(store.url)
        with engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine.dispose()


def _queue(store, n: int, start: int = 0) -> None:
    """n tickets by intake (store path), each queueing its ``received`` notice."""
    from triage.store.intake import intake_many

    for first in range(start, start + n, 32):
        payloads = [
            {
                "subject": f"Printer {i} on fire",
                "body": "The printer on floor 3 smokes. " * 8,
                "requester": f"c{i}@example.com",
            }
            for i in range(first, min(first + 32, start + n))
        ]
        intake_many(store, payloads, actor="bench")


def _mailer(kind: str, tmp: str, port: int):
    from triage.mail.outbound import FolderTransport, Mailer, MailSettings, SmtpTransport

    settings = MailSettings(from_address="desk@desk.example", public_url="http://desk.example")
    if kind == "folder":
        return Mailer(settings, FolderTransport(Path(tmp) / f"out-{uuid.uuid4().hex[:6]}"))
    return Mailer(settings, SmtpTransport("127.0.0.1", port, "none"))


def _delivered(args, tmp: str, kind: str, port: int) -> dict:
    from triage.store import outbound

    store = _store(args, tmp, kind)
    _queue(store, args.mails)
    mailer = _mailer(kind, tmp, port)
    sent, wall, cpu = 0, time.perf_counter(), time.thread_time()
    while sent < args.mails:
        got = outbound.deliver(store, mailer.send, domain="desk.example", limit=100)
        if not got["sent"]:
            break
        sent += got["sent"]
    mailer.close()
    result = {
        "rate": sent / (time.perf_counter() - wall),
        "cpu_ms": (time.thread_time() - cpu) / max(1, sent) * 1000,
    }
    _drop(store)
    if sent != args.mails:
        raise SystemExit(f"{kind}: only {sent} of {args.mails} mails were delivered")
    return {**result, "sent": sent}


def _mail_intake(args, tmp: str) -> dict:
    """Inbound mail to tickets: ``inbox.receive_many`` of parsed messages, 32 a poll (no model)."""
    from triage.mail import parse_message
    from triage.store import inbox

    store = _store(args, tmp, "inbound")
    raws = [
        (
            f"From: c{i}@example.com\nTo: desk@desk.example\nSubject: Printer {i} on fire\n"
            f"Message-ID: <in{i}@customer.example>\n\n" + "The printer on floor 3 smokes.\n" * 8
        ).encode()
        for i in range(args.mails)
    ]
    messages = [{**parse_message(raw), "raw": raw} for raw in raws]  # parsing is not timed
    wall, cpu, created = time.perf_counter(), time.thread_time(), 0
    for first in range(0, len(messages), 32):
        created += sum(
            r.outcome == "created" for r in inbox.receive_many(store, messages[first : first + 32])
        )
    result = {
        "rate": created / (time.perf_counter() - wall),
        "cpu_ms": (time.thread_time() - cpu) / created * 1000,
    }
    _drop(store)
    if created != args.mails:
        raise SystemExit(f"mail intake: {created} of {args.mails} tickets")
    return result


def _during_intake(args, tmp: str, port: int) -> dict:
    """Intake at ``args.rate``/s for ``args.seconds`` beside the tree's own outbox loop."""
    import service.mailer as loop_code
    from sqlalchemy import select

    from triage.store.tables import OutboxMessage

    store = _store(args, tmp, "during")
    mailer = _mailer("smtp", tmp, port)
    stop = threading.Event()
    loop_cpu = [0.0]

    def outbox() -> None:  # the body of service.mailer's loop in this tree
        drain = getattr(loop_code, "deliver_due", None)
        while not stop.wait(args.interval):
            if drain is not None:
                drain(store, mailer, stop=stop)
            else:
                loop_code.deliver_once(store, mailer)
        loop_cpu[0] = time.thread_time()

    worker = threading.Thread(target=outbox, name="outbox")
    worker.start()
    tick, queued, start = 0.1, 0, time.perf_counter()
    while time.perf_counter() - start < args.seconds:  # paced: rate/10 tickets every 100 ms
        due = int(args.rate * (time.perf_counter() - start + tick))
        if due > queued:
            _queue(store, due - queued, queued)
            queued = due
        time.sleep(max(0.0, start + (queued / args.rate) - time.perf_counter()))
    intake_wall = time.perf_counter() - start
    time.sleep(args.interval + 0.5)  # the loop's pass after intake ended
    stop.set()
    worker.join()
    with store.session() as s:
        rows = s.execute(select(OutboxMessage.created_at, OutboxMessage.delivered_at)).all()
    _drop(store)
    sent = [(d - c).total_seconds() for c, d in rows if d is not None]
    cuts = statistics.quantiles(sent, n=100) if len(sent) > 1 else [0.0] * 99
    return {
        "queued": len(rows),
        "intake_rate": queued / intake_wall,
        "sent": len(sent),
        "left": len(rows) - len(sent),
        "lag_p50": cuts[49],
        "lag_p99": cuts[98],
        "rate": len(sent) / (intake_wall + args.interval + 0.5),
        "cpu_ms": loop_cpu[0] / max(1, len(sent)) * 1000,
    }


def _served(tree: Path, args, interval: float) -> dict:
    """``triage serve`` (gunicorn, 2 workers, no model: the store path) of ``tree`` mailing to a
    relay in this process; intake over HTTP at ``args.rate``/s for ``args.seconds``; then what
    the relay got, the lag, and the workers' CPU (``interval`` 0: the outbox loop off)."""
    from sqlalchemy import create_engine, text

    from bench.serving import free_port, kill_after, stop_server

    tmp = tempfile.mkdtemp(prefix="bench-outbox-")
    relay = RelayProcess(free_port(), tmp)
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(tree),
        "TRIAGE_LOAD": "off",
        "TRIAGE_API_KEYS": "bench-k:intake",
        "TRIAGE_RATELIMIT_ENABLED": "false",
        "TRIAGE_LOG_LEVEL": "WARNING",
        "TRIAGE_DATABASE_URL": _fresh_database(args.database)
        if args.database
        else f"sqlite:///{tmp}/served.db",
        "TRIAGE_VAR_DIR": tmp,
        "TRIAGE_SMTP_HOST": "127.0.0.1",
        "TRIAGE_SMTP_PORT": str(relay.port),
        "TRIAGE_SMTP_SECURITY": "none",
        "TRIAGE_MAIL_FROM": "desk@desk.example",
        "TRIAGE_MAIL_INTERVAL": str(interval),
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    cmd = [sys.executable, "-m", "triage_cli", "serve", "--port", str(port), "--workers", "2", "--no-prepare"]
    proc = subprocess.Popen(
        cmd,
        cwd=tree,
        env=env,
        stdout=open(Path(tmp) / "server.log", "wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    killer = kill_after(proc, 600)
    try:
        _wait_live(port, proc)  # /readyz waits for a model: none here
        workers = _workers(proc.pid)
        cpu0 = _cpu(workers)
        answered: dict[str, float] = {}
        posted, failed = _post_paced(port, args.rate, args.seconds, answered=answered)
        sent_at_end = relay.count
        time.sleep(max(interval, 0) + 1.0)
        cpu = _cpu(workers) - cpu0
        sent_after = relay.count
    finally:
        stop_server(proc, killer)
        relay.stop()
    engine = create_engine(env["TRIAGE_DATABASE_URL"])
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT created_at, delivered_at FROM outbox WHERE kind = 'mail'")).all()
    engine.dispose()
    # intake answered (after its commit) -> the relay accepted the notice: what the customer sees
    accepted = relay.accepted
    lags = sorted(accepted[r] - at for r, at in answered.items() if r in accepted)
    cut = lambda q: lags[min(len(lags) - 1, int(q * len(lags)))] if lags else float("nan")  # noqa: E731
    return {
        "posted": posted,
        "failed": failed,
        "queued": len(rows),
        "sent_at_end": sent_at_end,
        "sent": sent_after,
        "cpu_s": cpu,
        "lag_p50": cut(0.5),
        "lag_p99": cut(0.99),
        "cpu_ms_per_ticket": cpu / max(1, posted) * 1000,
    }


def _wait_live(port: int, proc: subprocess.Popen, seconds: float = 120) -> None:
    import http.client

    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit("the server exited before it was live (see its log)")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/livez")
            if conn.getresponse().status == 200:
                time.sleep(1.0)  # both workers up
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"not live within {seconds:.0f}s")


def _workers(master: int) -> list[int]:
    path = Path(f"/proc/{master}/task/{master}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def _cpu(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return total / os.sysconf("SC_CLK_TCK")


def _fresh_database(url: str) -> str:
    """``url`` (PostgreSQL) with its ``public`` schema emptied: a throw-away database."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    return url


def _post_paced(
    port: int, rate: float, seconds: float, clients: int = 4, answered: dict[str, float] | None = None
) -> tuple[int, int]:
    """POST /v1/tickets from ``clients`` threads, paced to ``rate`` in all; (answered, failed).
    ``answered``: requester -> when its 201 arrived (``time.time()``)."""
    import http.client

    counts = [0, 0]
    lock = threading.Lock()
    start = time.perf_counter()

    def client(k: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        i = 0
        while True:
            due = start + (i * clients + k) / rate
            if due - start >= seconds:
                break
            time.sleep(max(0.0, due - time.perf_counter()))
            requester = f"c{k}-{i}@example.com"
            body = json.dumps(
                {
                    "subject": f"Printer {k}-{i} on fire",
                    "body": "The printer smokes. " * 8,
                    "requester": requester,
                }
            )
            headers = {
                "Authorization": "Bearer bench-k",
                "Content-Type": "application/json",
                "Idempotency-Key": f"bench-{k}-{i}-{uuid.uuid4().hex[:8]}",
            }
            try:
                conn.request("POST", "/v1/tickets", body=body, headers=headers)
                ok = conn.getresponse()
                ok.read()
                good = ok.status in (200, 201)
                if good and answered is not None:
                    answered[requester] = time.time()
            except OSError:
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                good = False
            with lock:
                counts[0 if good else 1] += 1
            i += 1
        conn.close()

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return counts[0], counts[1]


def _http_table(trees: dict[str, Path], args) -> None:
    """Each tree served with the outbox loop off, then on: the workers' CPU difference is the outbox's."""
    print(
        f"served (triage serve, 2 workers, no model, {'PostgreSQL' if args.database else 'SQLite'}): "
        f"intake {args.rate:.0f}/s for {args.seconds:.0f} s "
        f"over HTTP (4 clients), relay aiosmtpd in a process of its own, loop every {args.interval:.0f} s; "
        f"load {os.getloadavg()}"
    )
    print(
        f"{'tree':10}{'loop':>6}{'posted':>8}{'queued':>8}{'sent by end':>12}{'sent +' + str(int(args.interval + 1)) + ' s':>10}"
        f"{'lag p50 s':>11}{'lag p99 s':>11}{'worker CPU ms/ticket':>22}{'outbox CPU ms/mail':>20}"
    )
    print(
        "  (lag: the intake's 201 arrived -> the relay accepted its notice, the customer's wait; "
        "loop off: the workers' CPU without the outbox, the reference)"
    )
    for name, tree in trees.items():
        off = _served(tree, args, 0.0)
        on = _served(tree, args, args.interval)
        extra = (
            (on["cpu_s"] - off["cpu_s"] * on["posted"] / max(1, off["posted"])) / max(1, on["sent"]) * 1000
        )
        for label, r in (("off", off), ("on", on)):
            print(
                f"{name:10}{label:>6}{r['posted']:>8}{r['queued']:>8}{r['sent_at_end']:>12}{r['sent']:>10}"
                f"{r['lag_p50']:>11.3f}{r['lag_p99']:>11.3f}{r['cpu_ms_per_ticket']:>22.3f}"
                + (f"{extra:>20.3f}" if label == "on" else f"{'':>20}")
            )


def _run(tree: Path, args) -> dict:
    cmd = [sys.executable, str(HERE), "--child", "--tree", str(tree), "--mails", str(args.mails)]
    cmd += ["--seconds", str(args.seconds), "--rate", str(args.rate), "--interval", str(args.interval)]
    if args.database:
        cmd += ["--database", args.database]
    env = {**os.environ, "PYTHONPATH": f"{tree}{os.pathsep}{HERE.parents[1]}"}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise SystemExit(f"{tree}: {done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _table(results: dict[str, dict], args) -> None:
    names = list(results)
    print(
        f"mails: {args.mails} received notices; store: {args.database or 'SQLite file'}; load {os.getloadavg()}"
    )
    print(f"{'row':40}" + "".join(f"{n + ' mails/s':>20}{n + ' CPU ms':>18}" for n in names))
    first = results[names[0]]
    print(
        f"{'email.message alone (reference)':40}"
        + "".join(f"{'':>20}{r['email_alone']['cpu_ms']:>18.3f}" for r in results.values())
    )
    print(
        f"{'smtplib loop, one connection (ref.)':40}"
        + "".join(f"{r['smtplib']['rate']:>20.0f}{r['smtplib']['cpu_ms']:>18.3f}" for r in results.values())
    )
    for key, label in (("folder", "outbox -> mail folder"), ("smtp", "outbox -> aiosmtpd relay")):
        print(
            f"{label:40}"
            + "".join(f"{r[key]['rate']:>20.0f}{r[key]['cpu_ms']:>18.3f}" for r in results.values())
        )
    label = "mail intake, receive_many 32 a poll"
    print(
        f"{label:40}"
        + "".join(
            f"{r['mail_intake']['rate']:>20.0f}{r['mail_intake']['cpu_ms']:>18.3f}" for r in results.values()
        )
    )
    if "during" in first:
        label = f"outbox during intake {args.rate:.0f}/s, {args.seconds:.0f} s"
        print(
            f"{label:40}"
            + "".join(f"{r['during']['rate']:>20.0f}{r['during']['cpu_ms']:>18.3f}" for r in results.values())
        )
        for name, r in results.items():
            d = r["during"]
            print(
                f"  {name}: intake {d['intake_rate']:.0f}/s queued {d['queued']}, sent {d['sent']}, left unsent "
                f"{d['left']} {args.interval + 0.5:.1f} s after intake ended; queued->sent p50 {d['lag_p50']:.2f} s "
                f"p99 {d['lag_p99']:.2f} s (outbox loop every {args.interval:.0f} s, one worker)"
            )
    for name, r in results.items():
        ratio = r["smtp"]["cpu_ms"] / r["email_alone"]["cpu_ms"]
        print(
            f"{name} ({r['code']}): outbox->relay CPU per mail = {ratio:.2f} x one email.message composed alone"
        )


def _wake_cost(args) -> None:
    """``--wake-cost``: what the doorbell costs, this tree only (CPU of this thread): a commit
    that queued mail against one that did not (the hooks; PostgreSQL: the NOTIFY statement in
    the transaction), and one idle SQLite poll (``PRAGMA data_version``) and due check."""
    from sqlalchemy import text

    from triage.store import doorbell
    from triage.store.engine import Store
    from triage.store.tables import utcnow

    n = 500
    tmp = tempfile.mkdtemp(prefix="bench-wake-")
    url = _fresh_database(args.database) if args.database else f"sqlite:///{tmp}/wake.db"
    store = Store(url)
    store.upgrade()

    def commits(flag: bool) -> float:
        start = time.thread_time()
        for _ in range(n):
            with store.session() as session:
                session.execute(text("SELECT 1"))
                if flag:
                    doorbell.queued(session)
        return (time.thread_time() - start) / n * 1e6

    commits(True)  # warm
    plain, queued = commits(False), commits(True)
    print(f"store {store.dialect}; load {os.getloadavg()}")
    print(f"a transaction (one SELECT) committed: {plain:.1f} us CPU; having queued mail: {queued:.1f} us")
    if store.dialect == "sqlite":
        with store.engine.connect().execution_options(triage_readonly=True) as conn:
            start = time.thread_time()
            for _ in range(n * 4):
                conn.exec_driver_sql("PRAGMA data_version").scalar()
                conn.rollback()
            poll = (time.thread_time() - start) / (n * 4) * 1e6
            start = time.thread_time()
            for _ in range(n * 4):
                conn.execute(doorbell._OLDEST_DUE, {"now": utcnow()}).scalar()
                conn.rollback()
            check = (time.thread_time() - start) / (n * 4) * 1e6
        print(
            f"idle poll (PRAGMA data_version): {poll:.1f} us CPU, {poll * 5 / 1000:.3f} ms a second at 0.2 s"
        )
        print(f"due check after a change: {check:.1f} us CPU")
    store.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mails", type=int, default=1000)
    parser.add_argument("--database", default=None, help="default: a temporary SQLite file per row")
    parser.add_argument("--before", default=None, help="another checkout of the code, measured the same way")
    parser.add_argument("--seconds", type=float, default=20.0, help="the during-intake row (0: none)")
    parser.add_argument("--rate", type=float, default=150.0, help="intake tickets/s of that row")
    parser.add_argument("--interval", type=float, default=5.0, help="the loop's TRIAGE_MAIL_INTERVAL")
    parser.add_argument(
        "--http", action="store_true", help="instead: each tree served by gunicorn, outbox loop off then on"
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--relay", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument(
        "--wake-cost", action="store_true", help="instead: what the doorbell costs (this tree)"
    )
    parser.add_argument("--tree", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.relay:
        _relay_main(args.relay, args.tree)
        return
    if args.wake_cost:
        sys.path.insert(0, str(HERE.parents[1]))
        _wake_cost(args)
        return
    if args.child:
        sys.path.insert(0, str(HERE.parents[1]))  # bench.serving from this tree
        sys.path.insert(0, args.tree)  # the code measured first
        print(json.dumps(_child(args)))
        return
    if args.http:
        sys.path.insert(0, str(HERE.parents[1]))
        trees = {"before": Path(args.before).resolve()} if args.before else {}
        _http_table({**trees, "after" if args.before else "this tree": HERE.parents[1]}, args)
        return
    results = {}
    if args.before:
        results["before"] = _run(Path(args.before).resolve(), args)
    results["after" if args.before else "this tree"] = _run(HERE.parents[1], args)
    _table(results, args)


if __name__ == "__main__":
    main()

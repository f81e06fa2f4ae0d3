"""Duplicate and burst detection on hand-made tickets.

Fast tests use the weightless HashingEncoder, whose cosines are lower than
MiniLM's, hence the lower thresholds; one slow test runs the real model.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from triage.duplicates import Candidates, DuplicateConfig, cluster_label, detect_burst, find_duplicates
from triage.encoder import HashingEncoder
from triage.text import model_text

T0 = datetime(2026, 11, 24, 9, 0, tzinfo=timezone.utc)
ENC = HashingEncoder(dim=512)
HASHING = DuplicateConfig(threshold=0.5, same_requester_boost=0.1, window=timedelta(days=7))

OPEN = [  # (id, requester, created_at, subject, body)
    (
        "TCK-1",
        "ann@example.com",
        T0 - timedelta(hours=2),
        "Outlook keeps crashing when I open attachments",
        "Since this morning Outlook crashes every time I open a PDF attachment.",
    ),
    (
        "TCK-2",
        "bob@example.com",
        T0 - timedelta(hours=1),
        "Request for a second monitor",
        "I would like to order a second monitor for my desk.",
    ),
    (
        "TCK-3",
        "ann@example.com",
        T0 - timedelta(days=30),
        "Outlook crashes when opening attachments",
        "Outlook crashes every time I try to open a PDF attachment since this morning.",
    ),
    (
        "TCK-4",
        "cem@example.com",
        T0 - timedelta(hours=3),
        "Password reset",
        "Please reset my password for the HR portal.",
    ),
]


def vec(subject: str, body: str) -> np.ndarray:
    return ENC.encode([model_text(subject, body)])[0]


@pytest.fixture(scope="module")
def candidates() -> Candidates:
    return Candidates.from_rows([(tid, vec(s, b), req, when) for tid, req, when, s, b in OPEN])


def test_reworded_duplicate_from_same_requester_is_found(candidates):
    q = vec(
        "Outlook crashes when opening attachments",
        "Outlook crashes every time I try to open a PDF attachment since this morning.",
    )
    found = find_duplicates(q, "Ann@Example.com", T0, candidates, config=HASHING)
    assert [tid for tid, _, _ in found] == ["TCK-1"]  # TCK-3 is 30 days old: outside the window
    _, score, reasons = found[0]
    assert 0.5 <= score <= 1.0
    assert reasons[0].startswith("text similarity") and "same requester" in reasons
    assert reasons[-1] == "opened 2 h earlier"


def test_unrelated_ticket_is_not_offered(candidates):
    q = vec("Printer jammed", "The printer on floor 2 has a paper jam.")
    assert find_duplicates(q, "ann@example.com", T0, candidates, config=HASHING) == []


def test_old_ticket_found_only_without_window(candidates):
    q = vec(
        "Outlook crashes when opening attachments",
        "Outlook crashes every time I try to open a PDF attachment since this morning.",
    )
    anyage = DuplicateConfig(threshold=0.5, window=None)
    assert {t for t, _, _ in find_duplicates(q, "ann@example.com", T0, candidates, config=anyage)} == {
        "TCK-1",
        "TCK-3",
    }


def test_requester_boost_and_requirement(candidates):
    q = vec(
        "Outlook crashes when opening attachments",
        "Outlook crashes every time I try to open a PDF attachment since this morning.",
    )
    own = find_duplicates(q, "ann@example.com", T0, candidates, config=HASHING)
    other = find_duplicates(q, "dan@example.com", T0, candidates, config=HASHING)
    assert own[0][1] > other[0][1]
    required = DuplicateConfig(threshold=0.5, require_same_requester=True)
    assert find_duplicates(q, "dan@example.com", T0, candidates, config=required) == []
    assert find_duplicates(q, None, T0, candidates, config=required) == []


def test_exclude_self_and_plain_tuples():
    rows = [(tid, vec(s, b), req, when) for tid, req, when, s, b in OPEN]
    found = find_duplicates(rows[0][1], "ann@example.com", T0, rows, config=HASHING, exclude="TCK-1")
    assert "TCK-1" not in [t for t, _, _ in found]
    assert find_duplicates(rows[0][1], "x", T0, [], config=HASHING) == []


def test_query_is_fast_for_thousands_of_open_tickets():
    rng = np.random.default_rng(0)
    n = 5000
    vecs = rng.normal(size=(n, 384)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    cands = Candidates(
        ids=list(range(n)),
        vectors=vecs,
        requesters=np.array([f"u{i % 300}" for i in range(n)], dtype=object),
        times=np.full(n, T0.timestamp()),
    )
    start = time.perf_counter()
    for _ in range(20):
        found = find_duplicates(vecs[17], "u17", T0, cands, config=DuplicateConfig(threshold=0.9))
    assert (time.perf_counter() - start) / 20 < 0.05
    assert found[0][0] == 17


VPN = [
    ("VPN down", "The VPN is down, I cannot connect from home."),
    ("VPN not working", "VPN connection fails, cannot connect from home office."),
    ("Cannot connect to VPN", "VPN down since 9:00, connection fails."),
    ("VPN is down again", "VPN down for the whole team, cannot connect."),
    ("VPN connection failing", "Cannot connect to the VPN, it says connection failed."),
    ("VPN down?", "Is the VPN down? I cannot connect."),
]
OTHER = [
    ("Password reset", "Please reset my password for the HR portal."),
    ("New laptop request", "Need a new laptop for the new hire starting Monday."),
    ("Printer jammed", "The printer on floor 2 has a paper jam."),
    ("Excel macro error", "My Excel macro fails with a runtime error 1004."),
]


def recent(spacing: timedelta, offset: int = 0) -> list[tuple]:
    rows = []
    for i, (s, b) in enumerate(VPN):
        text = model_text(s, b)
        rows.append((f"VPN-{i}", ENC.encode([text])[0], T0 + i * spacing, text))
    for i, (s, b) in enumerate(OTHER):
        text = model_text(s, b)
        rows.append((f"OTH-{i}", ENC.encode([text])[0], T0 + timedelta(minutes=i + offset), text))
    return rows


def test_vpn_burst_in_ten_minutes_is_one_incident():
    clusters = detect_burst(
        recent(timedelta(minutes=2)), window=timedelta(minutes=15), min_size=5, similarity=0.3
    )
    assert len(clusters) == 1
    c = clusters[0]
    assert sorted(c.members) == [f"VPN-{i}" for i in range(6)] and c.size == 6
    assert c.seed in c.members
    assert c.started_at == T0 and c.ended_at == T0 + timedelta(minutes=10)
    assert "vpn" in c.label.split() and len(c.label.split()) <= 3
    assert np.isclose(np.linalg.norm(c.centroid), 1.0) and 0.3 < c.cohesion <= 1.0


def test_scattered_similar_tickets_are_not_a_burst():
    assert (
        detect_burst(recent(timedelta(hours=2)), window=timedelta(minutes=15), min_size=5, similarity=0.3)
        == []
    )


def test_burst_members_fit_in_one_window():
    rows = recent(timedelta(minutes=6))  # 6 tickets over 30 minutes
    clusters = detect_burst(rows, window=timedelta(minutes=20), min_size=4, similarity=0.3)
    assert len(clusters) == 1
    assert clusters[0].ended_at - clusters[0].started_at <= timedelta(minutes=20)
    assert detect_burst(rows[:3], window=timedelta(minutes=20), min_size=4) == []


def test_cluster_label_uses_shared_terms():
    assert cluster_label(["VPN down since 9", "the vpn is down", "vpn down for everyone"]) == "vpn down"
    assert cluster_label([]) == ""


@pytest.mark.slow
def test_minilm_finds_reworded_pairs_and_rejects_unrelated():
    from triage.encoder import load_encoder

    enc = load_encoder("minilm")
    pairs = [
        ("My laptop screen stays black after the update", "Notebook display is blank since the update"),
        ("I forgot my password and I am locked out", "Locked out of my account, need a password reset"),
        ("The printer on floor 2 has a paper jam", "Paper stuck in the second floor printer"),
    ]
    olds = [a for a, _ in pairs] + ["Please order a new office chair for me"]
    vecs = enc.encode(olds)
    cands = Candidates.from_rows([(i, v, "u@example.com", T0) for i, v in enumerate(vecs)])
    config = DuplicateConfig(threshold=0.55)
    for i, (_, reworded) in enumerate(pairs):
        found = find_duplicates(enc.encode([reworded])[0], "u@example.com", T0, cands, config=config)
        assert found and found[0][0] == i, (reworded, found)
        assert 3 not in [t for t, _, _ in found]


MAIL_OUTAGE = [
    ("Outlook not receiving email", "No new email arrives in Outlook since 9:00."),
    ("Email down", "Email is down, Outlook cannot send or receive."),
    ("Cannot send email", "Outlook says cannot send email, server not responding."),
    ("No email since 9", "Not receiving any email in Outlook since 9:00."),
    ("Outlook email server down?", "Is the email server down? Outlook cannot receive email."),
]


def test_two_simultaneous_bursts_are_two_incidents():
    rows = []
    for i, (s, b) in enumerate(VPN + MAIL_OUTAGE):
        text = model_text(s, b)
        tid = f"VPN-{i}" if i < len(VPN) else f"MAIL-{i - len(VPN)}"
        rows.append((tid, ENC.encode([text])[0], T0 + timedelta(minutes=i), text))
    clusters = detect_burst(rows, window=timedelta(minutes=15), min_size=4, similarity=0.33)
    assert [c.size for c in clusters] == [6, 5]
    vpn, mail = clusters
    assert all(m.startswith("VPN") for m in vpn.members) and "vpn" in vpn.label
    assert all(m.startswith("MAIL") for m in mail.members) and "email" in mail.label


def test_tickets_without_time_or_vector_never_break_a_burst():
    rows = recent(timedelta(minutes=1))
    rows.append(("NO-TIME", rows[0][1], None, "vpn down"))
    rows.append(("ZERO", np.zeros_like(rows[0][1]), T0, ""))
    (cluster,) = detect_burst(rows, window=timedelta(minutes=15), min_size=5, similarity=0.3)
    assert "NO-TIME" not in cluster.members and "ZERO" not in cluster.members


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    threshold=st.floats(-0.2, 0.9),
    same=st.booleans(),
    window_h=st.one_of(st.none(), st.integers(0, 48)),
    limit=st.integers(1, 8),
)
def test_find_duplicates_invariants(seed, threshold, same, window_h, limit):
    """Whatever the config: best first, above threshold, inside the window, within the limit."""
    rng = np.random.default_rng(seed)
    n, dim = 60, 16
    vecs = rng.normal(size=(n, dim)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    hours = rng.integers(-72, 72, size=n)
    rows = [(i, vecs[i], f"u{i % 4}", T0 + timedelta(hours=int(h))) for i, h in enumerate(hours)]
    window = None if window_h is None else timedelta(hours=window_h)
    config = DuplicateConfig(
        threshold=threshold, same_requester_boost=0.1, require_same_requester=same, window=window, limit=limit
    )
    found = find_duplicates(vecs[0], "U0", T0, rows, config=config, exclude=0)
    scores = [s for _, s, _ in found]
    assert scores == sorted(scores, reverse=True) and len(found) <= limit
    for tid, score, reasons in found:
        assert tid != 0 and score >= threshold - 1e-4
        assert not same or tid % 4 == 0
        assert window is None or abs(int(hours[tid])) <= window_h
        assert ("same requester" in reasons) == (tid % 4 == 0)


@pytest.mark.slow
def test_minilm_vpn_burst_with_default_settings():
    from triage.encoder import load_encoder

    enc = load_encoder("minilm")
    texts = [model_text(s, b) for s, b in VPN + OTHER]
    vecs = enc.encode(texts)
    rows = [(i, vecs[i], T0 + timedelta(minutes=i), texts[i]) for i in range(len(texts))]
    (cluster,) = detect_burst(rows)  # 30 min window, 5 tickets, cosine 0.75
    assert set(cluster.members) <= set(range(len(VPN))) and cluster.size >= 5
    assert "vpn" in cluster.label

"""Every head explains itself: terms, nearest training tickets for heads that read sentence
vectors, the impact and urgency behind priority; the agent's ticket page shows them."""

from __future__ import annotations

import re

import pytest

from service_fixtures import TICKET, app_config, auth
from triage.encoder import HashingEncoder
from triage.predict import Triager
from triage.ticket import Ticket

TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture()
def app(service_env, tmp_path, monkeypatch):
    from service import create_app

    monkeypatch.setenv("TRIAGE_CACHE_DIR", str(tmp_path / "cache"))
    return create_app(
        app_config(
            service_env,
            TRIAGE_DATABASE_URL=f"sqlite:///{tmp_path / 'x.db'}",
            TRIAGE_SECRET_KEY="test",
            TRIAGE_SIGHUP=False,
        )
    )


def test_vector_heads_cite_training_tickets_and_priority_cites_its_inputs(service_env):
    tri = Triager.from_bundle(service_env["bundle"], encoder=HashingEncoder())
    fields = tri.classify([Ticket(subject=TICKET["subject"], body=TICKET["body"])])[0]["fields"]
    vector_heads = [h for h, m in tri.models.items() if getattr(m, "uses_vectors", False)]
    for head in vector_heads:
        cited = fields[head]["neighbours"]
        assert 1 <= len(cited) <= 3, head
        assert {"id", "subject", "label", "similarity"} <= set(cited[0])
        assert cited[0]["label"] in set(map(str, tri.models[head].classes_))
        sims = [c["similarity"] for c in cited]
        assert sims == sorted(sims, reverse=True) and -1.0 <= sims[-1] <= 1.0
    prio = fields["priority"]
    assert prio["derived_from"] == {
        "impact": fields["impact"]["label"],
        "urgency": fields["urgency"]["label"],
    }
    terms = [t["term"] for t in prio["explanation"]]
    assert f"impact={fields['impact']['label']}" in terms
    assert f"urgency={fields['urgency']['label']}" in terms


def test_agent_ticket_page_shows_the_explanation(app):
    client = app.test_client()
    stored = client.post("/v1/tickets", json={k: v for k, v in TICKET.items() if k != "id"}, headers=auth())
    assert stored.status_code in (200, 201), stored.get_json()
    ticket_id = stored.get_json()["ticket"]["id"]
    token = TOKEN.search(client.get("/signin").text).group(1)
    client.post("/signin", data={"csrf_token": token, "kind": "staff", "key": "agent-key"})
    page = client.get(f"/agent/tickets/{ticket_id}")
    assert page.status_code == 200
    html = page.text
    assert 'id="explanation"' in html and "Why the model said it" in html
    assert "from impact" in html  # priority's inputs


def test_embedding_and_combined_heads_cite_the_nearest_training_ticket():
    from triage.classifiers import Features, fit_candidates

    enc = HashingEncoder()
    texts = [f"vpn drops again {i}" for i in range(12)] + [f"printer toner empty {i}" for i in range(12)]
    labels = ["network"] * 12 + ["printing"] * 12
    X = Features(texts, enc.encode(texts))
    heads = fit_candidates(X, labels, ("embedding", "combined"), cv=3)
    for kind, head in heads.items():
        head.attach_examples(X.vectors, labels, [f"T{i}" for i in range(24)], [t.title() for t in texts])
        query = Features([texts[15]], enc.encode([texts[15]]))
        cited = head.explain_neighbours(query, k=3)[0]
        assert cited[0] == {
            "id": "T15",
            "subject": texts[15].title(),
            "label": "printing",
            "similarity": pytest.approx(1.0, abs=1e-3),
        }, kind
        assert len(cited) == 3

"""A ticket's text is normalised once per request (encoding repair, quotes, signature:
about as costly as a TF-IDF head), not once by the caller and again by the heads."""

from __future__ import annotations

import pytest

from service_fixtures import auth
from triage import text as text_module
from triage.predict import Triager
from triage.text import model_text
from triage.ticket import Ticket

TICKET = {
    "subject": "VPN down since this morning",
    "body": "Cannot reach the file share from home.\n\n-- \nAnn, Finance",
    "requester": "ann@example.org",
}


@pytest.fixture
def normalised(monkeypatch):
    """The texts ``triage.text.normalise`` was asked for (model_text calls it per part)."""
    seen: list[str] = []
    real = text_module.normalise

    def counted(value):
        seen.append(value)
        return real(value)

    monkeypatch.setattr(text_module, "normalise", counted)
    return seen


def test_classify_normalises_each_part_once(client, normalised):
    response = client.post("/v1/classify?kb=0", json=TICKET, headers=auth())
    assert response.status_code == 200, response.get_json()
    assert normalised.count(TICKET["body"]) == 1 and normalised.count(TICKET["subject"]) == 1


def test_intake_normalises_each_part_once_for_the_encoder_and_the_heads(client, normalised):
    response = client.post("/v1/tickets", json=TICKET, headers={**auth(), "Idempotency-Key": "once-1"})
    assert response.status_code == 201, response.get_json()
    assert normalised.count(TICKET["body"]) == 1 and normalised.count(TICKET["subject"]) == 1


def test_given_texts_give_the_same_prediction(service_env):
    triager = Triager.from_bundle(service_env["bundle"])
    ticket = Ticket(subject=TICKET["subject"], body=TICKET["body"])
    given = triager.classify([ticket], texts=[model_text(ticket.subject, ticket.body)])
    assert given == triager.classify([ticket])

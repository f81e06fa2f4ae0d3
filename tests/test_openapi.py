"""/openapi.json describes the real endpoints: real responses validate against its schemas."""

from __future__ import annotations

import re

import jsonschema
import pytest

from service_fixtures import TICKET, auth


@pytest.fixture()
def spec(client):
    r = client.get("/openapi.json")
    assert r.status_code == 200
    return r.get_json()


def check(spec: dict, path: str, method: str, response) -> None:
    """Validate ``response`` against the documented schema for its status code."""
    responses = spec["paths"][path][method]["responses"]
    assert str(response.status_code) in responses, (path, method, response.status_code)
    documented = responses[str(response.status_code)]["content"]
    media = next(iter(documented))
    if media != "application/json":
        return
    schema = {**documented[media]["schema"], "components": spec["components"]}
    jsonschema.validate(response.get_json(), schema, cls=jsonschema.Draft202012Validator)


MINE = {"health", "classify", "kb", "admin", "openapi"}  # blueprints of this area


def openapi_path(rule: str) -> str:
    return re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule)


def test_document_is_openapi_3_and_lists_the_real_routes(app, spec):
    assert spec["openapi"].startswith("3.")
    rules = [r for r in app.url_map.iter_rules() if r.endpoint != "static"]
    real = {(openapi_path(r.rule), m.lower()) for r in rules for m in r.methods - {"HEAD", "OPTIONS"}}
    documented = {(p, m) for p, ops in spec["paths"].items() for m in ops}
    assert documented <= real, f"documented but not served: {documented - real}"
    mine = {
        (openapi_path(r.rule), m.lower())
        for r in rules
        if r.endpoint.split(".")[0] in MINE
        for m in r.methods - {"HEAD", "OPTIONS"}
    }
    assert mine <= documented, f"served but not documented: {mine - documented}"
    jsonschema.Draft202012Validator.check_schema(
        {**spec["components"]["schemas"]["ClassifyResponse"], "components": spec["components"]}
    )


def test_real_responses_match_the_schemas(client, spec):
    cases = [
        ("/v1/classify", "post", client.post("/v1/classify", json=TICKET, headers=auth())),
        ("/v1/classify", "post", client.post("/v1/classify", json={"tickets": [TICKET] * 2}, headers=auth())),
        ("/v1/classify", "post", client.post("/v1/classify", json={"subject": 1}, headers=auth())),
        (
            "/v1/classify",
            "post",
            client.post("/v1/classify", data=b"x", headers=auth(), content_type="text/plain"),
        ),
        ("/v1/classify", "post", client.post("/v1/classify", json=TICKET)),
        ("/v1/kb/suggest", "get", client.get("/v1/kb/suggest?q=vpn+drops", headers=auth())),
        ("/v1/kb/suggest", "get", client.get("/v1/kb/suggest?k=1", headers=auth())),
        ("/v1/kb/articles/{article_id}", "get", client.get("/v1/kb/articles/kb-vpn", headers=auth())),
        ("/v1/kb/articles/{article_id}", "get", client.get("/v1/kb/articles/missing", headers=auth())),
        ("/v1/admin/bundle", "get", client.get("/v1/admin/bundle", headers=auth("admin"))),
        ("/v1/admin/bundle", "get", client.get("/v1/admin/bundle", headers=auth("agent"))),
        (
            "/v1/admin/reload",
            "post",
            client.post("/v1/admin/reload", json={"wait": True}, headers=auth("admin")),
        ),
        ("/livez", "get", client.get("/livez")),
        ("/readyz", "get", client.get("/readyz")),
        ("/metrics", "get", client.get("/metrics")),
    ]
    for path, method, response in cases:
        check(spec, path, method, response)

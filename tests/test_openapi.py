"""schemathesis drives the Flask app from its OpenAPI document: valid and invalid requests, every check.

Its checks fail on any 5xx, on a status code, content type, header or body
that the document does not declare, and on invalid input that is accepted; so
the document and the views cannot drift apart.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, Phase, settings
from schemathesis import Case
from schemathesis.specs.openapi.checks import positive_data_acceptance

import service.config
from service import create_app
from service.openapi import openapi_document

DEFAULTS = {name: getattr(service.config, name) for name in dir(service.config) if name.isupper()}
# Loaded from the dict rather than from the app: the schema is needed when tests are collected,
# before the session's index exists. test_served_document_is_the_one_tested ties the two together.
schema = schemathesis.openapi.from_dict(openapi_document(DEFAULTS))


@pytest.fixture(scope="module")
def api_app(index_dir: Path) -> Flask:
    return create_app({"TESTING": True, "INDEX_DIR": str(index_dir)})


def test_served_document_is_the_one_tested(api_app: Flask) -> None:
    assert api_app.test_client().get("/api/openapi.json").get_json() == openapi_document(DEFAULTS)


@schema.parametrize()
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
)
def test_api_conforms_to_its_openapi_document(case: Case, api_app: Flask) -> None:
    excluded = []
    query = case.query or {}
    if case.operation.path == "/api/search" and not _given(query, "q", "source", "tag", "from", "to"):
        # "A query or a filter" is a rule OpenAPI 3.0 cannot write down; its 400 missing_query is documented.
        excluded.append(positive_data_acceptance)
    # Over WSGI nothing decodes a gzip or Brotli body, as every HTTP client does; compression has its own tests.
    case.call_and_validate(app=api_app, headers={"Accept-Encoding": "identity"}, excluded_checks=excluded)


def _given(query: dict[str, object], *names: str) -> bool:
    """Whether any of ``names`` has a value that is not blank."""
    for name in names:
        value = query.get(name)
        values = value if isinstance(value, list) else [value]
        if any(isinstance(v, str | int) and str(v).strip() for v in values):
            return True
    return False

"""The OpenAPI document served at /openapi.json against the handlers: schemathesis generates
requests for every documented operation (valid ones, and ones breaking the document) and
checks every answer against the document: a documented status, the documented media type,
a body matching the schema, never a server error."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.specs.openapi.checks import negative_data_rejection

from mailwarden.greylist import MemoryStore
from mailwarden.http import CONTEXT, make_app
from mailwarden.pipeline import build
from mailwarden.settings import load_settings

from .helpers import AUTH, MESSAGES, in_thread, settings_of, write_setup


def _document() -> dict[str, object]:
    """The document as the app builds it (it does not depend on the settings' values)."""
    settings = load_settings(None, overrides={"dnsbl.use": ([], "test")})
    app = make_app(settings, build(settings, greylist=MemoryStore()), token="x" * 20)
    return dict(app[CONTEXT].document)


DOCUMENT = _document()
schema = schemathesis.openapi.from_dict(DOCUMENT)
# Readable messages for the positive cases (the document cannot say "RFC 5322" in a schema;
# unreadable bodies are 400 and have their own property test in test_api.py): known ones, and
# a header over any body bytes at all.
_SUBJECT = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=60)
schemathesis.openapi.media_type(
    "message/rfc822",
    st.one_of(
        st.sampled_from([make() for make in MESSAGES.values()]),
        st.builds(
            lambda subject, body: (
                b"From: a@a.example\r\nSubject: %s\r\n\r\n%s" % (subject.encode(), body)
            ),
            _SUBJECT,
            st.binary(max_size=500),
        ),
    ),
)


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root: Path = tmp_path_factory.mktemp("openapi")
    write_setup(root)
    with in_thread(settings_of(root, http__max_body=65536)) as (host, port):
        yield f"http://{host}:{port}"


def test_every_route_is_documented_and_every_document_path_routed() -> None:
    operations = {(m.upper(), p) for p, ops in DOCUMENT["paths"].items() for m in ops}  # type: ignore[attr-defined]
    assert operations == {
        ("POST", "/v1/check"),
        ("GET", "/v1/greylist"),
        ("POST", "/v1/greylist/allow"),
        ("POST", "/v1/greylist/forget"),
        ("GET", "/v1/settings"),
        ("GET", "/health"),
        ("GET", "/metrics"),
        ("GET", "/openapi.json"),
    }
    assert DOCUMENT["openapi"] == "3.1.0"


@schema.parametrize()
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
def test_the_handlers_answer_as_documented(case: schemathesis.Case, base_url: str) -> None:
    """Every check but one: "schema-violating request accepted" fails on values that differ
    from valid ones only before they are written into a query string (the integer 1 and the
    string "1", the array ["all"] and the string "all" are the same bytes on the wire).
    Invalid requests are still sent, and their answers still checked against the document;
    the handlers' refusals of bad input are tested in test_api.py."""
    case.call_and_validate(
        base_url=base_url, headers=dict(AUTH), excluded_checks=[negative_data_rejection]
    )

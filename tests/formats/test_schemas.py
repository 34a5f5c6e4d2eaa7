"""Format schemas: JSON Schema and XSD compiled once, refused when unusable, and never a way
to reach the network or hang a process."""
import json
import time

import pytest

from formats.codecs import CodecError
from formats.models import Format
from formats.schemas import SchemaError, compile_json_schema, compile_xsd

pytestmark = pytest.mark.django_db


def test_a_remote_ref_is_never_fetched_and_fails_as_a_schema_problem():
    checker = compile_json_schema(json.dumps({"$ref": "https://example.invalid/schema.json"}))
    started = time.monotonic()
    with pytest.raises(CodecError) as caught:
        checker.check({"a": 1})
    assert "never fetched" in caught.value.reason and time.monotonic() - started < 1


def test_a_local_ref_works():
    checker = compile_json_schema(json.dumps({"$defs": {"qty": {"type": "integer"}},
                                              "properties": {"q": {"$ref": "#/$defs/qty"}}}))
    checker.check({"q": 3})
    with pytest.raises(CodecError) as caught:
        checker.check({"q": "x"})
    assert caught.value.location == "$.q"


def test_a_catastrophic_pattern_is_cut_short():
    checker = compile_json_schema(json.dumps({"properties": {"s": {"pattern": "^(\\\\w+\\\\s?)*$"}}}))
    started = time.monotonic()
    with pytest.raises(CodecError):
        checker.check({"s": "an ordinary sentence that ends badly " * 3 + "!"})
    assert time.monotonic() - started < 2


@pytest.mark.parametrize("text, words", [
    ("{nope", "not JSON"),
    ('{"type": "whatever"}', "not a valid JSON Schema"),
    ("[1, 2]", "is an object"),
])
def test_unusable_json_schemas_are_refused(text, words):
    with pytest.raises(SchemaError) as caught:
        compile_json_schema(text)
    assert words in caught.value.reason


@pytest.mark.parametrize("text, words", [
    ("<xs:schema", "not well-formed"),
    ('<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"><xs:import namespace="urn:x" '
     'schemaLocation="http://example.invalid/x.xsd"/></xs:schema>', "xs:import is not allowed"),
    ('<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"><xs:include schemaLocation="/etc/passwd"/></xs:schema>',
     "xs:include is not allowed"),
    ('<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">&e;</xs:schema>',
     "not"),
    ('<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"><xs:element name="a" type="xs:nothing"/></xs:schema>', "not a valid XSD"),
])
def test_unusable_or_reaching_xsds_are_refused(text, words):
    with pytest.raises(SchemaError) as caught:
        compile_xsd(text)
    assert words in caught.value.reason


def test_the_api_refuses_a_format_whose_schema_cannot_be_used(api):
    response = api.post("/api/v1/formats/", {"name": "x", "kind": "xml", "options": {},
                                             "schema": '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">'
                                                       '<xs:include schemaLocation="a.xsd"/></xs:schema>'}, format="json")
    assert response.status_code == 400 and "xs:include" in response.json()["schema"][0]
    response = api.post("/api/v1/formats/", {"name": "j", "kind": "json", "options": {}, "schema": '{"type": 5}'}, format="json")
    assert response.status_code == 400 and "schema" in response.json()
    ok = api.post("/api/v1/formats/", {"name": "k", "kind": "json", "options": {}, "schema": '{"type": "object"}'}, format="json")
    assert ok.status_code == 201


def test_json_lines_errors_name_the_record(user):
    fmt = Format.objects.create(owner=user, name="l", kind="json", options={"lines": True},
                                schema=json.dumps({"properties": {"n": {"type": "integer"}}}))
    with pytest.raises(CodecError) as caught:
        fmt.validate_payload(b'{"n": 1}\n{"n": 2}\n{"n": "three"}\n')
    assert caught.value.location == "record 3, $.n"

"""Hostile and broken requests: each gets a clear 4xx with its reason, never a 5xx, and nothing
already accepted is lost. Listener `strict` validates JSON at the door; `open-sync` runs a sync flow."""
import base64
import gzip
import hashlib
import hmac
import json
import time

import pytest
from lxml import etree

from flows.models import Flow
from formats.models import Format
from listeners.models import Listener, Message
from tests.conftest import PASSWORD, token_for

pytestmark = pytest.mark.django_db(transaction=True)
KEY = "whsec_" + base64.b64encode(b"k" * 32).decode()


INVOICE_XSD = """<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">
  <xs:element name="invoice"><xs:complexType><xs:sequence>
    <xs:element name="total" type="xs:decimal"/>
  </xs:sequence></xs:complexType></xs:element>
</xs:schema>"""


@pytest.fixture
def listeners(user, json_format):
    csv_format = Format.objects.create(owner=user, name="csv", kind="csv", options={"header": True})
    strict = Listener.objects.create(owner=user, name="strict", path="strict", auth="token", format=json_format,
                                     max_body_bytes=64 * 1024, content_types=["application/json"])
    Flow.objects.create(owner=user, name="strict", listener=strict, source_format=json_format,
                        mapping={"fields": [{"target": "id", "source": "id"}]}, destination_format=json_format)
    table = Listener.objects.create(owner=user, name="table", path="table", auth="token", format=csv_format)
    Flow.objects.create(owner=user, name="table", listener=table, source_format=csv_format,
                        mapping={"fields": [{"target": "a", "source": "a"}]}, destination_format=json_format)
    sync = Listener.objects.create(owner=user, name="open-sync", path="open-sync", mode="sync", auth="basic")
    Flow.objects.create(owner=user, name="sync", listener=sync, source_format=json_format,
                        mapping={"fields": [{"target": "n", "source": "n", "type": "integer", "required": True}]},
                        destination_format=json_format)
    schema = json.dumps({"type": "object", "required": ["id"], "properties": {
        "id": {"type": "integer"}, "code": {"type": "string", "pattern": "^(a|aa)+$"},
        "lines": {"type": "array", "items": {"properties": {"qty": {"type": "integer", "minimum": 0}}}}}})
    checked_format = Format.objects.create(owner=user, name="checked", kind="json", options={}, schema=schema)
    Listener.objects.create(owner=user, name="checked", path="checked", auth="token", format=checked_format)
    xsd = Format.objects.create(owner=user, name="invoice", kind="xml", options={}, schema=INVOICE_XSD)
    Listener.objects.create(owner=user, name="invoice", path="invoice", auth="token", format=xsd)
    signed = Listener(owner=user, name="signed", path="signed", auth="hmac", signature={"scheme": "standard", "tolerance": 300})
    signed.secrets = {"signing_keys": [KEY]}
    signed.save()
    return user


def sign(body: bytes, ts: int, msg_id: str = "m1", key: bytes = b"k" * 32) -> dict:
    sig = base64.b64encode(hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()).decode()
    return {"HTTP_WEBHOOK_ID": msg_id, "HTTP_WEBHOOK_TIMESTAMP": str(ts), "HTTP_WEBHOOK_SIGNATURE": f"v1,{sig}"}


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def signed(body: bytes, offset: int = 0, **kwargs):
    """Signature headers made when the case runs (the timestamp must be within the tolerance then,
    not when the module was collected, minutes earlier in a long test run)."""
    return lambda: sign(body, int(time.time()) + offset, **kwargs)


# (case id, path, body, content type, extra headers, auth, status, reason fragment)
CASES = [
    ("truncated json", "strict", b'{"id": 1', "application/json", {}, "token", 422, "malformed JSON"),
    ("trailing garbage", "strict", b'{"id": 1} {"id": 2}', "application/json", {}, "token", 422, "malformed JSON"),
    ("single quotes", "strict", b"{'id': 1}", "application/json", {}, "token", 422, "malformed JSON"),
    ("nan literal", "strict", b'{"id": NaN}', "application/json", {}, "token", 422, "malformed JSON"),
    ("empty body", "strict", b"", "application/json", {}, "token", 422, "empty JSON"),
    ("whitespace body", "strict", b"  \r\n ", "application/json", {}, "token", 422, "empty JSON"),
    ("latin-1 bytes as utf-8", "strict", '{"id": "café"}'.encode("latin-1"), "application/json", {}, "token", 422, "not valid utf-8"),
    ("utf-16 without a byte-order mark or charset", "strict", '{"id": 1}'.encode("utf-16-le"), "application/json", {}, "token",
     422, "malformed JSON"),
    ("a charset that lies about the bytes", "table", "a,b\nJosé,1\n".encode("cp1252"), "text/csv; charset=utf-8", {}, "token",
     422, "byte 7, line 2"),
    ("an unknown charset", "table", b"a,b\n1,2\n", "text/csv; charset=klingon-8", {}, "token", 422, "unknown encoding"),
    ("schema: wrong type at a path", "checked", b'{"id": "x", "lines": [{"qty": 1}]}', "application/json", {}, "token", 422,
     "$.id"),
    ("schema: nested value out of range", "checked", b'{"id": 1, "lines": [{"qty": 1}, {"qty": -4}]}', "application/json", {},
     "token", 422, "$.lines[1].qty"),
    ("schema: catastrophic pattern is stopped", "checked", b'{"id": 1, "code": "' + b"a" * 40 + b'!"}', "application/json", {},
     "token", 422, "code"),
    ("xsd: element the schema does not allow", "invoice", b"<invoice><total>12.5</total><x/></invoice>", "application/xml", {},
     "token", 422, "line 1"),
    ("xsd: text where a decimal belongs", "invoice", b"<invoice>\n<total>twelve</total>\n</invoice>", "application/xml", {},
     "token", 422, "line 2"),
    ("lone surrogate escape is fine but bytes are not", "strict", b'{"id": "\xed\xa0\x80"}', "application/json", {}, "token", 422,
     "not valid utf-8"),
    ("10,000 levels of nesting", "strict", nested(10_000), "application/json", {}, "token", 422, "malformed JSON"),
    ("over the body limit", "strict", b'{"pad": "' + b"x" * 70_000 + b'"}', "application/json", {}, "token", 413, "at most 65536"),
    ("wrong content type", "strict", b'{"id": 1}', "text/plain", {}, "token", 415, "text/plain"),
    ("octet-stream content type", "strict", b'{"id": 1}', "application/octet-stream", {}, "token", 415, "octet-stream"),
    ("xml to a json listener", "strict", b"<a/>", "application/xml", {}, "token", 415, "application/xml"),
    ("gzip bomb", "strict", gzip.compress(b"{" * 5_000_000), "application/json", {"HTTP_CONTENT_ENCODING": "gzip"}, "token", 413,
     "decompresses"),
    ("corrupt gzip", "strict", b"\x1f\x8b\x08garbage", "application/json", {"HTTP_CONTENT_ENCODING": "gzip"}, "token", 400, "corrupt"),
    ("unknown encoding", "strict", b"{}", "application/json", {"HTTP_CONTENT_ENCODING": "zstd"}, "token", 415, "not supported"),
    ("no credentials", "strict", b'{"id": 1}', "application/json", {}, None, 401, "authentication required"),
    ("forged bearer token", "strict", b'{"id": 1}', "application/json", {"HTTP_AUTHORIZATION": "Bearer pf_forged"}, None, 401,
     "wrong credentials"),
    ("bearer without a token", "strict", b'{"id": 1}', "application/json", {"HTTP_AUTHORIZATION": "Bearer"}, None, 401,
     "wrong credentials"),
    ("unknown auth scheme", "strict", b'{"id": 1}', "application/json", {"HTTP_AUTHORIZATION": "Digest x=1"}, None, 401,
     "wrong credentials"),
    ("basic with bad base64", "open-sync", b'{"n": 1}', "application/json", {"HTTP_AUTHORIZATION": "Basic %%%"}, None, 401,
     "wrong credentials"),
    ("basic without a colon", "open-sync", b'{"n": 1}', "application/json",
     {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(b"nocolon").decode()}, None, 401, "wrong credentials"),
    ("basic with non-utf-8", "open-sync", b'{"n": 1}', "application/json",
     {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode()}, None, 401, "wrong credentials"),
    ("sync: missing required field", "open-sync", b'{"m": 1}', "application/json", {}, "basic", 422, "required"),
    ("sync: wrong type", "open-sync", b'{"n": "seven"}', "application/json", {}, "basic", 422, "not an integer"),
    ("sync: huge integer", "open-sync", b'{"n": "1e99999"}', "application/json", {}, "basic", 422, "digits"),
    ("sync: array instead of object", "open-sync", b"[1, 2]", "application/json", {}, "basic", 422, "required"),
    ("sync: bare string", "open-sync", b'"hello"', "application/json", {}, "basic", 422, "required"),
    ("csv: ragged row", "table", b"a,b\n1,2\n3\n", "text/csv", {}, "token", 422, "line 3"),
    ("csv: unclosed quote", "table", b'a,b\n"1,2\n', "text/csv", {}, "token", 422, "malformed CSV"),
    ("csv: duplicate header", "table", b"a,a\n1,2\n", "text/csv", {}, "token", 422, "duplicate column"),
    ("csv: 10,000 columns with a ragged row", "table", (",".join(f"c{i}" for i in range(10_000)) + "\n1,2\n").encode(),
     "text/csv", {}, "token", 422, "10000"),
    ("csv: windows-1252 bytes sent as utf-8", "table", "a,b\nJosé,1\n".encode("cp1252"), "text/csv", {}, "token", 422,
     "not valid utf-8"),
    ("hmac: no signature", "signed", b'{"id": 1}', "application/json", {}, None, 401, "missing webhook-id"),
    ("hmac: forged signature", "signed", b'{"id": 1}', "application/json", signed(b'{"id": 1}', key=b"x" * 32), None, 401,
     "does not match"),
    ("hmac: signature over another body", "signed", b'{"id": 2}', "application/json", signed(b'{"id": 1}'), None, 401,
     "does not match"),
    ("hmac: expired timestamp", "signed", b'{"id": 1}', "application/json", signed(b'{"id": 1}', -3600), None, 401, "tolerance"),
    ("hmac: timestamp from the future", "signed", b'{"id": 1}', "application/json", signed(b'{"id": 1}', 3600), None, 401,
     "tolerance"),
    ("hmac: timestamp not a number", "signed", b'{"id": 1}', "application/json",
     lambda: {**sign(b'{"id": 1}', int(time.time())), "HTTP_WEBHOOK_TIMESTAMP": "soon"}, None, 401, "not a number"),
    ("unknown listener", "nope", b"{}", "application/json", {}, "token", 404, "no enabled listener"),
    ("path traversal", "../admin", b"{}", "application/json", {}, "token", 404, "no enabled listener"),
    ("encoded traversal", "%2e%2e/admin", b"{}", "application/json", {}, "token", 404, "no enabled listener"),
    ("nul in the path", "strict%00", b"{}", "application/json", {}, "token", 404, "no enabled listener"),
]


@pytest.mark.parametrize("case, path, body, content_type, headers, auth, status, reason", CASES, ids=[c[0] for c in CASES])
def test_bad_input(client, listeners, case, path, body, content_type, headers, auth, status, reason):
    user = listeners
    extra = dict(headers() if callable(headers) else headers)
    if auth == "token":
        extra["HTTP_AUTHORIZATION"] = f"Bearer {token_for(user)}"
    elif auth == "basic":
        extra["HTTP_AUTHORIZATION"] = "Basic " + base64.b64encode(f"{user.username}:{PASSWORD}".encode()).decode()
    if content_type:
        extra["CONTENT_TYPE"] = content_type
    response = client.generic("POST", f"/listen/{path}", body, **extra)
    assert response.status_code == status, response.content[:300]
    if response["Content-Type"].startswith("application/xml"):  # an XML listener answers faults in XML
        root = etree.fromstring(response.content)
        fault = {"error": root.findtext("reason"), "message_id": root.findtext("messageId")}
    else:
        fault = json.loads(response.content)
    assert reason in fault["error"], fault["error"]
    if status != 404:
        assert fault["message_id"] == response["X-Message-Id"]


def test_a_body_with_nul_bytes_is_kept_exactly(client, listeners):
    body = b'{"id": 1}\x00\x00trailing'
    Listener.objects.filter(path="strict").update(format=None)
    response = client.post("/listen/strict", body, content_type="application/json",
                           HTTP_AUTHORIZATION=f"Bearer {token_for(listeners)}")
    assert response.status_code == 202
    assert Message.objects.get(pk=response.json()["message_id"]).read_body() == body


def test_huge_headers_do_not_crash_the_ingest(client, listeners):
    response = client.post("/listen/strict", b'{"id": 1}', content_type="application/json",
                           HTTP_AUTHORIZATION=f"Bearer {token_for(listeners)}", HTTP_X_NOISE="n" * 100_000)
    assert response.status_code == 202


def test_rejects_never_disturb_what_was_accepted(client, listeners):
    good = client.post("/listen/strict", b'{"id": 1}', content_type="application/json",
                       HTTP_AUTHORIZATION=f"Bearer {token_for(listeners)}")
    assert good.status_code == 202
    for body in (b"{", b"", b"[" * 5000):
        client.post("/listen/strict", body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token_for(listeners)}")
    kept = Message.objects.get(pk=good.json()["message_id"])
    assert kept.status == "succeeded" and kept.read_body() == b'{"id": 1}'
    assert Message.objects.filter(status="rejected").count() == 3


def test_a_declared_charset_or_a_byte_order_mark_decides_how_the_payload_reads(client, listeners):
    auth = f"Bearer {token_for(listeners)}"
    latin = client.generic("POST", "/listen/table", "a,b\nJosé,1\n".encode("cp1252"), CONTENT_TYPE="text/csv; charset=windows-1252",
                           HTTP_AUTHORIZATION=auth)
    assert latin.status_code == 202
    message = Message.objects.get(pk=latin.json()["message_id"])
    assert message.charset == "windows-1252" and message.status == "succeeded"
    assert "José" in message.runs.get().log[0] or message.runs.get().records_out == 1
    bom = client.generic("POST", "/listen/strict", '{"id": 1}'.encode("utf-16"), CONTENT_TYPE="application/json",
                         HTTP_AUTHORIZATION=auth)
    assert bom.status_code == 202

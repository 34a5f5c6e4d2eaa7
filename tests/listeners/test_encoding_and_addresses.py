"""Compressed request bodies (with a cap on what they expand to) and per-listener address allow-lists."""
import gzip
import json
import zlib

import pytest

from listeners.models import Listener, Message
from tests.conftest import token_for

pytestmark = pytest.mark.django_db(transaction=True)
BODY = json.dumps({"id": 5, "name": {"family": "Zip"}}).encode()


def post(client, user, data, **extra):
    return client.post("/listen/patients", data, content_type="application/json",
                       HTTP_AUTHORIZATION=f"Bearer {token_for(user)}", **extra)


def raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-15)
    return compressor.compress(data) + compressor.flush()


@pytest.mark.parametrize("encoding, compress", [("gzip", gzip.compress), ("deflate", zlib.compress), ("deflate", raw_deflate)])
def test_compressed_bodies_are_stored_expanded(client, user, async_flow, encoding, compress):
    data = compress(BODY)
    response = post(client, user, data, HTTP_CONTENT_ENCODING=encoding)
    assert response.status_code == 202, response.content
    message = Message.objects.get(pk=response.json()["message_id"])
    assert message.read_body() == BODY and message.status == "succeeded"


def test_a_zip_bomb_is_413_without_expanding_it_all(client, user, async_flow):
    Listener.objects.filter(pk=async_flow.listener_id).update(max_body_bytes=1_000_000)
    bomb = gzip.compress(b"0" * 50_000_000)  # 50 MB of zeros in about 50 KB
    assert len(bomb) < 1_000_000
    response = post(client, user, bomb, HTTP_CONTENT_ENCODING="gzip")
    assert response.status_code == 413
    assert "decompresses to more than" in response.json()["error"]


@pytest.mark.parametrize("encoding, data, status, reason", [
    ("gzip", b"not gzip at all", 400, "corrupt"),
    ("gzip", gzip.compress(BODY)[:-12], 400, "truncated"),
    ("br", b"\x00", 415, "not supported"),
])
def test_bad_compressed_bodies_get_a_clear_error(client, user, async_flow, encoding, data, status, reason):
    response = post(client, user, data, HTTP_CONTENT_ENCODING=encoding)
    assert response.status_code == status
    assert reason in response.json()["error"]
    assert Message.objects.get().status == "rejected"


def test_an_address_outside_the_allow_list_is_403(client, user, async_flow):
    Listener.objects.filter(pk=async_flow.listener_id).update(ip_allowlist=["10.1.0.0/16", "2001:db8::/32"])
    response = post(client, user, BODY, REMOTE_ADDR="192.0.2.7")
    assert response.status_code == 403 and "192.0.2.7" in response.json()["error"]
    assert post(client, user, BODY, REMOTE_ADDR="10.1.200.3").status_code == 202
    assert post(client, user, BODY, REMOTE_ADDR="2001:db8::5").status_code == 202


def test_the_api_checks_allow_list_entries(api):
    bad = api.post("/api/v1/listeners/", {"name": "x", "path": "x", "ip_allowlist": ["10.0.0.0/33"]}, format="json")
    assert bad.status_code == 400 and "10.0.0.0/33" in str(bad.json()["ip_allowlist"])
    good = api.post("/api/v1/listeners/", {"name": "x", "path": "x", "ip_allowlist": ["10.0.0.0/8", "::1"]}, format="json")
    assert good.status_code == 201 and good.json()["ip_allowlist"] == ["10.0.0.0/8", "::1"]

"""/api/v1/subscriptions/: the secret is answered once and kept encrypted, input is checked with reasons,
and a subscription is its owner's alone."""
import pytest
from rest_framework.test import APIClient

from accounts.models import AuditEntry
from events.models import Subscription
from tests.conftest import token_for

pytestmark = pytest.mark.django_db


def test_the_secret_is_answered_once_and_stored_encrypted(api, subscriber, async_flow):
    created = api.post("/api/v1/subscriptions/", {"url": subscriber.url, "events": ["run.succeeded", "output.ready"],
                                                  "flows": [async_flow.pk]}, format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    secret = body["secret"]
    assert secret.startswith("whsec_") and len(secret) >= 38
    assert (body["events"], body["flows"], body["enabled"]) == (["run.succeeded", "output.ready"], [async_flow.pk], True)
    stored = Subscription.objects.get(pk=body["id"])
    assert stored.secret == secret and secret not in stored.secret_encrypted
    for response in (api.get(f"/api/v1/subscriptions/{body['id']}/"), api.get("/api/v1/subscriptions/"),
                     api.patch(f"/api/v1/subscriptions/{body['id']}/", {"description": "erp"}, format="json")):
        assert response.status_code == 200 and secret not in response.content.decode()
        assert "secret" not in (response.json().get("results") or [response.json()])[0]
    entries = list(AuditEntry.objects.filter(object_type__icontains="subscription"))
    assert len(entries) == 2 and not any(secret in str(entry.changes) for entry in entries)


@pytest.mark.parametrize(("body", "field", "words"), [
    ({"events": ["run.exploded"]}, "events", "not a valid choice"),
    ({"events": []}, "events", ""),
    ({"url": "ftp://example.com/hook"}, "url", ""),
    ({"url": "http://10.0.0.5/hook"}, "url", "PUSHFLOW_OUTBOUND_ALLOW"),
    ({"entity_names": "invoice"}, "entity_names", ""),
    ({"entity_names": [1, {"a": 2}]}, "entity_names", "Not a valid string"),
    ({"events": [None]}, "events", "may not be null"),
    ({"flows": ["x"]}, "flows", "Incorrect type"),
    ({"flows": [99999999999999999999]}, "flows", "does not exist"),
    ({"teams": [99999]}, "teams", "does not exist"),
    ({"enabled": "maybe"}, "enabled", "boolean"),
    ({"description": "d" * 201}, "description", "200 characters"),
    ({"url": "http://no-such-host.invalid/hook"}, "url", "cannot be resolved"),
    ({"secret": "whsec_chosen"}, "secret", "rotate-secret"),
])
def test_bad_input_is_a_400_naming_the_field(api, subscriber, body, field, words):
    response = api.post("/api/v1/subscriptions/", {"url": subscriber.url, "events": ["run.failed"], **body}, format="json")
    assert response.status_code == 400
    assert field in response.json() and words in str(response.json()[field])


def test_a_subscription_is_its_owners_alone(api, subscriber, other_user, async_flow):
    stranger = APIClient()
    stranger.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(other_user)}")
    refused = stranger.post("/api/v1/subscriptions/", {"url": subscriber.url, "events": ["run.failed"],
                                                        "flows": [async_flow.pk]}, format="json")
    assert refused.status_code == 400 and "flows" in refused.json()
    pk = api.post("/api/v1/subscriptions/", {"url": subscriber.url, "events": ["run.failed"]}, format="json").json()["id"]
    assert stranger.get("/api/v1/subscriptions/").json()["count"] == 0
    assert stranger.get(f"/api/v1/subscriptions/{pk}/deliveries/").status_code == 404
    assert stranger.post(f"/api/v1/subscriptions/{pk}/deliveries/1/redeliver").status_code == 404
    assert stranger.delete(f"/api/v1/subscriptions/{pk}/").status_code == 404
    assert api.delete(f"/api/v1/subscriptions/{pk}/").status_code == 204


@pytest.mark.parametrize(("body", "content_type"), [(b"[]", "application/json"), (b"{not json", "application/json"),
                                                    (b"\xff\xfe", "application/json"), (b'"x"', "application/json")])
def test_a_body_that_is_no_object_is_a_400(api, body, content_type):
    response = api.post("/api/v1/subscriptions/", body, content_type=content_type)
    assert response.status_code == 400 and response.json()


def test_the_secret_cannot_be_set_by_an_update_nor_chosen_on_rotation(api, subscriber):
    created = api.post("/api/v1/subscriptions/", {"url": subscriber.url, "events": ["run.failed"]}, format="json").json()
    patched = api.patch(f"/api/v1/subscriptions/{created['id']}/", {"secret": "whsec_mine"}, format="json")
    assert patched.status_code == 400 and "rotate-secret" in str(patched.json()["secret"])
    chosen = api.post(f"/api/v1/subscriptions/{created['id']}/rotate-secret", {"secret": "whsec_mine"}, format="json")
    assert chosen.status_code == 400 and "no body" in chosen.json()["detail"]
    assert Subscription.objects.get(pk=created["id"]).secret == created["secret"]
    assert api.post(f"/api/v1/subscriptions/{created['id']}/rotate-secret", {}, format="json").status_code == 200

"""Sharing with teams (Django groups): members read and use what is shared with their team,
only the owner changes it, others see nothing; the API, the pages and the listener agree."""
import json

import pytest
from django.contrib.auth.models import Group
from rest_framework.test import APIClient

from flows.models import Flow
from listeners.models import Listener, Message
from tests.conftest import token_for

pytestmark = pytest.mark.django_db


def client_for(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(user)}")
    return client


@pytest.fixture
def lab(user, make_user, async_flow):
    """alice owns the patients flow, shares it and its parts with team "lab"; bob is in lab, carol is not."""
    team = Group.objects.create(name="lab")
    alice, bob, carol = user, make_user("bob"), make_user("carol")
    alice.groups.add(team)
    bob.groups.add(team)
    alice_api = client_for(alice)
    for resource, obj in (("formats", async_flow.source_format), ("listeners", async_flow.listener), ("flows", async_flow)):
        response = alice_api.patch(f"/api/v1/{resource}/{obj.pk}/", {"teams": [team.pk]}, format="json")
        assert response.status_code == 200 and response.json()["teams"] == [team.pk], response.content
    return {"team": team, "alice": alice, "bob": bob, "carol": carol, "flow": async_flow}


def test_members_see_what_is_shared_and_others_do_not(lab):
    flow = lab["flow"]
    bob, carol = client_for(lab["bob"]), client_for(lab["carol"])
    assert [f["id"] for f in bob.get("/api/v1/flows/").json()["results"]] == [flow.pk]
    assert bob.get(f"/api/v1/listeners/{flow.listener_id}/").status_code == 200
    assert bob.get(f"/api/v1/connections/{flow.destination_connection_id}/").status_code == 404  # not shared
    assert carol.get("/api/v1/flows/").json()["count"] == 0
    assert carol.get(f"/api/v1/flows/{flow.pk}/").status_code == 404


def test_only_the_owner_changes_or_deletes_a_shared_object(lab):
    flow = lab["flow"]
    bob = client_for(lab["bob"])
    assert bob.patch(f"/api/v1/flows/{flow.pk}/", {"name": "mine now"}, format="json").status_code == 403
    assert bob.delete(f"/api/v1/listeners/{flow.listener_id}/").status_code == 403
    assert Flow.objects.get(pk=flow.pk).name == flow.name
    preview = bob.post(f"/api/v1/flows/{flow.pk}/preview", {"sample": json.dumps({"id": 1, "name": {"family": "A"}})},
                       format="json")
    assert preview.status_code == 200 and preview.json()["records"] == [{"id": 1, "family": "A"}]


def test_a_member_may_use_a_shared_format_in_their_own_flow(lab):
    bob = client_for(lab["bob"])
    source = lab["flow"].source_format_id
    made = bob.post("/api/v1/flows/", {"name": "bob's", "source_format": source,
                                       "mapping": {"fields": [{"target": "a", "source": "a"}]}}, format="json")
    assert made.status_code == 201, made.content
    carol = client_for(lab["carol"])
    refused = carol.post("/api/v1/flows/", {"name": "carol's", "source_format": source,
                                            "mapping": {"fields": [{"target": "a", "source": "a"}]}}, format="json")
    assert refused.status_code == 400 and "source_format" in refused.json()


def test_a_team_outsider_cannot_share_into_a_team(lab, make_user):
    carol = client_for(lab["carol"])
    made = carol.post("/api/v1/formats/", {"name": "c", "kind": "json", "options": {}, "teams": [lab["team"].pk]}, format="json")
    assert made.status_code == 400 and "teams" in made.json()


def test_members_push_to_a_shared_listener_and_see_its_messages(client, lab, django_capture_on_commit_callbacks):
    bob_token, carol_token = token_for(lab["bob"]), token_for(lab["carol"])
    body = json.dumps({"id": 5, "name": {"family": "Team"}})
    with django_capture_on_commit_callbacks(execute=True):  # the run, as after a real commit
        pushed = client.post("/listen/patients", body, content_type="application/json",
                             HTTP_AUTHORIZATION=f"Bearer {bob_token}")
    assert pushed.status_code == 202
    refused = client.post("/listen/patients", body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {carol_token}")
    assert refused.status_code == 403
    message_id = pushed.json()["message_id"]
    bob = client_for(lab["bob"])
    assert bob.get(f"/api/v1/messages/{message_id}/").status_code == 200
    assert bob.get(f"/api/v1/runs/?message={message_id}").json()["count"] == 1
    assert bob.post(f"/api/v1/messages/{message_id}/resubmit").status_code in (200, 202)
    assert client_for(lab["carol"]).get(f"/api/v1/messages/{message_id}/").status_code == 404


def test_the_pages_follow_the_same_sharing(client, lab):
    Message.objects.create(listener=lab["flow"].listener, owner=lab["alice"], method="POST", status="succeeded")
    from tests.conftest import PASSWORD

    assert client.login(username="bob", password=PASSWORD)
    assert "patients" in client.get("/").content.decode()
    client.logout()
    assert client.login(username="carol", password=PASSWORD)
    assert "/listen/patients" not in client.get("/").content.decode()


def test_admins_see_everything(lab, admin_user):
    admin = client_for(admin_user)
    assert admin.get("/api/v1/flows/").json()["count"] == 1
    assert Listener.objects.get(pk=lab["flow"].listener_id).user_may_push(admin_user)

"""Configuration changes through the API are audited: who, when, what changed, secrets masked."""
import pytest
from rest_framework.test import APIClient

from accounts.models import AuditEntry
from tests.conftest import token_for

pytestmark = pytest.mark.django_db


def test_create_update_delete_are_recorded_with_secrets_masked(api, user, admin_user, tmp_path):
    created = api.post("/api/v1/connections/", {"name": "vault", "kind": "folder", "options": {"path": str(tmp_path)},
                                                "secrets": {"password": "TopSecret-1"}}, format="json").json()
    api.patch(f"/api/v1/connections/{created['id']}/", {"name": "vault2", "secrets": {"password": "TopSecret-2"}}, format="json")
    api.delete(f"/api/v1/connections/{created['id']}/")
    entries = list(AuditEntry.objects.order_by("at", "id"))
    assert [(e.action, e.object_type, e.user) for e in entries] == [
        ("create", "connection", user), ("update", "connection", user), ("delete", "connection", user)]
    assert entries[1].changes["name"] == ["vault", "vault2"]
    assert entries[1].changes["secrets"] == ["***", "*** (password set)"]
    assert "TopSecret" not in str([e.changes for e in entries])


def test_the_log_is_for_administrators_only(api, admin_user, json_format):
    api.patch(f"/api/v1/formats/{json_format.pk}/", {"name": "renamed"}, format="json")
    assert api.get("/api/v1/audit/").status_code == 403
    root = APIClient()
    root.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(admin_user)}")
    page = root.get("/api/v1/audit/?object_type=format").json()
    assert page["count"] == 1 and page["results"][0]["changes"]["name"] == ["json", "renamed"]
    assert page["results"][0]["user"] == "alice"


def test_a_refused_change_leaves_no_entry(api, async_flow, csv_format):
    assert api.delete(f"/api/v1/formats/{csv_format.pk}/").status_code == 409
    assert not AuditEntry.objects.exists()

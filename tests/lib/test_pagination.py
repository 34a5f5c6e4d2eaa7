"""A list asked for with a huge `limit` answers one capped page that leads on with `next`."""
import pytest

from formats.models import Format
from lib.pagination import CappedLimitOffsetPagination

pytestmark = pytest.mark.django_db


def test_a_limit_over_the_ceiling_is_lowered_and_next_leads_on(api, user, monkeypatch):
    monkeypatch.setattr(CappedLimitOffsetPagination, "max_limit", 2)
    for name in ("a", "b", "c"):
        Format.objects.create(owner=user, name=name, kind="json", options={})
    page = api.get("/api/v1/formats/?limit=10000000").json()
    assert page["count"] == 3 and len(page["results"]) == 2
    assert "limit=2" in page["next"] and "offset=2" in page["next"]
    rest = api.get(page["next"]).json()
    assert len(rest["results"]) == 1 and rest["next"] is None

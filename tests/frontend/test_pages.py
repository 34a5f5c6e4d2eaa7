"""The login page and the home page listing a user's listeners and recent messages."""
import pytest

from listeners.models import Listener, Message
from tests.conftest import PASSWORD


@pytest.mark.django_db
def test_home_redirects_anonymous_to_login(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


@pytest.mark.django_db
def test_login_with_wrong_password_shows_a_readable_error(client, user):
    response = client.post("/login/", {"username": user.username, "password": "wrong"})
    assert response.status_code == 200
    assert b"Wrong user name or password" in response.content


@pytest.mark.django_db
def test_home_lists_own_listeners_and_messages_only(client, user, other_user):
    mine = Listener.objects.create(owner=user, name="lab results", path="lab", auth="token")
    theirs = Listener.objects.create(owner=other_user, name="secret feed", path="secret", auth="token")
    Message.objects.create(owner=user, listener=mine, method="POST", path="/listen/lab", status="rejected", error="bad token")
    Message.objects.create(owner=other_user, listener=theirs, method="POST", path="/listen/secret", error="hidden reason")
    assert client.login(username=user.username, password=PASSWORD)
    response = client.get("/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "lab results" in page and "/listen/lab" in page and "bad token" in page
    assert "secret feed" not in page and "hidden reason" not in page

"""Property-based fuzzing of the whole REST API from its own OpenAPI schema: no input gives a 5xx."""
import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from config.wsgi import application

# Request validation does not depend on the database: this runs in the SQLite tier only (see Makefile).
pytestmark = pytest.mark.fuzz

schema = schemathesis.openapi.from_wsgi("/api/v1/schema?format=json", application)


@pytest.fixture
def bearer(db, django_user_model):
    from accounts.models import ApiToken

    user = django_user_model.objects.create_user(username="fuzz", password="Fuzz-Pass-2026!")
    _, raw = ApiToken.issue(user, 3600)
    return {"Authorization": f"Bearer {raw}"}


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@pytest.mark.django_db(transaction=True)
def test_no_input_gives_a_server_error(case, bearer):
    response = case.call(headers=bearer)
    assert response.status_code < 500, (case.method, case.formatted_path, case.body, response.text[:500])

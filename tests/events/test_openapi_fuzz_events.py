"""Property-based fuzzing of the events endpoints (subscriptions, queues, outputs) from the OpenAPI schema:
no input gives a 5xx. Unlike the API-wide fuzz test (tests/api), the ids in the paths name a real
subscription, delivery, queue and output of the caller, so bodies reach the serializers and services."""
import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from config.wsgi import application

# Request validation does not depend on the database: this runs in the SQLite tier only (see Makefile).
pytestmark = pytest.mark.fuzz

schema = schemathesis.openapi.from_wsgi("/api/v1/schema?format=json", application).include(
    path_regex=r"^/api/v1/(subscriptions|queues|outputs)/")


@pytest.fixture
def owned(db, django_user_model, async_flow):
    """A caller who owns a subscription with a delivery, a queue with an item and an output: the path ids."""
    from accounts.models import ApiToken
    from events.models import Delivery, Output, Queue, QueueItem, Subscription

    user = django_user_model.objects.create_user(username="fuzz", password="Fuzz-Pass-2026!")
    _, raw = ApiToken.issue(user, 3600)
    subscription = Subscription(owner=user, url="https://hooks.example.com/", events=["run.failed"])
    subscription.secret = "whsec_" + "A" * 32
    subscription.save()
    delivery = Delivery.objects.create(subscription=subscription, msg_id="msg_fuzz", event="run.failed", status="failed")
    queue = Queue.objects.create(owner=user, name="fuzz")
    output = Output.objects.create(owner=user, flow=async_flow, path="x.csv")
    QueueItem.objects.create(queue=queue, output=output)
    return {"headers": {"Authorization": f"Bearer {raw}"},
            "subscription": subscription.pk, "output": output.pk, "delivery_id": delivery.pk, "name": queue.name}


@schema.parametrize()
@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
@pytest.mark.django_db(transaction=True)
def test_no_input_on_events_endpoints_gives_a_server_error(case, owned):
    params = case.path_parameters or {}
    if "id" in params:
        params["id"] = owned["output" if case.path.startswith("/api/v1/outputs/") else "subscription"]
    for name in ("delivery_id", "name"):
        if name in params:
            params[name] = owned[name]
    response = case.call(headers=owned["headers"])
    assert response.status_code < 500, (case.method, case.formatted_path, case.body, response.text[:500])

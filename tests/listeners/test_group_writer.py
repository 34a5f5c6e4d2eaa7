"""Group commit: concurrent requests share INSERTs, and each still gets its 202 only for a stored row."""
import json
from concurrent.futures import ThreadPoolExecutor
from unittest import mock

import pytest
from django.db import OperationalError, connection, transaction
from django.forms.models import model_to_dict
from django.test import Client

from listeners import writer
from listeners.models import Listener, Message
from tests.conftest import token_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def group_commit(settings):
    settings.PUSHFLOW_GROUP_COMMIT = True


def _push(auth: str, index: int, key: str = "") -> tuple[int, str]:
    try:
        extra = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
        response = Client().post("/listen/patients", json.dumps({"id": index, "name": {"family": f"F{index}"}}),
                                 content_type="application/json", HTTP_AUTHORIZATION=auth, **extra)
        return response.status_code, response.headers.get("X-Message-Id", "")
    finally:
        connection.close()  # this thread's own connection


def test_concurrent_requests_are_all_stored_and_each_answer_names_its_own_row(user, async_flow):
    auth = f"Bearer {token_for(user)}"
    batches = []
    real_write = writer.GroupWriter._write

    def spy(self, batch):
        batches.append(len(batch))
        return real_write(self, batch)

    with mock.patch.object(writer.GroupWriter, "_write", spy), ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda i: _push(auth, i), range(120)))
    assert [status for status, _ in answers] == [202] * 120
    ids = {mid for _, mid in answers}
    assert len(ids) == 120
    stored = {str(pk) for pk in Message.objects.values_list("pk", flat=True)}
    assert stored == ids
    assert sum(batches) == 120  # every row went through the writer
    bodies = sorted(json.loads(m.read_body())["id"] for m in Message.objects.all())
    assert bodies == list(range(120))


def test_a_duplicate_key_in_a_batch_fails_only_its_own_request(user, async_flow):
    auth = f"Bearer {token_for(user)}"
    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(lambda i: _push(auth, i, key="same" if i % 3 == 0 else ""), range(36)))
    assert {status for status, _ in answers} == {202}
    keyed = {mid for i, (_, mid) in enumerate(answers) if i % 3 == 0}
    assert len(keyed) == 1  # every duplicate got the first receipt
    assert Message.objects.filter(idempotency_key="same").count() == 1
    assert Message.objects.count() == 24 + 1


def test_a_store_that_fails_answers_503_and_keeps_nothing(user, async_flow):
    auth = f"Bearer {token_for(user)}"
    down = OperationalError("disk I/O error")
    with mock.patch.object(writer, "insert_messages", side_effect=down), \
            mock.patch.object(writer, "store_in_one_statement", side_effect=down), \
            mock.patch.object(Message, "save", side_effect=down):
        status, _ = _push(auth, 1)
    assert status == 503
    assert Message.objects.count() == 0
    assert _push(auth, 2)[0] == 202  # the writer carries on after a failed batch


@pytest.fixture(params=["copy", "one statement"])
def batch_insert(request):
    """The two ways a batch is inserted: COPY (any size, in a transaction) and, on PostgreSQL, one
    self-committing multi-row INSERT that also notifies the dispatchers."""
    if request.param == "copy":
        return writer.insert_messages
    if connection.vendor != "postgresql":
        pytest.skip("one self-committing statement is PostgreSQL's")

    def at_once(messages):
        assert writer.store_in_one_statement(messages)

    return at_once


def test_one_statement_is_not_used_inside_a_transaction_or_past_its_size(user):
    listener = Listener.objects.create(owner=user, name="x", path="x")
    with transaction.atomic():
        assert not writer.store_in_one_statement([Message.fresh(method="POST", listener_id=listener.pk)])
    many = [Message.fresh(method="POST", listener_id=listener.pk) for _ in range(writer.ONE_STATEMENT_ROWS + 1)]
    assert not writer.store_in_one_statement(many)
    assert Message.objects.count() == 0


def test_the_batch_insert_writes_what_the_orm_writes(user, batch_insert):
    listener = Listener.objects.create(owner=user, name="x", path="x")

    def message(key: str, body: bytes) -> Message:
        m = Message(listener=listener, owner=user, method="POST", headers={"Accept": "ü"}, content_type="application/json",
                    idempotency_key=key)
        m.store_body(body)
        return m

    batch, binary, alone = message("a", b'{"x": 1}'), message("b", b"\x00\xff"), message("c", b'{"x": 1}')
    batch_insert([batch, binary])
    alone.save(force_insert=True)
    stored_batch, stored_binary, stored_alone = (Message.objects.get(pk=m.pk) for m in (batch, binary, alone))
    skip = ("idempotency_key", "received_at")
    assert {k: v for k, v in model_to_dict(stored_batch).items() if k not in skip} == \
        {k: v for k, v in model_to_dict(stored_alone).items() if k not in skip}
    assert stored_batch.received_at is not None and stored_batch.headers == {"Accept": "ü"}
    assert stored_binary.read_body() == b"\x00\xff" and stored_batch.read_body() == b'{"x": 1}'


def test_a_fresh_message_has_the_defaults_of_one_built_by_keyword(user):
    listener = Listener.objects.create(owner=user, name="x", path="x")
    fresh, keyword = Message.fresh(method="POST", path="/listen/x"), Message(method="POST", path="/listen/x")
    fresh.listener = keyword.listener = listener
    varying = ("id", "received_at", "_state")
    assert {k: v for k, v in vars(fresh).items() if k not in varying} == \
        {k: v for k, v in vars(keyword).items() if k not in varying}
    assert fresh.pk != keyword.pk and fresh.headers is not keyword.headers  # callables give new values
    with pytest.raises(TypeError, match="nonsense"):
        Message.fresh(nonsense=1)


def test_a_queued_message_batch_inserted_reads_back_field_for_field(user, batch_insert):
    """Dates, a UUID foreign key and the status of an accepted message survive the batch INSERT."""
    listener = Listener.objects.create(owner=user, name="x", path="x")
    original = Message.objects.create(listener=listener, owner=user, method="POST", path="/listen/x")
    message = Message.fresh(method="POST", path="/listen/x", status=Message.Status.QUEUED, attempts=2,
                            response_status=202, resubmitted_from_id=original.pk)
    message.listener, message.owner, message.user = listener, user, user
    message.enqueued_at = message.received_at
    message.store_body(b"MSH|^~\\&|LAB")
    batch_insert([message])
    stored = Message.objects.get(pk=message.pk)
    for field in Message._meta.concrete_fields:
        assert getattr(stored, field.attname) == getattr(message, field.attname), field.name

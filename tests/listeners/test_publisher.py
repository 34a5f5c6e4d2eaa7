"""The background publisher: a burst goes to the broker in few publishes, each id exactly once;
a message after a quiet spell goes at once; a broker failure leaves ids to the sweeper."""
import threading
import time

from listeners import dispatch


def recording(monkeypatch, answer: bool = True):
    published, lock = [], threading.Lock()

    def publish_many(ids):
        with lock:
            published.append((time.monotonic(), list(ids)))
        return answer

    monkeypatch.setattr(dispatch, "publish_many", publish_many)
    return published


def wait_for(condition, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.005)


def test_a_burst_is_published_in_few_batches_with_every_id_once(monkeypatch):
    published = recording(monkeypatch)
    publisher = dispatch.BackgroundPublisher()
    ids = [f"m{i}" for i in range(500)]
    for mid in ids:
        publisher.submit(mid)
        time.sleep(0.0002)  # ~5,000 a second, as under load
    wait_for(lambda: sum(len(batch) for _, batch in published) == len(ids))
    assert sorted(mid for _, batch in published for mid in batch) == sorted(ids)
    assert len(published) < len(ids) / 5
    gaps = [later - earlier for (earlier, _), (later, _) in zip(published, published[1:], strict=False)]
    assert min(gaps) >= dispatch.PUBLISH_INTERVAL_SECONDS * 0.9  # spaced while busy, so batches gather
    assert max(len(batch) for _, batch in published) <= dispatch.PUBLISH_BATCH


def test_a_message_after_a_quiet_spell_is_published_at_once(monkeypatch):
    published = recording(monkeypatch)
    publisher = dispatch.BackgroundPublisher()
    publisher.submit("first")
    wait_for(lambda: len(published) == 1)
    time.sleep(dispatch.PUBLISH_INTERVAL_SECONDS * 3)
    sent = time.monotonic()
    publisher.submit("later")
    wait_for(lambda: len(published) == 2)
    assert published[1][1] == ["later"]
    assert published[1][0] - sent < dispatch.PUBLISH_INTERVAL_SECONDS


def test_a_failed_publish_pauses_the_broker_and_leaves_ids_to_the_sweeper(monkeypatch):
    published = recording(monkeypatch, answer=False)
    publisher = dispatch.BackgroundPublisher()
    publisher.submit("a")
    wait_for(lambda: len(published) == 1)
    publisher.submit("b")  # within the pause: dropped here, published by the sweeper later
    time.sleep(0.1)
    assert [batch for _, batch in published] == [["a"]]

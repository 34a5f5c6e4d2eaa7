"""A test payload sent from the listener's page: kept and run exactly like one that came over
HTTP (format check at the door, then queued for the flow), on behalf of a signed-in user who
may push to the listener. The page links to the message it made."""
from __future__ import annotations

from django.utils import timezone

from formats.codecs import CodecError

from .models import Listener, Message
from .services import accept_message, record_rejection


class SampleRefused(Exception):
    """The user may not push to this listener."""


def push_sample(listener: Listener, user, data: bytes, content_type: str) -> Message:
    """Store `data` as a message of `listener` (rejected with the reason when its format
    refuses it) and queue it for the flow. Returns the message."""
    if not listener.user_may_push(user):
        raise SampleRefused(f"user {user.get_username()!r} may not push to this listener")
    message = Message(
        method="POST", path=f"/listen/{listener.path}"[:300], user=user, received_at=timezone.now(),
        headers={"Content-Type": content_type, "X-Pushflow-Sample": "sent from the listener page"},
        content_type=content_type.split(";")[0].strip().lower()[:200], remote_addr="",
    )
    if listener.format is not None:
        try:
            listener.format.validate_payload(data)
        except CodecError as exc:
            record_rejection(listener, message, 422, f"payload is not valid {listener.format.kind}: {exc}", data)
            return message
    return accept_message(listener, message, data, queue=True)

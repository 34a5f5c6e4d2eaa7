"""WSGI entry point (run on a thread pool under uvicorn by config/asgi.py).

`/listen/` requests take a lean path: Django's request object and the ingest view,
wrapped only in the security middleware (HTTPS redirect, HSTS, content-type and
referrer headers). No URL resolving, no session, CSRF, user or message middleware,
no request signals: a pushed payload uses none of them, and a profile of the
ingest path showed them costing about as much as the view's own work. Everything
else goes through the full stack. A plain push can be answered before it reaches a thread
at all (`answer_on_loop`, for config/asgi.py; see listeners/loop_ingest.py), with the same
security headers.

Once the application is loaded, the objects it made are moved out of the garbage
collector's view (`gc.freeze`): they live as long as the process, and every full
collection walked them again under load. Request threads hand the GIL on after 0.5 ms
instead of 5 ms: a thread woken by its commit (ingest, sync runs) no longer waits behind
a busy one (sync round trip p99 46 -> 34 ms in bench/sync_roundtrip.py).
"""
import gc
import logging
import os
import sys

from django.core.exceptions import SuspiciousOperation
from django.core.handlers.wsgi import WSGIRequest
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.http import HttpResponse

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

LEAN_PREFIX = "/listen/"
log = logging.getLogger("django.request")

_full = get_wsgi_application()


class ListenerApp:
    """The /listen/ route: the ingest view behind the security middleware, nothing else."""

    def __init__(self):
        from django.conf import settings
        from django.middleware.security import SecurityMiddleware

        from listeners import loop_ingest
        from listeners.views import fault_response, ingest

        self.security = SecurityMiddleware(lambda request: None) if (
            "django.middleware.security.SecurityMiddleware" in settings.MIDDLEWARE) else None
        self.ingest = ingest
        self.loop_ingest = loop_ingest
        self.fault_response = fault_response
        self._secured: dict[bool, list[tuple[bytes, bytes]]] = {}

    def __call__(self, environ, start_response):
        try:
            response = self.respond(WSGIRequest(environ), environ["PATH_INFO"][len(LEAN_PREFIX):])
        finally:
            # What Django's request_finished signal does for a request: drop a database
            # connection past its age or broken (after an outage), so the next one reconnects.
            close_old_connections()
        # As CommonMiddleware does on the full stack: simple clients (devices, HL7 gateways)
        # expect a Content-Length rather than a chunked answer.
        if not response.streaming and not response.has_header("Content-Length"):
            response.headers["Content-Length"] = str(len(response.content))
        start_response(f"{response.status_code} {response.reason_phrase}", list(response.items()))
        if response.streaming:
            return response
        return [response.content]  # not the response itself: its close() would send request_finished

    async def answer_on_loop(self, environ: dict, data: bytes) -> tuple[int, list, bytes] | None:
        """The answer (status, header list, body) to a push accepted on the event loop
        (listeners/loop_ingest.py), its body `data` read whole; None when the push is for a
        thread: nothing was changed then."""
        path = environ["PATH_INFO"][len(LEAN_PREFIX):]
        try:
            request = WSGIRequest(environ)
            if self.security is not None and self.security.process_request(request) is not None:
                return None  # a redirect to HTTPS: the thread answers it
            message = self.loop_ingest.admit(request, path, data)
        except Exception:  # noqa: BLE001 — e.g. a Host not allowed: the thread answers it as the view does
            log.debug("a push to %s goes to a thread", environ["PATH_INFO"], exc_info=True)
            return None
        if message is None:
            return None
        try:
            failure = await self.loop_ingest.store(message)
            if failure is None:
                return self.loop_ingest.accepted_answer(request, message, self._security_headers(request))
        except Exception:  # as in respond(): a bug
            log.exception("internal error on %s", request.path)
            failure = self.fault_response(500, "internal error; the payload may not have been kept, retry later")
        response = self.security.process_response(request, failure) if self.security else failure
        return response.status_code, _header_list(response), response.content

    def _security_headers(self, request) -> list[tuple[bytes, bytes]]:
        """The headers the security middleware adds to an answer of the ingest view, worked out once:
        they depend on the settings it read when it started and on whether the request is HTTPS."""
        if self.security is None:
            return []
        secure = request.is_secure()
        headers = self._secured.get(secure)
        if headers is None:
            sample = self.security.process_response(request, HttpResponse(content_type="application/json"))
            headers = [h for h in _header_list(sample) if h[0] not in (b"content-type", b"content-length")]
            self._secured[secure] = headers
        return headers

    def respond(self, request, path: str):
        try:
            response = self.security.process_request(request) if self.security else None
            if response is None:
                response = self.ingest(request, path)
        except SuspiciousOperation as exc:  # e.g. a Host header not in ALLOWED_HOSTS
            logging.getLogger(f"django.security.{exc.__class__.__name__}").warning("%s", exc)
            return self.fault_response(400, "bad request: " + str(exc)[:200])
        except Exception:  # the ingest view answers every refusal itself; this is a bug
            log.exception("internal error on %s", request.path)
            return self.fault_response(500, "internal error; the payload may not have been kept, retry later")
        return self.security.process_response(request, response) if self.security else response


def _header_list(response: HttpResponse) -> list[tuple[bytes, bytes]]:
    """A Django response's headers as an ASGI server sends them, Content-Length included."""
    headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in response.items()]
    headers.append((b"content-length", str(len(response.content)).encode()))
    return headers


_lean = ListenerApp()
answer_on_loop = _lean.answer_on_loop


def application(environ, start_response):
    if environ.get("PATH_INFO", "").startswith(LEAN_PREFIX):
        return _lean(environ, start_response)
    return _full(environ, start_response)


gc.collect()
gc.freeze()
sys.setswitchinterval(0.0005)

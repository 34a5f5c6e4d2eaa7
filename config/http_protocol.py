"""The web server's HTTP/1.1 protocol: uvicorn's httptools protocol with these changes, so that
a listener never stores a payload other than the one its caller sent, a request's head is
bounded in size and time, and a caller that half-closes its connection still gets its answer.

- Bytes past a body's Content-Length that do not start a pipelined request make the parser
  fail on the "next request". uvicorn would answer that with its own 400 and close, while
  the request before it (its body cut at the declared length) runs on unaware and may be
  stored. Here, while that request has not answered yet, it is marked instead
  (scope[SURPLUS]): `listeners.body` refuses it with a 400 that says why, and the
  connection closes after that answer. A parser failure inside a body (a malformed chunk)
  ends the body as incomplete (scope[TRUNCATED]).
- A request head (request line and headers) may not grow past MAX_HEAD_BYTES: uvicorn sets
  no bound (a 50 MB header was parsed and answered), gunicorn's was 100 fields of 8 KB. The
  count is of bytes received while a head is incomplete, so it bounds memory before the
  parser has buffered a whole header; past it the answer is a 431 and the connection closes.
- A request head must arrive whole within PUSHFLOW_BODY_READ_TIMEOUT_SECONDS of its first byte
  (or of the connection, for a client that sends nothing): uvicorn waits for ever, so a client
  could hold connections open a byte at a time. Past it the answer is a 408 and the connection
  closes. (Between requests uvicorn's own keep-alive timeout closes an idle connection.)
- A client that shuts down its sending side (many HL7 and device clients do, after the
  request) would have the connection closed under its answer. The connection stays open
  for the answer, and a body the shutdown cut short is marked incomplete (scope[TRUNCATED]).

Only attributes of uvicorn's request cycle are touched (pinned version in requirements.txt);
tests/e2e exercise each case against the running server.
"""
from __future__ import annotations

from django.conf import settings
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

SURPLUS = "pushflow.surplus"
TRUNCATED = "pushflow.truncated"
MAX_HEAD_BYTES = 1024 * 1024


def _fault(status_line: bytes, reason: str) -> bytes:
    body = b'{"status": %s, "error": "%s"}' % (status_line.split()[0], reason.encode())
    return (b"HTTP/1.1 %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n%s"
            % (status_line, len(body), body))


HEAD_TOO_LARGE = _fault(b"431 Request Header Fields Too Large", "the request line and headers are too large")
HEAD_TIMED_OUT = _fault(b"408 Request Timeout", "the request line and headers stopped arriving before they were complete")


class ListenerSafeProtocol(HttpToolsProtocol):
    _head_bytes = 0
    _awaiting_head = True
    _head_timer = None

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._start_head_timer()

    def connection_lost(self, exc) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._awaiting_head:
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                self._refuse(HEAD_TOO_LARGE)
                return
            if self._head_timer is None:
                self._start_head_timer()
        super().data_received(data)

    def on_headers_complete(self) -> None:
        self._awaiting_head, self._head_bytes = False, 0
        self._stop_head_timer()
        super().on_headers_complete()

    def _start_head_timer(self) -> None:
        # Read here, not at import: uvicorn imports this class before the application sets Django up.
        self._head_timer = self.loop.call_later(settings.PUSHFLOW_BODY_READ_TIMEOUT_SECONDS, self._head_timed_out)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._awaiting_head and not self.transport.is_closing() and (self.cycle is None or self.cycle.response_complete):
            self._refuse(HEAD_TIMED_OUT)

    def _refuse(self, answer: bytes) -> None:
        self._stop_head_timer()
        self.transport.write(answer)
        self.transport.close()

    def on_message_complete(self) -> None:
        self._awaiting_head = True
        super().on_message_complete()

    def send_400_response(self, msg: str) -> None:
        # Called by data_received when the parser fails. A request still waiting for its answer
        # hears of it through its scope and answers itself.
        cycle = self.cycle
        if cycle is None or cycle.response_started or cycle.response_complete:
            super().send_400_response(msg)
            return
        if cycle.more_body:
            _end_incomplete(cycle)
        else:
            cycle.scope[SURPLUS] = True
        cycle.keep_alive = False
        self.flow.pause_reading()  # the parser is spent: nothing more is read from this connection

    def eof_received(self) -> bool | None:
        cycle = self.cycle
        if cycle is None or cycle.response_complete:
            return None  # nothing to answer: the transport closes
        if cycle.more_body:
            _end_incomplete(cycle)
        cycle.keep_alive = False
        return True  # keep the connection open for the answer; it closes after that


def _end_incomplete(cycle) -> None:
    cycle.scope[TRUNCATED] = True
    cycle.more_body = False
    cycle.message_event.set()

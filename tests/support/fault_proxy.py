"""A fault-injecting HTTP proxy for tests: the real client talks to it, it talks to a stand-in, and in between
it fails on command.

It sits in front of an upstream (fake-gcs-server or the Vertex stand-in), forwards each request unchanged
while healthy, and on command:

* ``fail(status, times=N)``: answers N requests itself with ``status`` in Google's JSON error shape and a
  ``Retry-After`` header (503 and 429 storms, or a 412), without forwarding them;
* ``reset_mid_body(times=N, side=...)``: ``side="request"`` reads half of the request body, forwards that half
  to the upstream and hangs up on it (it sees its client vanish mid-upload), and resets the client's
  connection (TCP RST: "connection reset by peer");
  ``side="response"`` forwards the whole request (the upstream acts on it), relays the status, the headers
  and half of the answer's body, and resets the client's connection (the reply is lost, the write is not);
* ``slow(seconds)``: holds every request that long before forwarding it (it is still forwarded if the client
  has given up meanwhile: a slow server finishes what it got), unless ``drop_held()`` lets go of it first;
* ``throttle(rate)``: reads every request body at ``rate`` bytes a second (a slow but healthy line: each body
  arrives whole, late), then forwards it;
* ``stall(after=N)``: forwards the next N requests, then holds every later one without reading its body (a
  connection that stopped moving mid-upload), until ``drop_held()``;
* ``down()``: stops listening and cuts every open connection, so connecting is refused (ECONNREFUSED), the way
  an unreachable endpoint answers;
* ``heal()``: back to a plain, listening proxy on the same port.

Each fault can be narrowed to requests whose path contains ``on`` (e.g. ``"/upload/"``); ``times=None`` lasts
until ``heal()``. The upstream's own address in JSON bodies (``selfLink``, ``mediaLink``) and in ``Location``
headers is rewritten to the proxy's, or a client following a ``mediaLink`` would walk around the faults.
``requests`` logs what happened to every request: ``forwarded``, a status, ``reset``, ``slow``, ``throttled``,
``stalled``.

Standard library only, in the style of ``gcs_iam_proxy.py`` and ``vertex_standin.py``.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import struct
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from typing import Any, NamedTuple

from tests.support.http_forward import (
    ForwardingHandler,
    Headers,
    RequestBody,
    Serving,
    Upstream,
    end_to_end,
    serve,
    with_json_rewritten,
    with_location_rewritten,
)

# What Google answers with each status: the JSON API's ``reason`` (Cloud Storage reads ``errors[0].reason``)
# and the canonical ``status`` (newer APIs such as Vertex), with Cloud Storage's own message texts
# (https://cloud.google.com/storage/docs/json_api/v1/status-codes).
_GOOGLE_ERRORS: dict[int, tuple[str, str, str]] = {
    412: (
        "conditionNotMet",
        "FAILED_PRECONDITION",
        "At least one of the pre-conditions you specified did not hold.",
    ),
    429: (
        "rateLimitExceeded",
        "RESOURCE_EXHAUSTED",
        "The rate of change requests to the object exceeds the rate limit. Please reduce the rate of create, "
        "update, and delete requests.",
    ),
    500: ("backendError", "INTERNAL", "We encountered an internal error. Please try again."),
    502: ("backendError", "UNAVAILABLE", "Bad Gateway"),
    503: ("backendError", "UNAVAILABLE", "We encountered an internal error. Please try again."),
    504: ("backendError", "DEADLINE_EXCEEDED", "Gateway Timeout"),
}


def google_error_body(status: int) -> dict[str, Any]:
    """``{"error": {...}}`` as Google fronts answer: ``errors`` for Cloud Storage, ``status`` for gRPC-style APIs."""
    reason, canonical, message = _GOOGLE_ERRORS.get(
        status, ("error", "UNKNOWN", http.client.responses.get(status, "Error"))
    )
    return {
        "error": {
            "code": status,
            "message": message,
            "errors": [{"message": message, "domain": "global", "reason": reason}],
            "status": canonical,
        }
    }


class ProxyRecord(NamedTuple):
    """What the proxy did with one request: ``what`` is "forwarded", "slow", "reset" or the status it answered."""

    method: str
    path: str
    what: str


@dataclass
class _Fault:
    kind: str  # "fail", "reset", "slow", "throttle" or "stall"
    on: str | None
    times: int | None  # None: until heal()
    status: int = 0
    retry_after: int = 1
    side: str = "request"
    seconds: float = 0.0
    rate: float = 0.0  # bytes a second, for "throttle"
    after: int = 0  # requests still let through, for "stall"

    def applies(self, path: str) -> bool:
        return (self.on is None or self.on in path) and (self.times is None or self.times > 0)


class FaultProxy:
    """The faults in force, the request log, and the proxy's ``endpoint`` (http://127.0.0.1:PORT)."""

    def __init__(self, upstream_endpoint: str) -> None:
        self._upstream = Upstream(upstream_endpoint)
        self.upstream_endpoint = self._upstream.endpoint
        self.endpoint = ""
        self._lock = threading.Lock()
        self._faults: list[_Fault] = []
        self._connections: set[socket.socket] = set()
        self._serving: Serving | None = None
        self._port = 0
        self._busy = 0  # requests being handled (a slow one may still be on its way upstream)
        self._idle = threading.Condition(self._lock)
        self._drop = threading.Event()  # set by drop_held(): requests held by slow() end, unforwarded
        self.requests: list[ProxyRecord] = []

    # --- commands ---

    def fail(
        self, status: int, times: int | None = 1, *, on: str | None = None, retry_after: int = 1
    ) -> None:
        """Answer the next ``times`` requests (whose path contains ``on``) with ``status`` and Retry-After."""
        self._add(_Fault("fail", on, times, status=status, retry_after=retry_after))

    def reset_mid_body(self, times: int | None = 1, *, on: str | None = None, side: str = "request") -> None:
        """Cut the next ``times`` requests halfway through the request body, or the response's (``side``)."""
        if side not in ("request", "response"):
            raise ValueError(f"side must be 'request' or 'response', got {side!r}")
        self._add(_Fault("reset", on, times, side=side))

    def slow(self, seconds: float, *, on: str | None = None) -> None:
        """Hold every request (whose path contains ``on``) ``seconds`` before forwarding it, until heal()."""
        self._add(_Fault("slow", on, None, seconds=seconds))

    def throttle(self, rate: float, *, on: str | None = None) -> None:
        """Read each request body (whose path contains ``on``) at ``rate`` bytes a second, until heal()."""
        self._add(_Fault("throttle", on, None, rate=rate))

    def stall(self, *, after: int = 0, on: str | None = None) -> None:
        """Forward ``after`` requests (whose path contains ``on``), then hold each later one unread."""
        self._add(_Fault("stall", on, None, after=after))

    def down(self) -> None:
        """Refuse connections: stop listening and cut the open ones (keep-alive sockets would still work)."""
        serving = self._serving
        self._serving = None
        if serving is not None:
            serving.stop()
        with self._lock:
            connections = list(self._connections)
        for sock in connections:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def heal(self) -> None:
        """No faults any more, and listening (on the same port) if down()."""
        with self._lock:
            self._faults.clear()
        if self._serving is None:
            self._listen()

    def wait_idle(self, timeout: float = 30) -> None:
        """Wait until no request is being handled: a test's slow requests must not reach a later test."""
        with self._idle:
            if not self._idle.wait_for(lambda: self._busy == 0, timeout):
                raise TimeoutError(f"the fault proxy still handles {self._busy} request(s) after {timeout} s")

    def drop_held(self, timeout: float = 30) -> None:
        """End the requests slow() still holds without forwarding them, then wait until none is handled.

        For the end of a test: what it held must not land in a later test's stand-in, and waiting the hold
        out (up to ``seconds`` of slow()) would only add to the suite's time.
        """
        self._drop.set()
        try:
            self.wait_idle(timeout)
        finally:
            self._drop.clear()

    def clear_log(self) -> None:
        with self._lock:
            self.requests = []

    @property
    def is_down(self) -> bool:
        return self._serving is None

    # --- internals ---

    def _add(self, fault: _Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def _take_fault(self, path: str) -> _Fault | None:
        """The first fault in force for ``path``, one of its ``times`` used up."""
        with self._lock:
            for fault in self._faults:
                if fault.applies(path):
                    if fault.times is not None:
                        fault.times -= 1
                    return fault
        return None

    def _record(self, method: str, path: str, what: str) -> None:
        with self._lock:
            self.requests.append(ProxyRecord(method, path, what))

    def _listen(self) -> None:
        self._serving = serve(
            _make_handler(self), name="fault-proxy", port=self._port, server_class=_QuietServer
        )
        self._port = self._serving.port
        self.endpoint = self._serving.endpoint

    def upstream_connection(self) -> http.client.HTTPConnection:
        return self._upstream.connection()


class _QuietServer(ThreadingHTTPServer):
    """Connections the proxy resets on purpose end in socket errors: not worth a traceback on stderr."""

    allow_reuse_address = True  # heal() listens again on the port down() closed

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


# What the upstream answered: status, reason, end-to-end headers, the whole body.
_Answer = tuple[int, str, Headers, bytes]


def _reset(sock: socket.socket) -> None:
    """Close with a TCP RST (SO_LINGER 0) rather than an orderly FIN: the peer sees 'connection reset'."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()


def _make_handler(proxy: FaultProxy) -> type[ForwardingHandler]:
    class Handler(ForwardingHandler):
        """Applies the fault in force, if any, then forwards the request and relays the answer."""

        def setup(self) -> None:
            super().setup()
            with proxy._lock:
                proxy._connections.add(self.connection)

        def finish(self) -> None:
            with proxy._lock:
                proxy._connections.discard(self.connection)
            with contextlib.suppress(OSError, ValueError):
                super().finish()

        def _handle(self) -> None:
            with proxy._lock:
                proxy._busy += 1
            try:
                self._apply_fault_and_forward()
            finally:
                with proxy._idle:
                    proxy._busy -= 1
                    proxy._idle.notify_all()

        def _apply_fault_and_forward(self) -> None:
            method, path = self.command, urllib.parse.urlsplit(self.path).path
            fault = proxy._take_fault(path)
            if fault is None:
                proxy._record(method, path, "forwarded")
                self._relay(self._forward(self._read_body()))
            elif fault.kind == "fail":
                self._read_body()  # keeps the keep-alive connection in step
                proxy._record(method, path, str(fault.status))
                retry_after = {"Retry-After": str(fault.retry_after)}
                self.reply_json(fault.status, google_error_body(fault.status), retry_after)
            elif fault.kind == "slow":
                body = self._read_body()
                proxy._record(method, path, "slow")
                if proxy._drop.wait(fault.seconds):
                    self.close_connection = True  # the test is over: dropped, never forwarded
                    return
                self._relay(self._forward(body))
            elif fault.kind == "throttle":
                proxy._record(method, path, "throttled")
                self._relay(self._forward(self._read_slowly(fault.rate)))
            elif fault.kind == "stall":
                if self._let_through(fault):
                    proxy._record(method, path, "forwarded")
                    self._relay(self._forward(self._read_body()))
                    return
                proxy._record(method, path, "stalled")
                proxy._drop.wait()  # the body stays unread: the client's sending stops once buffers fill
                self.close_connection = True
            elif fault.side == "request":
                proxy._record(method, path, "reset")
                self._reset_mid_request()
            else:
                proxy._record(method, path, "reset")
                self._reset_mid_response(self._forward(self._read_body()))

        def _read_body(self) -> bytes:
            return RequestBody(self.rfile, self.headers).buffered()

        def _read_slowly(self, rate: float) -> bytes:
            """The body, read at about ``rate`` bytes a second (in pieces of a tenth of a second's worth)."""
            pieces, started, got = [], time.monotonic(), 0
            length = int(self.headers.get("Content-Length") or 0)
            step = max(1, int(rate / 10))
            while got < length:
                piece = self.rfile.read(min(step, length - got))
                if not piece:
                    break
                pieces.append(piece)
                got += len(piece)
                time.sleep(max(0.0, started + got / rate - time.monotonic()))
            return b"".join(pieces)

        def _let_through(self, fault: _Fault) -> bool:
            with proxy._lock:
                if fault.after > 0:
                    fault.after -= 1
                    return True
                return False

        def _upstream_request(self, content_length: int) -> http.client.HTTPConnection:
            """This request's line and headers sent to the upstream; the caller sends the body."""
            # No Accept-Encoding: identity answers, whose bodies can be rewritten. Bodies are relayed whole.
            conn = self.upstream_request(proxy._upstream, drop={"accept-encoding", "content-length"})
            conn.putheader("Content-Length", str(content_length))
            return conn

        def _forward(self, body: bytes) -> _Answer:
            conn = self._upstream_request(len(body))
            try:
                conn.endheaders(body or None)
                response = conn.getresponse()
                data = b"" if self.command == "HEAD" else response.read()
                return response.status, response.reason, end_to_end(response.getheaders()), data
            finally:
                conn.close()

        def _relay(self, answer: _Answer, *, half: bool = False) -> None:
            """The answer (only half its body if ``half``), the upstream's address made ours in Location and
            in JSON bodies (mediaLink, selfLink)."""
            status, reason, headers, data = answer
            upstream, ours = proxy.upstream_endpoint, proxy.endpoint
            headers = with_location_rewritten(headers, upstream, ours)
            data = with_json_rewritten(headers, data, upstream, ours)
            self.send_whole(status, reason, headers, data, upto=len(data) // 2 if half else None)

        def _reset_mid_request(self) -> None:
            """Half the body reaches the upstream, which then sees its client vanish; ours sees a reset."""
            length = int(self.headers.get("Content-Length") or 0)
            half = self.rfile.read(length // 2) if length else b""
            conn = self._upstream_request(length)
            try:
                conn.endheaders(half or None)
                # An orderly end (FIN) after the half: the upstream surely reads it, then meets the end.
                with contextlib.suppress(OSError, AttributeError):
                    conn.sock.shutdown(socket.SHUT_RDWR)
            finally:
                conn.close()
            self.close_connection = True
            _reset(self.connection)

        def _reset_mid_response(self, answer: _Answer) -> None:
            """The upstream did the work; the client gets the status, the headers, half the body, a reset."""
            self._relay(answer, half=True)
            self.wfile.flush()
            self.close_connection = True
            _reset(self.connection)

    return Handler


@contextlib.contextmanager
def running_fault_proxy(upstream_endpoint: str) -> Iterator[FaultProxy]:
    """Serve a fault proxy for ``upstream_endpoint`` on a free 127.0.0.1 port for the ``with`` block."""
    proxy = FaultProxy(upstream_endpoint)
    proxy._listen()
    try:
        yield proxy
    finally:
        proxy.down()

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
  has given up meanwhile: a slow server finishes what it got);
* ``down()``: stops listening and cuts every open connection, so connecting is refused (ECONNREFUSED), the way
  an unreachable endpoint answers;
* ``heal()``: back to a plain, listening proxy on the same port.

Each fault can be narrowed to requests whose path contains ``on`` (e.g. ``"/upload/"``); ``times=None`` lasts
until ``heal()``. The upstream's own address in JSON bodies (``selfLink``, ``mediaLink``) and in ``Location``
headers is rewritten to the proxy's, or a client following a ``mediaLink`` would walk around the faults.
``requests`` logs what happened to every request: ``forwarded``, a status, ``reset``, ``slow``.

Standard library only, in the style of ``gcs_iam_proxy.py`` and ``vertex_standin.py``.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import struct
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple

# RFC 9110 7.6.1: meaningful for one hop only. Content-Length is recomputed, bodies being relayed whole.
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "content-length",
    }
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
    kind: str  # "fail", "reset" or "slow"
    on: str | None
    times: int | None  # None: until heal()
    status: int = 0
    retry_after: int = 1
    side: str = "request"
    seconds: float = 0.0

    def applies(self, path: str) -> bool:
        return (self.on is None or self.on in path) and (self.times is None or self.times > 0)


class FaultProxy:
    """The faults in force, the request log, and the proxy's ``endpoint`` (http://127.0.0.1:PORT)."""

    def __init__(self, upstream_endpoint: str) -> None:
        self.upstream_endpoint = upstream_endpoint.rstrip("/")
        upstream = urllib.parse.urlsplit(self.upstream_endpoint)
        if upstream.scheme != "http" or not upstream.hostname:
            raise ValueError(f"upstream_endpoint must be http://HOST:PORT, got {upstream_endpoint!r}")
        self._upstream = (upstream.hostname, upstream.port or 80)
        self.endpoint = ""
        self._lock = threading.Lock()
        self._faults: list[_Fault] = []
        self._connections: set[socket.socket] = set()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._port = 0
        self._busy = 0  # requests being handled (a slow one may still be on its way upstream)
        self._idle = threading.Condition(self._lock)
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

    def down(self) -> None:
        """Refuse connections: stop listening and cut the open ones (keep-alive sockets would still work)."""
        server = self._server
        self._server = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        with self._lock:
            connections = list(self._connections)
        for sock in connections:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def heal(self) -> None:
        """No faults any more, and listening (on the same port) if down()."""
        with self._lock:
            self._faults.clear()
        if self._server is None:
            self._listen()

    def wait_idle(self, timeout: float = 30) -> None:
        """Wait until no request is being handled: a test's slow requests must not reach a later test."""
        with self._idle:
            if not self._idle.wait_for(lambda: self._busy == 0, timeout):
                raise TimeoutError(f"the fault proxy still handles {self._busy} request(s) after {timeout} s")

    def clear_log(self) -> None:
        with self._lock:
            self.requests = []

    @property
    def is_down(self) -> bool:
        return self._server is None

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
        server = _QuietServer(("127.0.0.1", self._port), _make_handler(self))
        server.daemon_threads = True
        self._port = server.server_address[1]
        self.endpoint = f"http://127.0.0.1:{self._port}"
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="fault-proxy", daemon=True)
        self._thread.start()

    def upstream_connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(*self._upstream, timeout=60)


class _QuietServer(ThreadingHTTPServer):
    """Connections the proxy resets on purpose end in socket errors: not worth a traceback on stderr."""

    allow_reuse_address = True  # heal() listens again on the port down() closed

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


def _reset(sock: socket.socket) -> None:
    """Close with a TCP RST (SO_LINGER 0) rather than an orderly FIN: the peer sees 'connection reset'."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()


def _make_handler(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        """Applies the fault in force, if any, then forwards the request and relays the answer."""

        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
            pass  # tests read proxy.requests instead

        def setup(self) -> None:
            super().setup()
            with proxy._lock:
                proxy._connections.add(self.connection)

        def finish(self) -> None:
            with proxy._lock:
                proxy._connections.discard(self.connection)
            with contextlib.suppress(OSError, ValueError):
                super().finish()

        def do_GET(self) -> None:
            self._handle()

        def do_HEAD(self) -> None:
            self._handle()

        def do_POST(self) -> None:
            self._handle()

        def do_PUT(self) -> None:
            self._handle()

        def do_PATCH(self) -> None:
            self._handle()

        def do_DELETE(self) -> None:
            self._handle()

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
                self._reply_error(fault.status, fault.retry_after)
            elif fault.kind == "slow":
                body = self._read_body()
                proxy._record(method, path, "slow")
                time.sleep(fault.seconds)
                self._relay(self._forward(body))
            elif fault.side == "request":
                proxy._record(method, path, "reset")
                self._reset_mid_request()
            else:
                proxy._record(method, path, "reset")
                self._reset_mid_response(self._forward(self._read_body()))

        def _read_body(self) -> bytes:
            if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                pieces = []
                while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                    pieces.append(self.rfile.read(size))
                    self.rfile.readline()
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(pieces)
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _upstream_request(self, content_length: int) -> http.client.HTTPConnection:
            """This request's line and headers sent to the upstream; the caller sends the body."""
            conn = proxy.upstream_connection()
            conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            dropped = _HOP_BY_HOP | {"host", "accept-encoding"}  # identity answers: bodies can be rewritten
            for name, value in self.headers.items():
                if name.lower() not in dropped:
                    conn.putheader(name, value)
            host, port = proxy._upstream
            conn.putheader("Host", f"{host}:{port}")
            conn.putheader("Content-Length", str(content_length))
            return conn

        def _forward(self, body: bytes) -> tuple[int, str, list[tuple[str, str]], bytes]:
            conn = self._upstream_request(len(body))
            try:
                conn.endheaders(body or None)
                response = conn.getresponse()
                data = b"" if self.command == "HEAD" else response.read()
                headers = [(k, v) for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP]
                return response.status, response.reason, headers, data
            finally:
                conn.close()

        def _rewritten(
            self, headers: list[tuple[str, str]], data: bytes
        ) -> tuple[list[tuple[str, str]], bytes]:
            """The upstream's address becomes ours in Location and in JSON bodies (mediaLink, selfLink)."""
            upstream, ours = proxy.upstream_endpoint, proxy.endpoint
            headers = [
                (k, v.replace(upstream, ours, 1) if k.lower() == "location" else v) for k, v in headers
            ]
            content_type = next((v for k, v in headers if k.lower() == "content-type"), "")
            encoded = any(k.lower() == "content-encoding" for k, _ in headers)
            if "json" in content_type.lower() and not encoded:
                data = data.replace(upstream.encode(), ours.encode())
            return headers, data

        def _relay(self, answer: tuple[int, str, list[tuple[str, str]], bytes]) -> None:
            status, reason, headers, data = answer
            headers, data = self._rewritten(headers, data)
            self.send_response_only(status, reason)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def _reply_error(self, status: int, retry_after: int) -> None:
            data = json.dumps(google_error_body(status)).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Retry-After", str(retry_after))
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

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

        def _reset_mid_response(self, answer: tuple[int, str, list[tuple[str, str]], bytes]) -> None:
            """The upstream did the work; the client gets the status, the headers, half the body, a reset."""
            status, reason, headers, data = answer
            headers, data = self._rewritten(headers, data)
            self.send_response_only(status, reason)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
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

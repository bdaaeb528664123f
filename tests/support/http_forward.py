"""HTTP forwarding and server plumbing shared by the test proxies (``fault_proxy.py``, ``gcs_iam_proxy.py``).

* ``Upstream``: the ``http://HOST:PORT`` a proxy forwards to, checked once, and connections to it;
* ``RequestBody``: a request's body (Content-Length or chunked), streamed on demand or buffered;
* ``ForwardingHandler``: a ``BaseHTTPRequestHandler`` whose every method goes to ``_handle()``, with helpers
  to send this request on to an upstream without its hop-by-hop headers and to relay or write answers;
* ``serve`` / ``running_server``: a ``ThreadingHTTPServer`` on 127.0.0.1 in a daemon thread, and its stop.

Standard library only.
"""

from __future__ import annotations

import contextlib
import gzip
import http.client
import json
import threading
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple

# RFC 9110 7.6.1 connection-specific headers: meaningful for one hop only, so never forwarded.
HOP_BY_HOP = frozenset(
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
    }
)
CHUNK = 64 * 1024

Headers = list[tuple[str, str]]


class Upstream:
    """Where a proxy forwards to: ``endpoint`` (``http://HOST:PORT``, no trailing slash), ``host``, ``port``."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint.rstrip("/")
        url = urllib.parse.urlsplit(self.endpoint)
        if url.scheme != "http" or not url.hostname:
            raise ValueError(f"upstream_endpoint must be http://HOST:PORT, got {endpoint!r}")
        self.host, self.port = url.hostname, url.port or 80

    def connection(self, timeout: float = 60) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)


class RequestBody:
    """The request body: streamed from the socket on demand, or buffered when its content must be read."""

    def __init__(self, rfile, headers) -> None:
        self._rfile = rfile
        self.chunked = "chunked" in (headers.get("Transfer-Encoding") or "").lower()
        self.length = None if self.chunked else int(headers.get("Content-Length") or 0)
        self._buffer: bytes | None = None

    def buffered(self) -> bytes:
        """Read the whole body now (it is still forwarded unchanged later)."""
        if self._buffer is None:
            self._buffer = b"".join(self._stream())
        return self._buffer

    def pieces(self) -> Iterator[bytes]:
        if self._buffer is not None:
            yield self._buffer
        else:
            yield from self._stream()

    def drain(self) -> None:
        """Consume an unwanted body so the keep-alive connection stays in step."""
        for _ in self.pieces():
            pass

    def send_to(self, conn: http.client.HTTPConnection) -> None:
        """Send the body on as it came: chunked again if it came chunked (the caller said so in the headers)."""
        for piece in self.pieces():
            if self.chunked:
                if piece:
                    conn.send(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            else:
                conn.send(piece)
        if self.chunked:
            conn.send(b"0\r\n\r\n")

    def _stream(self) -> Iterator[bytes]:
        if self.chunked:
            while True:
                size = int(self._rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self._rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return
                yield self._rfile.read(size)
                self._rfile.readline()  # CRLF after each chunk
        else:
            left = self.length or 0
            while left > 0:
                piece = self._rfile.read(min(CHUNK, left))
                if not piece:
                    return
                left -= len(piece)
                yield piece


def end_to_end(headers: Iterable[tuple[str, str]], also: Iterable[str] = ()) -> Headers:
    """``headers`` without the hop-by-hop ones (nor those named in ``also``, lower case)."""
    dropped = HOP_BY_HOP | set(also)
    return [(k, v) for k, v in headers if k.lower() not in dropped]


def with_location_rewritten(headers: Headers, upstream: str, ours: str) -> Headers:
    """The upstream's address in a ``Location`` header becomes ours (a client must not walk around the proxy)."""
    return [(k, v.replace(upstream, ours, 1) if k.lower() == "location" else v) for k, v in headers]


def with_json_rewritten(headers: Headers, data: bytes, upstream: str, ours: str) -> bytes:
    """A JSON body with the upstream's address (selfLink, mediaLink) made ours; gzip is undone and redone.

    Other bodies, and bodies in another content coding, are returned as they are.
    """
    content_type = next((v for k, v in headers if k.lower() == "content-type"), "")
    encoding = next((v for k, v in headers if k.lower() == "content-encoding"), "").strip().lower()
    if "json" not in content_type.lower() or encoding not in ("", "identity", "gzip"):
        return data
    text = gzip.decompress(data) if encoding == "gzip" else data
    text = text.replace(upstream.encode(), ours.encode())
    return gzip.compress(text) if encoding == "gzip" else text


class ForwardingHandler(BaseHTTPRequestHandler):
    """Every method goes to ``_handle()``; helpers forward the request and write or relay the answer."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass  # tests read the proxy's request log instead

    def _dispatch(self) -> None:
        self._handle()

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch

    def _handle(self) -> None:
        """Answer this request (``self.command``, ``self.path``, ``self.headers``): the subclass's part."""
        raise NotImplementedError

    def connection_listed(self) -> set[str]:
        """The headers this request's ``Connection`` header names: hop-by-hop as well (RFC 9110 7.6.1)."""
        return {h.strip().lower() for h in (self.headers.get("Connection") or "").split(",") if h.strip()}

    def upstream_request(self, upstream: Upstream, drop: Iterable[str] = ()) -> http.client.HTTPConnection:
        """This request's line and end-to-end headers (less ``drop``) sent to ``upstream``, Host naming it.

        The caller adds the body's framing header (Content-Length or Transfer-Encoding), ends the headers,
        sends the body and closes the connection.
        """
        conn = upstream.connection()
        try:
            conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for name, value in end_to_end(self.headers.items(), also={"host", *drop}):
                conn.putheader(name, value)
            conn.putheader("Host", f"{upstream.host}:{upstream.port}")
        except BaseException:
            conn.close()
            raise
        return conn

    def send_head(self, status: int, reason: str, headers: Iterable[tuple[str, str]]) -> None:
        """Status line and ``headers`` as given (the upstream's Date/Server are relayed, none added)."""
        self.send_response_only(status, reason)
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()

    def send_whole(
        self, status: int, reason: str, headers: Headers, data: bytes, *, upto: int | None = None
    ) -> None:
        """A buffered answer with its Content-Length; only ``data[:upto]`` is written when ``upto`` is given."""
        headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
        self.send_head(status, reason, [*headers, ("Content-Length", str(len(data)))])
        if self.command != "HEAD":
            self.wfile.write(data if upto is None else data[:upto])

    def stream_answer(self, response: http.client.HTTPResponse, headers: Headers, no_body: bool) -> None:
        """Relay the upstream's answer piece by piece: as it is framed, or chunked when it has no length."""
        if no_body:
            self.send_head(response.status, response.reason, headers)
            return
        length = response.getheader("Content-Length")
        if length is None:
            headers = [*headers, ("Transfer-Encoding", "chunked")]
        self.send_head(response.status, response.reason, headers)
        while piece := response.read(CHUNK):
            self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n" if length is None else piece)
        if length is None:
            self.wfile.write(b"0\r\n\r\n")

    def reply_json(self, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> None:
        """An answer of the proxy's own: ``payload`` as JSON, after ``headers``."""
        data = json.dumps(payload).encode()
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)


class Serving(NamedTuple):
    """A server answering on 127.0.0.1 from a daemon thread."""

    server: ThreadingHTTPServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def serve(
    handler_class: type[BaseHTTPRequestHandler],
    *,
    name: str,
    port: int = 0,
    server_class: type[ThreadingHTTPServer] = ThreadingHTTPServer,
) -> Serving:
    """Start ``server_class`` on 127.0.0.1:``port`` (0: a free one) in a daemon thread called ``name``."""
    server = server_class(("127.0.0.1", port), handler_class)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name=name, daemon=True)
    thread.start()
    return Serving(server, thread)


@contextlib.contextmanager
def running_server(
    handler_class: type[BaseHTTPRequestHandler], *, name: str = "http-forward"
) -> Iterator[Serving]:
    """``serve(handler_class)`` on a free port for the ``with`` block, stopped after it."""
    serving = serve(handler_class, name=name)
    try:
        yield serving
    finally:
        serving.stop()

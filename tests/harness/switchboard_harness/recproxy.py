"""A recording reverse proxy: forwards every HTTP request to one upstream and keeps a copy of each
exchange (request method, path, headers and body; response status, headers and body).

The Lambda end-to-end suite (tests/lambda/e2e) puts it between the gateway and LocalStack (the
gateway's AWS_ENDPOINT_URL points here), so the tests can read the STS and Lambda calls on the wire.
Standard library only; one thread per client connection; HTTP/1.1 keep-alive on both sides of the
client connection, one upstream connection per request; each answer goes back to the client in
one write with TCP_NODELAY, so that the proxy adds no delayed-ACK wait to the client's time.

    proxy = RecordingProxy("http://127.0.0.1:4566")
    proxy.start()            # proxy.url is http://127.0.0.1:<free port>
    ...
    proxy.exchanges()        # a snapshot, oldest first
    proxy.stop()

A test may hold back or drop answers: `proxy.on_answer(fault)` calls `fault(exchange)` after the
upstream answered and the exchange was recorded, before the answer goes back to the client; the
fault may sleep (the answer is held back that long) and returns False to drop the answer (the
connection is closed without one). faults.py builds such faults by operation (tests/fargate uses them too).

Run by hand (prints each exchange's summary; writes the whole exchanges as JSON lines to --out):

    python -m switchboard_harness.recproxy --upstream http://127.0.0.1:4566 [--listen 127.0.0.1:0] [--out wire.jsonl]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import http.client
import http.server
import json
import socket
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

# Headers that belong to one connection, not to the message (RFC 9110 7.6.1), plus the ones the
# proxy sets itself: the body is always forwarded whole with a Content-Length. Accept-Encoding is
# dropped so that the upstream answers uncompressed and the recorded bodies are readable.
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "expect",
    "content-length",
    "accept-encoding",
}


@dataclass
class Exchange:
    """One request and what the upstream answered (status 502 and `error` when it did not)."""

    seq: int
    started: float
    method: str
    path: str
    request_headers: list[tuple[str, str]]
    request_body: bytes
    status: int = 0
    response_headers: list[tuple[str, str]] = field(default_factory=list)
    response_body: bytes = b""
    error: str | None = None
    # Seconds from `started` (the request read from the client, a time.time()) to the upstream's
    # answer read whole (time.monotonic()): the upstream's time, not the relay back to the client.
    elapsed: float = 0.0

    @property
    def finished(self) -> float:
        """When the upstream's answer had been read, on `started`'s clock."""
        return self.started + self.elapsed

    def request_header(self, name: str) -> str | None:
        return _header(self.request_headers, name)

    def response_header(self, name: str) -> str | None:
        return _header(self.response_headers, name)

    def summary(self) -> str:
        what = self.error or f"{self.status}"
        return f"#{self.seq} {self.method} {self.path} -> {what} ({self.elapsed * 1000:.0f} ms)"

    def to_json(self) -> dict:
        def body(b: bytes) -> str:
            try:
                return b.decode("utf-8")
            except UnicodeDecodeError:
                return "base64:" + base64.b64encode(b).decode("ascii")

        return {
            "seq": self.seq,
            "started": self.started,
            "elapsed": self.elapsed,
            "method": self.method,
            "path": self.path,
            "request_headers": self.request_headers,
            "request_body": body(self.request_body),
            "status": self.status,
            "response_headers": self.response_headers,
            "response_body": body(self.response_body),
            "error": self.error,
        }


def _header(headers: list[tuple[str, str]], name: str) -> str | None:
    name = name.lower()
    for k, v in headers:
        if k.lower() == name:
            return v
    return None


class RecordingProxy:
    """Forwards to `upstream` (http://host:port) and records every exchange."""

    def __init__(self, upstream: str, listen: tuple[str, int] = ("127.0.0.1", 0), timeout: float = 120.0):
        parsed = urllib.parse.urlsplit(upstream)
        if parsed.scheme != "http" or not parsed.hostname:
            raise ValueError(f"upstream must be http://host[:port], not {upstream!r}")
        self.upstream_host = parsed.hostname
        self.upstream_port = parsed.port or 80
        self.timeout = timeout
        self._lock = threading.Lock()
        self._exchanges: list[Exchange] = []
        self._seq = 0
        self._on_exchange = None
        self._on_answer = None
        self._server = _Server(listen, _Handler, self)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> RecordingProxy:
        self._thread = threading.Thread(target=self._server.serve_forever, name="recproxy", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def exchanges(self) -> list[Exchange]:
        """Every exchange so far, oldest first (a copy of the list; the exchanges are shared)."""
        with self._lock:
            return list(self._exchanges)

    def write_jsonl(self, path: Path) -> None:
        """Every exchange so far to `path`, one JSON line each (`Exchange.to_json`)."""
        with open(path, "w", encoding="utf-8") as out:
            for exchange in self.exchanges():
                out.write(json.dumps(exchange.to_json()) + "\n")

    def on_exchange(self, callback) -> None:
        """Calls `callback(exchange)` after each exchange (from the proxy's threads)."""
        self._on_exchange = callback

    def on_answer(self, fault) -> None:
        """Calls `fault(exchange)` before each answer goes back (from the proxy's threads): it may
        sleep to hold the answer back, and returns False to drop it. None removes the fault."""
        self._on_answer = fault

    def _record(self, exchange: Exchange) -> None:
        with self._lock:
            self._exchanges.append(exchange)
        if self._on_exchange is not None:
            self._on_exchange(exchange)

    def _next_seq(self) -> int:
        with self._lock:
            self._seq += 1
            return self._seq


@contextlib.contextmanager
def recording(upstream: str, wire: Path) -> Iterator[RecordingProxy]:
    """A started proxy to `upstream`; at the end it is stopped and every exchange goes to `wire`
    (JSON lines; the emulators' throwaway credentials included: that is what was on the wire)."""
    proxy = RecordingProxy(upstream).start()
    try:
        yield proxy
    finally:
        proxy.stop()
        proxy.write_jsonl(wire)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, handler, proxy: RecordingProxy):
        self.proxy = proxy
        super().__init__(address, handler)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Small writes (a 100 Continue, an answer) go out at once, as an AWS endpoint's would.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass  # the exchanges are the log

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size_line = self.rfile.readline()
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    # Trailers, up to the empty line.
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()  # the CRLF after the chunk
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _forward(self) -> None:
        proxy = self.server.proxy
        body = self._read_body()
        exchange = Exchange(
            seq=proxy._next_seq(),
            started=time.time(),
            method=self.command,
            path=self.path,
            request_headers=list(self.headers.items()),
            request_body=body,
        )
        t0 = time.monotonic()
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        if body or self.command in ("POST", "PUT", "PATCH"):
            headers["Content-Length"] = str(len(body))
        try:
            upstream = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port, timeout=proxy.timeout)
            try:
                upstream.request(self.command, self.path, body=body, headers=headers)
                response = upstream.getresponse()
                exchange.status = response.status
                exchange.response_headers = list(response.getheaders())
                exchange.response_body = response.read()
            finally:
                upstream.close()
        except (OSError, http.client.HTTPException) as e:
            exchange.status = 502
            exchange.error = f"upstream {proxy.upstream_host}:{proxy.upstream_port}: {type(e).__name__}: {e}"
            exchange.response_body = exchange.error.encode()
            exchange.response_headers = [("Content-Type", "text/plain")]
        exchange.elapsed = time.monotonic() - t0
        proxy._record(exchange)
        fault = proxy._on_answer
        if fault is not None and not fault(exchange):
            self.close_connection = True
            return
        # The status line, the headers and the body in one write: written apart, the body waited
        # for the client's delayed ACK of the headers (Nagle), about 40 ms on some answers, which
        # the client then counted as its own time.
        reason = self.responses.get(exchange.status, ("",))[0]
        head = [f"{self.protocol_version} {exchange.status} {reason}\r\n"]
        head += [f"{k}: {v}\r\n" for k, v in exchange.response_headers if k.lower() not in HOP_BY_HOP]
        head.append(f"Content-Length: {len(exchange.response_body)}\r\n\r\n")
        message = "".join(head).encode("latin-1")
        if self.command != "HEAD":
            message += exchange.response_body
        try:
            self.wfile.write(message)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (a call past its deadline): the exchange is recorded anyway.
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = _forward


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--upstream", required=True, help="http://host:port to forward to")
    parser.add_argument("--listen", default="127.0.0.1:0", help="host:port (default: a free loopback port)")
    parser.add_argument("--out", help="append every exchange to this file as a JSON line")
    args = parser.parse_args()
    host, _, port = args.listen.rpartition(":")
    proxy = RecordingProxy(args.upstream, (host or "127.0.0.1", int(port)))
    out = open(args.out, "a", encoding="utf-8") if args.out else None  # noqa: SIM115 - lives as long as the proxy
    lock = threading.Lock()

    def show(exchange: Exchange) -> None:
        with lock:
            print(exchange.summary(), flush=True)
            if out is not None:
                out.write(json.dumps(exchange.to_json()) + "\n")
                out.flush()

    proxy.on_exchange(show)
    proxy.start()
    print(json.dumps({"listen": proxy.url, "upstream": args.upstream}), flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        proxy.stop()


if __name__ == "__main__":
    sys.exit(main())

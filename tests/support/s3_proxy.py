"""A fault-injecting HTTP proxy in front of the moto S3 endpoint, for tests.

Modes, changed while it runs: forward everything; answer the next N PUTs with 503
SlowDown (throttling); answer the next N PUTs with 403 AccessDenied; or go down after
N more PUTs (every later request has its connection dropped) until `restore`.
"""

from __future__ import annotations

import http.client
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

SLOW_DOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message></Error>"
)
ACCESS_DENIED = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code>'
    b"<Message>Access Denied</Message></Error>"
)


class FaultyS3:
    """Start with `FaultyS3(upstream_url)`; use `.url` as the S3 endpoint; `stop()` at the end."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.lock = threading.Lock()
        self.throttle_puts = 0
        self.deny_puts = 0
        self.reset_puts = 0  # drop the connection of the next N PUTs, then forward again
        self.reset = 0
        self.down_after_puts: int | None = None
        self.count_only: str | None = None  # count only PUTs whose path contains this
        self.down = False
        self.puts = 0
        self.throttled = 0
        self.denied = 0
        self.dropped = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                verdict = proxy._verdict(self.command, self.path)
                if verdict == "drop":
                    self.close_connection = True
                    self.connection.close()
                    return
                if verdict in ("throttle", "deny"):
                    status, payload = (503, SLOW_DOWN) if verdict == "throttle" else (403, ACCESS_DENIED)
                    self.send_response(status)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                conn = http.client.HTTPConnection(*proxy.upstream, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                headers["Host"] = f"{proxy.upstream[0]}:{proxy.upstream[1]}"
                conn.request(self.command, self.path, body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
                self.send_response(response.status)
                for key, value in response.getheaders():
                    if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                conn.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _verdict(self, method: str, path: str) -> str:
        with self.lock:
            if self.down:
                self.dropped += 1
                return "drop"
            if method != "PUT" or (self.count_only and self.count_only not in path):
                return "forward"
            if self.throttle_puts > 0:
                self.throttle_puts -= 1
                self.throttled += 1
                return "throttle"
            if self.reset_puts > 0:
                self.reset_puts -= 1
                self.reset += 1
                return "drop"
            if self.deny_puts > 0:
                self.deny_puts -= 1
                self.denied += 1
                return "deny"
            self.puts += 1
            if self.down_after_puts is not None and self.puts > self.down_after_puts:
                self.down = True
                self.dropped += 1
                return "drop"
            return "forward"

    def restore(self) -> None:
        """Forward everything again."""
        with self.lock:
            self.down = False
            self.down_after_puts = None
            self.throttle_puts = self.deny_puts = self.reset_puts = 0

    def stop(self) -> None:
        """Shut the proxy down."""
        self.server.shutdown()
        self.server.server_close()

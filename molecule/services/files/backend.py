"""TEST BACKEND standing in for Dify's api (5001), web (3000) and plugin daemon (5002) behind the
gateway in the molecule `services` scenario. Every answer names the host that served it.

GET  /v1/sse  (any port): server-sent events - one event at once, the last after STREAM_PAUSE_S
GET  anything else: a JSON document of about 4 KiB (above gzip_min_length)
POST anything: reads the whole body and answers with its size
"""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORTS = {5001: "api", 3000: "web", 5002: "plugin_daemon"}
STREAM_PAUSE_S = 2.5
HOST = socket.gethostname()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _json(self, document: dict) -> None:
        body = json.dumps(document).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _describe(self) -> dict:
        return {"host": HOST, "service": PORTS[self.server.server_address[1]], "path": self.path,
                "hook_url": self.headers.get("Dify-Hook-Url")}

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        if self.path.endswith("/sse"):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b"data: " + json.dumps({"event": 1, "padding": "x" * 2048}).encode() + b"\n\n")
            self.wfile.flush()
            time.sleep(STREAM_PAUSE_S)
            self.wfile.write(b"data: " + json.dumps({"event": 2}).encode() + b"\n\n")
            self.wfile.flush()
            self.close_connection = True
            return
        document = self._describe()
        document["padding"] = ["dify"] * 1000
        self._json(document)

    def do_POST(self) -> None:  # noqa: N802
        remaining = int(self.headers.get("Content-Length") or 0)
        received = 0
        while remaining > 0:
            chunk = self.rfile.read(min(remaining, 1 << 20))
            if not chunk:
                break
            received += len(chunk)
            remaining -= len(chunk)
        document = self._describe()
        document["received"] = received
        self._json(document)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


def main() -> None:
    servers = [ThreadingHTTPServer(("0.0.0.0", port), Handler) for port in PORTS]
    for server in servers[1:]:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    servers[0].serve_forever()


if __name__ == "__main__":
    main()

"""Probes of the gateway for the molecule `services` verify, run on the gateway host against
http://127.0.0.1. Prints one JSON document with what it measured; verify asserts on it."""

from __future__ import annotations

import gzip
import http.client
import json
import sys
import time

GATEWAY = ("127.0.0.1", 80)


def request(method: str, path: str, headers: dict | None = None, body: bytes | None = None) -> tuple:
    conn = http.client.HTTPConnection(*GATEWAY, timeout=30)
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, dict((k.lower(), v) for k, v in response.getheaders()), data


def body_limit(below_mb: int, above_mb: int) -> dict:
    status, _headers, data = request("POST", "/v1/upload", {"Content-Type": "application/octet-stream"},
                                     b"\0" * (below_mb << 20))
    below = {"status": status, "received": json.loads(data)["received"] if status == 200 else None}
    # Above the limit nginx answers from the Content-Length alone, before any body is sent.
    conn = http.client.HTTPConnection(*GATEWAY, timeout=30)
    conn.putrequest("POST", "/v1/upload")
    conn.putheader("Content-Length", str(above_mb << 20))
    conn.endheaders()
    above = conn.getresponse().status
    conn.close()
    return {"below": below, "above_status": above}


def compression() -> dict:
    status, headers, data = request("GET", "/v1/json", {"Accept-Encoding": "gzip"})
    json_doc = json.loads(gzip.decompress(data) if headers.get("content-encoding") == "gzip" else data)
    sse_headers = request("GET", "/v1/sse", {"Accept-Encoding": "gzip"})[1]
    return {"json": {"status": status, "encoding": headers.get("content-encoding"), "host": json_doc["host"]},
            "sse": {"type": sse_headers.get("content-type"), "encoding": sse_headers.get("content-encoding")}}


def streaming() -> dict:
    conn = http.client.HTTPConnection(*GATEWAY, timeout=30)
    start = time.monotonic()
    conn.request("GET", "/v1/chat-messages/sse", headers={"Accept": "text/event-stream"})
    response = conn.getresponse()
    first = response.readline()
    first_at = time.monotonic() - start
    rest = response.read()
    end_at = time.monotonic() - start
    conn.close()
    return {"first_event": first.decode().strip()[:20], "first_at_s": round(first_at, 3),
            "end_at_s": round(end_at, 3), "events": 1 + rest.count(b"data: ")}


def burst(count: int) -> dict:
    statuses: dict = {}
    conn = http.client.HTTPConnection(*GATEWAY, timeout=30)
    for _request in range(count):
        conn.request("GET", "/console/api/ping")
        response = conn.getresponse()
        response.read()
        statuses[response.status] = statuses.get(response.status, 0) + 1
    conn.close()
    return {str(k): v for k, v in statuses.items()}


def balance(count: int) -> dict:
    hosts: dict = {}
    for path in ("/", "/e/hook"):
        for _request in range(count):
            data = request("GET", path)[2]
            doc = json.loads(data)
            key = "%s %s %s" % (path, doc["service"], doc["host"])
            hosts[key] = hosts.get(key, 0) + 1
    data = request("GET", "/e/hook")[2]
    return {"served": hosts, "hook_url": json.loads(data)["hook_url"]}


def main() -> None:
    limits = json.loads(sys.argv[1])
    result = {
        "body": body_limit(limits["below_mb"], limits["above_mb"]),
        "compression": compression(),
        "streaming": streaming(),
        "balance": balance(8),
    }
    # Last: the burst uses up the client's rate limit for a while.
    time.sleep(2)
    result["burst"] = burst(limits["burst_requests"])
    print(json.dumps(result))


if __name__ == "__main__":
    main()

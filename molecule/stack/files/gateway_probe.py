"""A client of the started single node, for the molecule `stack` verify: it talks to the gateway
as a browser or an API client would, from outside the host, and prints one JSON document of what
it saw; verify asserts on it.

usage: python3 gateway_probe.py HOST PORT ACCEPTED_MB REFUSED_MB RATE_BURST [BURST_REQUESTS]
  BURST_REQUESTS: how many requests the burst sends, 32 at a time, once the rate limiter's bucket has
  drained (default RATE_BURST x 3: beyond the burst, so that a low rate answers 429; RATE_BURST itself: within
  the planned burst, which nginx's `burst=... nodelay` must answer without one 429).
"""

from __future__ import annotations

import concurrent.futures
import http.client
import json
import sys
import time

HOST = sys.argv[1]
PORT = int(sys.argv[2])
ACCEPTED_MB = int(sys.argv[3])
REFUSED_MB = int(sys.argv[4])
BURST = int(sys.argv[5])
BURST_REQUESTS = int(sys.argv[6]) if len(sys.argv) > 6 else BURST * 3
API_ROUTES = ("/console/api/probe", "/api/probe", "/v1/probe", "/files/probe", "/mcp/probe", "/triggers/probe")
CODE = "import sys\nprint('hello from', sys.executable)\n"


def request(method: str, path: str, body: bytes | None = None, headers: dict | None = None,
            timeout: float = 60) -> tuple:
    conn = http.client.HTTPConnection(HOST, PORT, timeout=timeout)
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, dict((k.lower(), v) for k, v in response.getheaders()), data


def as_json(data: bytes) -> object:
    try:
        return json.loads(data)
    except ValueError:
        return data[:200].decode("utf-8", "replace")


def routes() -> dict:
    seen = {}
    for path in API_ROUTES + ("/", "/explore/apps", "/e/no-such-hook/x"):
        status, headers, data = request("GET", path)
        seen[path] = {"status": status, "type": headers.get("content-type", ""), "body": as_json(data)}
    return seen


def upload(megabytes: int) -> dict:
    status, _headers, data = request("POST", "/console/api/files/upload", b"u" * (megabytes << 20),
                                     {"Content-Type": "application/octet-stream"}, timeout=300)
    return {"status": status, "body": as_json(data)}


def too_large(megabytes: int) -> int:
    # nginx answers from the Content-Length alone, before the body is sent.
    conn = http.client.HTTPConnection(HOST, PORT, timeout=30)
    conn.putrequest("POST", "/console/api/files/upload")
    conn.putheader("Content-Length", str(megabytes << 20))
    conn.endheaders()
    status = conn.getresponse().status
    conn.close()
    return status


def workflow(mode: str) -> dict:
    body = json.dumps({"inputs": {"code": CODE}, "response_mode": mode}).encode()
    headers = {"Content-Type": "application/json"}
    if mode == "blocking":
        status, _headers, data = request("POST", "/v1/workflows/run", body, headers)
        return {"status": status, "body": as_json(data)}
    conn = http.client.HTTPConnection(HOST, PORT, timeout=60)
    conn.request("POST", "/v1/workflows/run", body=body, headers=headers)
    response = conn.getresponse()
    events = []
    buffer = b""
    while True:
        chunk = response.read1(65536)
        if not chunk:
            break
        buffer += chunk
        while b"\n\n" in buffer:
            raw, buffer = buffer.split(b"\n\n", 1)
            if raw.startswith(b"data: "):
                event = json.loads(raw[6:])
                events.append({"event": event.get("event"), "received": time.time(), "sent": event.get("sent_at"),
                               "stdout": (event.get("data") or {}).get("stdout")})
    conn.close()
    return {"status": response.status, "type": response.getheader("Content-Type"), "events": events}


def burst() -> dict:
    def one(_index: int) -> int:
        return request("GET", "/console/api/probe", timeout=30)[0]

    with concurrent.futures.ThreadPoolExecutor(max_workers=32) as pool:
        statuses = list(pool.map(one, range(BURST_REQUESTS)))
    return {status: statuses.count(status) for status in sorted(set(statuses))}


def main() -> None:
    result = {"health": request("GET", "/console/api/difyops-standin/status")[0]}
    result["status"] = as_json(request("GET", "/console/api/difyops-standin/status")[2])
    result["routes"] = routes()
    # The api container (its host name) behind each answer: two app hosts show two.
    result["balance"] = sorted({as_json(request("GET", "/console/api/probe")[2]).get("host") for _request in range(12)})
    result["task"] = as_json(request("POST", "/console/api/difyops-standin/task", b"{}",
                                     {"Content-Type": "application/json"})[2])
    result["blocking"] = workflow("blocking")
    result["streaming"] = workflow("streaming")
    result["upload_accepted"] = upload(ACCEPTED_MB)
    result["upload_refused"] = too_large(REFUSED_MB)
    time.sleep(3)  # let the rate limiter's bucket empty before the burst
    result["burst"] = burst()
    print(json.dumps(result))


if __name__ == "__main__":
    main()

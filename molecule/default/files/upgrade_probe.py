# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A client that keeps using Dify through the gateway while the fleet is upgraded, for the `default`
scenario's upgrade drill: CLIENTS threads, each sending, one after the other, a console API request and
a blocking workflow run (code through the sandbox), until STOP_FILE exists (or MAX_SECONDS pass). Every
request is a new connection, as a browser's would be after an idle moment.

usage: python3 upgrade_probe.py HOST PORT STOP_FILE [CLIENTS] [MAX_SECONDS]

Prints one JSON document: {"seconds", "requests", "status": {code: count}, "errors": {message: count}
(no HTTP answer), "failures": [the first 20 requests not answered 200: {"t" (s from the start), "path",
"status" or "error", "body"}], "api_containers": [the api containers (their host names) that answered]}.
Standard library only.
"""

from __future__ import annotations

import http.client
import json
import os
import sys
import threading
import time

HOST = sys.argv[1]
PORT = int(sys.argv[2])
STOP_FILE = sys.argv[3]
CLIENTS = int(sys.argv[4]) if len(sys.argv) > 4 else 4
MAX_SECONDS = float(sys.argv[5]) if len(sys.argv) > 5 else 1800
WORKFLOW = json.dumps({"inputs": {"code": "print(6 * 7)\n"}, "response_mode": "blocking"}).encode()

lock = threading.Lock()
started = time.monotonic()
seen = {"requests": 0, "status": {}, "errors": {}, "failures": [], "api_containers": set()}


def note(path: str, status: int | None, body: bytes, error: str | None) -> None:
    with lock:
        seen["requests"] += 1
        if error is not None:
            seen["errors"][error] = seen["errors"].get(error, 0) + 1
        else:
            seen["status"][str(status)] = seen["status"].get(str(status), 0) + 1
        if status != 200 and len(seen["failures"]) < 20:
            seen["failures"].append({"t": round(time.monotonic() - started, 2), "path": path, "status": status,
                                     "error": error, "body": body[:300].decode("utf-8", "replace")})
        if status == 200 and path == "/console/api/probe":
            try:
                seen["api_containers"].add(json.loads(body).get("host"))
            except ValueError:
                pass


def one(method: str, path: str, body: bytes | None) -> None:
    conn = http.client.HTTPConnection(HOST, PORT, timeout=120)
    try:
        conn.request(method, path, body=body, headers={"Content-Type": "application/json"} if body else {})
        response = conn.getresponse()
        note(path, response.status, response.read(), None)
    except (OSError, http.client.HTTPException) as exc:
        note(path, None, b"", "%s: %s" % (type(exc).__name__, exc))
    finally:
        conn.close()


def client() -> None:
    while not os.path.exists(STOP_FILE) and time.monotonic() - started < MAX_SECONDS:
        one("GET", "/console/api/probe", None)
        one("POST", "/v1/workflows/run", WORKFLOW)
        time.sleep(0.2)


def main() -> None:
    threads = [threading.Thread(target=client, daemon=True) for _index in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seen["seconds"] = round(time.monotonic() - started, 1)
    seen["api_containers"] = sorted(seen["api_containers"])
    print(json.dumps(seen, sort_keys=True))


if __name__ == "__main__":
    main()

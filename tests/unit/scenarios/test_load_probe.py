# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""molecule/stack/files/load_probe.py against a local HTTP server that answers like Dify's workflow API,
slowly: a phase lasts until every client has had its RUNS answers, however slow the answers are, so the
stack scenario's load check keeps its sample on a busy machine instead of failing on a short count."""

from __future__ import annotations

import http.server
import importlib.util
import pathlib
import threading
import time

import pytest

PROBE = pathlib.Path(__file__).resolve().parents[3] / "molecule" / "stack" / "files" / "load_probe.py"
SPEC = importlib.util.spec_from_file_location("load_probe", PROBE)
load_probe = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(load_probe)


class SlowWorkflow(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):  # noqa: N802 - the handler's name is http.server's
        self.rfile.read(int(self.headers["Content-Length"]))
        time.sleep(0.3)
        body = b'{"data": {"status": "succeeded"}}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(name="url")
def url_fixture():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), SlowWorkflow)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield "http://127.0.0.1:%d" % server.server_address[1]
    server.shutdown()


def test_a_phase_waits_for_every_clients_runs_when_answers_are_slower_than_its_seconds(url):
    # 0.1 s of sending, but each answer takes 0.3 s: every client still gets its 3 answers.
    seen = load_probe.phase(url, load_probe.burn_code(1), 4, 0.1, 3, {}, "v1")
    assert seen["min_client_runs"] >= 3
    assert seen["requests"] >= 12 and seen["status"] == {"200": seen["requests"]}
    assert seen["seconds"] >= 0.9


def test_a_phase_without_runs_answers_once_per_client_at_least(url):
    seen = load_probe.phase(url, load_probe.burn_code(1), 2, 0.0, 1, {}, "v1")
    assert seen["min_client_runs"] == 1 and seen["requests"] == 2

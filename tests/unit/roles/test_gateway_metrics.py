# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The gateway's request metrics: nginx_gateway's access log format `dify_gateway` and the mtail
program over it (roles/monitoring/files/dify_gateway.mtail), which exports what the alerts
DifyApiErrorRate and DifyApiLatencyP99 read.

- The format is read from the role's template, so the program is tested against the format the role
  writes: lines built from it go through the real mtail (--one_shot), and the counters per route
  and status and the histogram's cumulative buckets are what the requests were.
- The role renders the configuration (ansible-playbook, target `stack`: only the file is written):
  every proxied location sets its route, /healthz and the status server log nothing, the stub_status
  server listens on the loopback only, and a status port the gateway already uses is refused.
- Then the rendered file runs in the real nginx in front of three small backends; mtail reads the
  log nginx wrote.

mtail and nginx are Debian packages (.ci/run installs both); without them those tests skip."""

from __future__ import annotations

import http.server
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest

from ansible_collections.difyops.dify.plugins.plugin_utils.sizing.fleet import plan_fleet
from ansible_collections.difyops.dify.plugins.plugin_utils.stack.compose import GATEWAY_LOG_DIR

from playbook_runner import REPO, run_playbook

TEMPLATE = REPO / "roles/nginx_gateway/templates/nginx.conf.j2"
PROGRAM = REPO / "roles/monitoring/files/dify_gateway.mtail"
# The bucket bounds the program declares, as Prometheus sees them (le), without +Inf.
BOUNDS = ("0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "30", "60", "120", "300")

MTAIL = shutil.which("mtail")
NGINX = shutil.which("nginx", path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"]))
needs_mtail = pytest.mark.skipif(MTAIL is None, reason="mtail is not installed (Debian package mtail; .ci/run installs it)")
needs_nginx = pytest.mark.skipif(NGINX is None, reason="nginx is not installed (Debian package nginx; .ci/run installs it)")

PLAN = plan_fleet([
    {"name": "gw", "vcpus": 2, "memory_mb": 4000, "components": ["gateway"], "address": "10.0.0.1"},
    {"name": "app1", "vcpus": 4, "memory_mb": 16000, "components": ["app"], "address": "10.0.0.2"},
    {"name": "data", "vcpus": 4, "memory_mb": 16000, "components": ["database", "redis", "vector_store"], "address": "10.0.0.4"},
], {"object_storage": True})
ROUTES = PLAN["fleet"]["gateway_routes"]


def log_format() -> str:
    """The `dify_gateway` log_format of the template: its quoted parts, joined as nginx joins them."""
    found = re.search(r"^\s*log_format dify_gateway ((?:'[^']*'\s*)+);", TEMPLATE.read_text(encoding="utf-8"), re.M)
    assert found, "no log_format dify_gateway in %s" % TEMPLATE
    return "".join(re.findall(r"'([^']*)'", found.group(1)))


def log_line(**values: str) -> str:
    """A line as nginx writes it in that format, with VALUES for its variables (without `$`)."""
    fmt = log_format()
    names = set(re.findall(r"\$(\w+)", fmt))
    assert names == set(values), "the log format's variables are %s" % sorted(names)
    return re.sub(r"\$(\w+)", lambda m: values[m.group(1)], fmt)


def request(route: str, status: int, seconds: float, uri: str = "/v1/chat-messages", method: str = "POST",
            upstream: str = "") -> str:
    return log_line(remote_addr="10.0.1.5", time_iso8601="2025-05-01T12:00:00+00:00", request_method=method, uri=uri,
                    status=str(status), body_bytes_sent="512", request_time="%.3f" % seconds,
                    upstream_response_time=upstream or "%.3f" % seconds, dify_route=route)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_mtail(tmp_path, *logs) -> dict:
    """Run the program over LOGS with mtail --one_shot; {(name, labels without prog): value} of its
    Prometheus text output."""
    progs = tmp_path / "progs"
    progs.mkdir(exist_ok=True)
    shutil.copy(PROGRAM, progs / PROGRAM.name)
    cmd = [MTAIL, "--one_shot", "--one_shot_format", "prometheus", "--progs", str(progs), "--logs", ",".join(map(str, logs)),
           "--logtostderr", "--address", "127.0.0.1", "--port", "0"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "compile errors" not in proc.stderr.lower(), proc.stderr[-3000:]
    metrics = {}
    for name, labels, value in re.findall(r"^(\w+)\{([^}]*)\} (\S+)$", proc.stdout, re.M):
        pairs = tuple(sorted((k, v) for k, v in re.findall(r'(\w+)="([^"]*)"', labels) if k != "prog"))
        metrics[(name, pairs)] = float(value)
    assert metrics, "mtail printed no metrics: %s %s" % (proc.stdout[-2000:], proc.stderr[-2000:])
    return metrics


def requests_total(metrics, route, status):
    return metrics.get(("dify_gateway_requests_total", (("route", route), ("status", str(status)))), 0)


def bucket(metrics, route, le):
    return metrics[("dify_gateway_request_duration_seconds_bucket", (("le", le), ("route", route)))]


def count(metrics, route):
    return metrics[("dify_gateway_request_duration_seconds_count", (("route", route),))]


def test_the_format_has_what_the_program_needs():
    fmt = log_format()
    for variable in ("$status", "$request_time", "$dify_route", "$uri"):
        assert variable in fmt, fmt
    # No query string: Dify's signed file URLs carry their signatures there.
    assert "$request_uri" not in fmt and "$request " not in fmt and "$args" not in fmt, fmt


@needs_mtail
def test_mtail_counts_each_route_and_status(tmp_path):
    log = tmp_path / "access.log"
    lines = [
        request("api", 200, 12.345),                              # a streamed chat reply: bucket 30
        request("api", 200, 0.000, method="GET", uri="/console/api/apps"),  # 0.000 counts in every bucket
        request("api", 502, 0.040, upstream="0.010, 0.030"),      # two upstream tries
        request("api", 429, 0.000, upstream="-"),                 # rate limited: no upstream
        request("api", 200, 300.5),                               # beyond the last bound: +Inf only
        request("plugin_daemon", 200, 0.25, uri="/e/abc/hook"),   # on a bound: le is inclusive
        request("web", 304, 0.001, method="GET", uri="/files/a b.png"),  # a decoded space in $uri
        request("web", 200, 0.7, method="GET", uri="/explore"),
        request("-", 301, 0.000, method="GET", uri="/"),          # nginx's own answer: route other
        request("-", 400, 0.001, method="-", uri="-"),            # no request line nginx could read
        '10.0.1.5 - - [01/May/2025:12:00:00 +0000] "GET / HTTP/1.1" 200 612 "-" "curl/8.0"',  # nginx's combined format
    ]
    log.write_text("\n".join(lines) + "\n", encoding="utf-8")
    metrics = run_mtail(tmp_path, log)

    assert requests_total(metrics, "api", 200) == 3
    assert requests_total(metrics, "api", 502) == 1
    assert requests_total(metrics, "api", 429) == 1
    assert requests_total(metrics, "plugin_daemon", 200) == 1
    assert requests_total(metrics, "web", 304) == 1
    assert requests_total(metrics, "web", 200) == 1
    assert requests_total(metrics, "other", 301) == 1
    assert requests_total(metrics, "other", 400) == 1
    assert not [key for key in metrics if ("route", "-") in key[1]]
    assert metrics[("dify_gateway_log_lines_unmatched_total", ())] == 1

    # Cumulative buckets, as Prometheus reads them: api saw 0.000, 0.000, 0.040, 12.345, 300.5.
    expected_api = {"0.05": 3, "0.1": 3, "0.25": 3, "0.5": 3, "1": 3, "2.5": 3, "5": 3, "10": 3, "30": 4,
                    "60": 4, "120": 4, "300": 4, "+Inf": 5}
    assert {le: bucket(metrics, "api", le) for le in BOUNDS + ("+Inf",)} == expected_api
    assert bucket(metrics, "plugin_daemon", "0.1") == 0 and bucket(metrics, "plugin_daemon", "0.25") == 1
    assert bucket(metrics, "web", "0.05") == 1 and bucket(metrics, "web", "0.5") == 1 and bucket(metrics, "web", "1") == 2
    for route in ("api", "web", "plugin_daemon", "other"):
        # A histogram whose +Inf bucket is not its count misleads histogram_quantile.
        assert bucket(metrics, route, "+Inf") == count(metrics, route), route
    assert metrics[("dify_gateway_request_duration_seconds_sum", (("route", "api"),))] == pytest.approx(312.885)
    # Every bound the program declares, and no other.
    les = {dict(key[1])["le"] for key in metrics if key[0] == "dify_gateway_request_duration_seconds_bucket"}
    assert les == set(BOUNDS) | {"+Inf"}


# ---- the role's rendering, and nginx itself

PORTS = {"gateway": free_port(), "status": free_port(), "api": free_port(), "web": free_port(), "plugin_daemon": free_port()}
HOSTS = {
    # The stack target listens on the port the stack publishes: dify_stack_gateway_port, which
    # nginx_gateway_port follows.
    "live": {"dify_stack_gateway_port": PORTS["gateway"], "nginx_gateway_status_port": PORTS["status"],
             "nginx_gateway_upstreams": {name: ["127.0.0.1:%d" % PORTS[name]] for name in ("api", "web", "plugin_daemon")}},
    "defaults": {},
    "nostatus": {"nginx_gateway_status_port": 0},
    "clash": {"nginx_gateway_status_port": 80},
}


@pytest.fixture(scope="module", name="rendered")
def rendered_fixture(tmp_path_factory):
    """{host: its nginx.conf, or the message of the task that refused it}."""
    tmp_path = tmp_path_factory.mktemp("gateway_metrics")
    hosts = {}
    for name, given in HOSTS.items():
        hosts[name] = dict({"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                            "nginx_gateway_plan": PLAN["hosts"]["gw"], "nginx_gateway_upstreams": PLAN["fleet"]["gateway_upstreams"],
                            "nginx_gateway_routes": ROUTES, "nginx_gateway_target": "stack", "nginx_gateway_listen_ipv6": False,
                            "nginx_gateway_stack_conf_path": str(tmp_path / name / "nginx.conf")}, **given)
    playbook = [{"name": "Render", "hosts": "all", "gather_facts": False, "roles": [{"role": "difyops.dify.nginx_gateway"}]}]
    _proc, report = run_playbook(tmp_path, {"all": {"hosts": hosts}}, playbook)
    found = {host: "FAILED: " + result.get("msg", "") for task in report["plays"][0]["tasks"]
             for host, result in task["hosts"].items() if result.get("failed")}
    for name in HOSTS:
        conf = tmp_path / name / "nginx.conf"
        if name not in found and conf.exists():
            found[name] = conf.read_text(encoding="utf-8")
    return found


def conf_of(rendered, name):
    conf = rendered.get(name, "FAILED: not written")
    assert not conf.startswith("FAILED"), conf
    return conf


def locations(conf):
    """{location: its body} of the gateway's server blocks (not the status server's)."""
    conf = re.sub(r"\n    server \{\n        listen 127\.0\.0\.1:.*?\n    \}\n", "\n", conf, flags=re.S)
    return dict(re.findall(r"location (?:= )?(\S+) \{(.*?)\n *\}", conf, re.S))


def test_every_proxied_location_names_its_route(rendered):
    conf = conf_of(rendered, "defaults")
    found = locations(conf)
    for route, paths in ROUTES.items():
        for path in paths:
            assert "set $dify_route %s;" % route in found[path], (path, found[path])
    assert "log_format dify_gateway '" in conf
    assert "access_log /var/log/nginx/access.log dify_gateway;" in conf
    assert re.search(r'map \$host \$dify_route \{\s*default "-";\s*\}', conf)
    assert "access_log off;" in found["/healthz"] and "dify_route" not in found["/healthz"]


def test_the_status_server_listens_on_the_loopback_only(rendered):
    conf = conf_of(rendered, "defaults")
    server = re.search(r"\n    server \{\n        listen 127\.0\.0\.1:8081;\n(.*?)\n    \}\n", conf, re.S)
    assert server, conf
    body = server.group(1)
    assert re.search(r"location = /stub_status \{\s*stub_status;\s*allow 127\.0\.0\.1;\s*deny all;\s*\}", body), body
    assert "access_log off;" in body
    assert "stub_status" not in conf_of(rendered, "nostatus")
    assert "127.0.0.1:" not in conf_of(rendered, "nostatus")


def test_a_status_port_the_gateway_listens_on_is_refused(rendered):
    assert rendered["clash"].startswith("FAILED") and "nginx_gateway_status_port is 80" in rendered["clash"], rendered["clash"]


class Backend(http.server.BaseHTTPRequestHandler):
    """An app host: 500 for paths with /fail, 0.3 s for paths with /slow, else 200."""

    def answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        if "/slow" in self.path:
            time.sleep(0.3)
        status = 500 if "/fail" in self.path else 200
        body = b'{"ok": true}'
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = answer

    def log_message(self, *args):  # pylint: disable=arguments-differ
        pass


def get(url, data=None):
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=20) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


@needs_nginx
@needs_mtail
def test_nginx_writes_what_mtail_counts(rendered, tmp_path):
    conf = conf_of(rendered, "live")
    assert conf.count("/var/log/nginx/") == 2, "the test moves the error and access logs"
    # The stack's copy of the access log, in the directory compose mounts from the host for its mtail.
    assert conf.count("access_log %s/access.log dify_gateway;" % GATEWAY_LOG_DIR) == 1
    (tmp_path / "gateway").mkdir()
    conf = conf.replace("/var/log/nginx/", str(tmp_path) + "/").replace(GATEWAY_LOG_DIR + "/", str(tmp_path / "gateway") + "/")
    # The distribution's temporary directories, moved into TMP_PATH (a user other than root cannot write them).
    version = subprocess.run([NGINX, "-V"], capture_output=True, text=True, check=True).stderr
    temps = "".join("    %s_temp_path %s;\n" % (name.replace("-", "_"), tmp_path / name)
                    for name in re.findall(r"--http-([a-z-]+)-temp-path=", version)
                    if "--without-http_%s_module" % name not in version)
    conf = conf.replace("\nhttp {\n", "\nhttp {\n" + temps, 1)
    (tmp_path / "nginx.conf").write_text(conf, encoding="utf-8")
    main = "pid %s/nginx.pid; daemon off;%s" % (tmp_path, " user root;" if os.geteuid() == 0 else "")
    nginx = [NGINX, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"), "-g", main]
    checked = subprocess.run(nginx + ["-t", "-q"], capture_output=True, text=True, timeout=60, check=False)
    assert checked.returncode == 0, checked.stderr

    servers = []
    for name in ("api", "web", "plugin_daemon"):
        server = http.server.ThreadingHTTPServer(("127.0.0.1", PORTS[name]), Backend)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
    proc = subprocess.Popen(nginx, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # pylint: disable=consider-using-with
    try:
        gateway = "http://127.0.0.1:%d" % PORTS["gateway"]
        for _attempt in range(100):
            try:
                if get(gateway + "/healthz")[0] == 200:
                    break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail("nginx did not answer /healthz")
        answers = [
            get(gateway + "/console/api/apps"),
            get(gateway + "/v1/chat-messages", b'{"query": "hi"}'),
            get(gateway + "/v1/fail"),
            get(gateway + "/api/slow"),
            get(gateway + "/e/abc/hook", b"{}"),
            get(gateway + "/explore/apps"),
            get(gateway + "/signin"),
            get(gateway + "/files/fail"),
        ]
        assert [status for status, _body in answers] == [200, 200, 500, 200, 200, 200, 200, 500], answers
        status, body = get("http://127.0.0.1:%d/stub_status" % PORTS["status"])
        assert status == 200 and body.startswith("Active connections:"), body
        assert get("http://127.0.0.1:%d/" % PORTS["status"])[0] == 404
        with socket.create_connection(("127.0.0.1", PORTS["gateway"]), timeout=20) as sock:
            sock.sendall(b"NONSENSE\r\n\r\n")  # no request line nginx can read: 400, no location
            assert sock.recv(1024).split(b"\r\n", 1)[0].split(b" ")[1] == b"400"
    finally:
        proc.terminate()
        output = proc.communicate(timeout=30)[0]
        for server in servers:
            server.shutdown()
            server.server_close()
    assert "[emerg]" not in output and "[alert]" not in output, output

    log = tmp_path / "gateway" / "access.log"  # what the single node's mtail reads; the container's output has the same
    text = log.read_text(encoding="utf-8")
    assert text == (tmp_path / "access.log").read_text(encoding="utf-8")
    assert "/healthz" not in text and "stub_status" not in text, text
    assert len(text.splitlines()) == 9, text
    metrics = run_mtail(tmp_path, log)
    assert metrics[("dify_gateway_log_lines_unmatched_total", ())] == 0, text
    assert requests_total(metrics, "api", 200) == 3
    assert requests_total(metrics, "api", 500) == 2
    assert requests_total(metrics, "plugin_daemon", 200) == 1
    assert requests_total(metrics, "web", 200) == 2
    assert requests_total(metrics, "other", 400) == 1
    # The slow one took 0.3 s at least; the others are fast but a loaded machine may slow any.
    assert count(metrics, "api") == 5 and bucket(metrics, "api", "0.25") <= 4 and bucket(metrics, "api", "+Inf") == 5

# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""nginx_gateway's nginx_gateway_drain, run by ansible-playbook on the controller (target `stack`: the
role only writes the file): the endpoints of a host that changes are marked `down` in their upstreams,
an upstream's last endpoint keeps serving, and an endpoint that is in no upstream is refused before the
file is written. The upstreams and endpoints come from a computed split-fleet plan."""

from __future__ import annotations

import re
import sys

import pytest

from ansible_collections.difyops.dify.plugins.plugin_utils.sizing.fleet import plan_fleet

from playbook_runner import run_playbook


PLAN = plan_fleet([
    {"name": "gw", "vcpus": 2, "memory_mb": 4000, "components": ["gateway"], "address": "10.0.0.1"},
    {"name": "app1", "vcpus": 4, "memory_mb": 16000, "components": ["app"], "address": "10.0.0.2"},
    {"name": "app2", "vcpus": 4, "memory_mb": 16000, "components": ["app"], "address": "10.0.0.3"},
    {"name": "data", "vcpus": 4, "memory_mb": 16000, "components": ["database", "redis", "vector_store"], "address": "10.0.0.4"},
], {"object_storage": True})
ENDPOINTS = PLAN["fleet"]["gateway_endpoints"]

# name: what the role drains on that host
CASES = {
    "none": [],
    "app2": ENDPOINTS["app2"],
    # app1 runs the fleet's one plugin daemon: its endpoint stays in, the only one of its upstream.
    "app1": ENDPOINTS["app1"],
    "unknown": ["10.0.0.9:5001"],
}


def upstreams(conf: str) -> dict:
    """{upstream name: [server lines]} of an nginx.conf."""
    found = {}
    for name, body in re.findall(r"upstream (\w+) \{(.*?)\}", conf, re.S):
        found[name] = [line.strip() for line in body.splitlines() if line.strip().startswith("server ")]
    return found


@pytest.fixture(scope="module", name="run")
def run_fixture(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("gateway_drain")
    hosts = {}
    for name, drain in CASES.items():
        hosts[name] = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                       "nginx_gateway_plan": PLAN["hosts"]["gw"], "nginx_gateway_upstreams": PLAN["fleet"]["gateway_upstreams"],
                       "nginx_gateway_target": "stack", "nginx_gateway_drain": drain,
                       "nginx_gateway_stack_conf_path": str(tmp_path / name / "nginx" / "nginx.conf")}
    playbook = [{"name": "Drain", "hosts": "all", "gather_facts": False,
                 "roles": [{"role": "difyops.dify.nginx_gateway"}]}]
    _proc, report = run_playbook(tmp_path, {"all": {"hosts": hosts}}, playbook)
    failures = {host: result.get("msg", "") for task in report["plays"][0]["tasks"]
                for host, result in task["hosts"].items() if result.get("failed")}
    return tmp_path, failures


def conf_of(run, name):
    tmp_path, failures = run
    assert name not in failures, failures[name]
    return upstreams((tmp_path / name / "nginx" / "nginx.conf").read_text(encoding="utf-8"))


def test_nothing_drained_serves_every_endpoint(run):
    for name, servers in conf_of(run, "none").items():
        assert servers and all(line.endswith("max_fails=3 fail_timeout=10s;") for line in servers), (name, servers)


def test_the_changing_hosts_endpoints_are_down_and_the_others_serve(run):
    found = conf_of(run, "app2")
    assert found["dify_api"] == ["server 10.0.0.2:5001 max_fails=3 fail_timeout=10s;", "server 10.0.0.3:5001 down;"]
    assert found["dify_web"] == ["server 10.0.0.2:3000 max_fails=3 fail_timeout=10s;", "server 10.0.0.3:3000 down;"]
    assert found["dify_plugin_daemon"] == ["server 10.0.0.2:5002 max_fails=3 fail_timeout=10s;"]


def test_an_upstreams_last_endpoint_keeps_serving(run):
    found = conf_of(run, "app1")
    assert found["dify_api"] == ["server 10.0.0.2:5001 down;", "server 10.0.0.3:5001 max_fails=3 fail_timeout=10s;"]
    assert found["dify_plugin_daemon"] == ["server 10.0.0.2:5002 max_fails=3 fail_timeout=10s;"]


def test_an_endpoint_in_no_upstream_is_refused_before_the_file_is_written(run):
    tmp_path, failures = run
    assert "nginx_gateway_drain names 10.0.0.9:5001" in failures.get("unknown", ""), failures
    assert "host unknown:" in failures["unknown"] and "dify_plan.fleet.gateway_endpoints" in failures["unknown"]
    assert not (tmp_path / "unknown" / "nginx" / "nginx.conf").exists()

# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The monitoring role refuses bad input in its preflight, before any task touches the host, naming
the host, the variable and the fix; run by ansible-playbook on the controller against computed
plans (a split fleet, and a single node). Each host below is named after a host of its plan and
fails on one input."""

from __future__ import annotations

import sys

import pytest

from ansible_collections.difyops.dify.plugins.plugin_utils.sizing.fleet import plan_fleet

from playbook_runner import run_playbook

PLAN = plan_fleet([
    {"name": "gw", "vcpus": 2, "memory_mb": 4000, "components": ["gateway"], "address": "10.0.0.1"},
    {"name": "app1", "vcpus": 4, "memory_mb": 16000, "components": ["app"], "address": "10.0.0.2"},
    {"name": "data", "vcpus": 4, "memory_mb": 16000, "components": ["database", "redis", "vector_store"], "address": "10.0.0.4"},
], {"object_storage": True})
SOURCES = ["10.0.0.9"]
# A single node, whose PostgreSQL runs in its stack: the role needs DB_PASSWORD to create the exporter's login.
SINGLE = plan_fleet([{"name": "one", "vcpus": 4, "memory_mb": 16000,
                      "components": ["gateway", "app", "database", "redis", "vector_store"]}], {})

# host: (its variables, words its refusal must contain)
CASES = {
    "gw": ({"nginx_gateway_status_port": 0}, ["gw is a gateway", "nginx_gateway_status_port", "is 0"]),
    "data": ({"monitoring_redis_password": ""}, ["monitoring_redis_password on data", "REDIS_PASSWORD"]),
    "app1": ({"monitoring_scrape_sources": [], "monitoring_servers": []},
             ["No address may scrape the exporters of app1", "dify_monitoring"]),
    "stranger": ({}, ["stranger is neither a host of the plan", "monitoring_servers"]),
    "one": ({"monitoring_plan": SINGLE}, ["monitoring_postgres_password on one", "single node", "DB_PASSWORD"]),
}


@pytest.fixture(scope="module", name="refusals")
def refusals_fixture(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("monitoring_preflight")
    hosts = {}
    for name, (variables, _words) in CASES.items():
        hosts[name] = dict({"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                            "monitoring_plan": PLAN, "monitoring_servers": ["prometheus"], "monitoring_scrape_sources": SOURCES,
                            "monitoring_redis_password": "a-long-redis-password"}, **variables)
    playbook = [{"name": "Monitor", "hosts": "all", "gather_facts": False, "roles": [{"role": "difyops.dify.monitoring"}]}]
    _proc, report = run_playbook(tmp_path, {"all": {"hosts": hosts}}, playbook, check=True)
    tasks = report["plays"][0]["tasks"]
    # Task names without the role's prefix ("difyops.dify.monitoring : ").
    failed = {host: (task["task"]["name"].split(" : ")[-1], result.get("msg", "")) for task in tasks
              for host, result in task["hosts"].items() if result.get("failed")}
    ran = {host: [task["task"]["name"].split(" : ")[-1] for task in tasks if host in task["hosts"]] for host in hosts}
    return failed, ran


@pytest.mark.parametrize("host", sorted(CASES))
def test_bad_input_is_refused_by_name_before_any_change(refusals, host):
    failed, ran = refusals
    assert host in failed, "%s was not refused: it ran %s" % (host, ran[host])
    task, message = failed[host]
    for words in CASES[host][1]:
        assert words in message, message
    assert task.startswith("Check"), "refused by %r, not by the preflight" % task
    assert not any(name.startswith(("Install", "Configure", "Write", "Start")) for name in ran[host]), ran[host]

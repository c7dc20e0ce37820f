# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The roles read the facts they share from the lookup difyops.dify.constants, through Ansible:
dify_secrets' and postgres_tuning's variables render to the collection's facts, the files the
stack target writes (postgres_tuning, nginx_gateway) follow dify_stack_project_dir like the
roles that read the project (dify_secrets, dify_backup), and dify_secrets refuses Dify 1.16.1's
published agent key, which its copy of the defaults (1.13.3's) let through."""

from __future__ import annotations

import sys

import pytest

from ansible_collections.difyops.dify.plugins.plugin_utils.sizing.fleet import plan_fleet
from ansible_collections.difyops.dify.plugins.plugin_utils.stack.constants import constants

from playbook_runner import REPO, run_playbook

ROLE_VARS = {
    "dify_secrets/vars": {"_dify_secrets_generated": "generated_secrets", "_dify_secrets_formats": "secret_formats",
                          "_dify_secrets_given_only": "given_only_secrets",
                          "_dify_secrets_upstream_defaults": "upstream_default_secrets",
                          "_dify_secrets_min_length": "secret_min_length",
                          "_dify_secrets_database_markers": "database_markers"},
    "postgres_tuning/vars": {"_postgres_tuning_known_defaults": "known_default_passwords"},
}
# Variables that name a place in the stack's project, with the path below the project.
PROJECT_PATHS = {
    "postgres_tuning/defaults": {"postgres_tuning_stack_conf_path": "/postgres/postgresql.dify.conf"},
    "nginx_gateway/defaults": {"nginx_gateway_stack_conf_path": "/nginx/nginx.conf"},
    "dify_secrets/defaults": {"dify_secrets_project_dir": ""},
    "dify_backup/defaults": {"dify_backup_project_dir": ""},
}
LOCAL = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}


def rendered(tmp_path, files, names, extra=None):
    """The values of NAMES after Ansible loads FILES (roles/<role>/<kind>/main.yml) as variables."""
    tasks = [{"name": "Load %s" % f, "ansible.builtin.include_vars": {"file": str(REPO / "roles" / f / "main.yml")}} for f in files]
    tasks.append({"name": "Show", "ansible.builtin.debug": {"msg": {name: "{{ %s }}" % name for name in names}}})
    play = [{"name": "Render", "hosts": "localhost", "gather_facts": False, "vars": extra or {}, "tasks": tasks}]
    proc, report = run_playbook(tmp_path, {"all": {"hosts": {"localhost": LOCAL}}}, play)
    assert proc.returncode == 0, proc.stdout[-3000:]
    return report["plays"][0]["tasks"][-1]["hosts"]["localhost"]["msg"]


def test_the_roles_variables_are_the_collections_facts(tmp_path):
    names = {name: fact for variables in ROLE_VARS.values() for name, fact in variables.items()}
    values = rendered(tmp_path, list(ROLE_VARS), names)
    facts = constants()
    assert {name: values[name] for name in names} == {name: facts[fact] for name, fact in names.items()}


@pytest.mark.parametrize("project_dir", [None, "/srv/dify"])
def test_the_stack_targets_files_follow_the_project_directory(tmp_path, project_dir):
    names = {name: below for variables in PROJECT_PATHS.values() for name, below in variables.items()}
    extra = {"dify_stack_project_dir": project_dir} if project_dir else {}
    values = rendered(tmp_path, list(PROJECT_PATHS), names, extra)
    expected = project_dir or "/opt/dify"
    assert values == {name: expected + below for name, below in names.items()}


@pytest.mark.parametrize("port", [None, 8080])
def test_the_gateways_port_follows_the_stacks(tmp_path, port):
    extra = {"dify_stack_gateway_port": port} if port else {}
    values = rendered(tmp_path, ["nginx_gateway/defaults"], ["nginx_gateway_port"], extra)
    assert values == {"nginx_gateway_port": port or 80}


@pytest.mark.parametrize("ports, refused", [({"nginx_gateway_port": 8080}, True),
                                            ({"nginx_gateway_port": 8080, "dify_stack_gateway_port": 8080}, False),
                                            ({"dify_stack_gateway_port": 8080}, False)])
def test_a_single_nodes_nginx_must_listen_where_the_stack_publishes_it(tmp_path, ports, refused):
    plan = plan_fleet([{"name": "one", "vcpus": 4, "memory_mb": 16000,
                        "components": ["gateway", "app", "database", "redis", "vector_store"]}], {})
    variables = dict(LOCAL, nginx_gateway_plan=plan["hosts"]["one"], nginx_gateway_upstreams=plan["fleet"]["gateway_upstreams"],
                     nginx_gateway_target="stack", **ports)
    play = [{"name": "Check", "hosts": "one", "gather_facts": False,
             "tasks": [{"name": "Check the inputs", "ansible.builtin.include_role": {
                 "name": "difyops.dify.nginx_gateway", "tasks_from": "preflight"}}]}]
    proc, report = run_playbook(tmp_path, {"all": {"hosts": {"one": variables}}}, play)
    failed = [result["msg"] for task in report["plays"][0]["tasks"] for result in task["hosts"].values() if result.get("failed")]
    if refused:
        assert proc.returncode != 0 and len(failed) == 1
        assert "nginx_gateway_port is 8080, but the stack publishes its nginx on dify_stack_gateway_port 80" in failed[0]
    else:
        assert proc.returncode == 0, failed or proc.stdout[-3000:]


def test_dify_secrets_refuses_dify_1_16s_published_agent_key(tmp_path):
    given = {"DIFY_AGENT_SERVER_SECRET_KEY": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY"}
    play = [{"name": "Check", "hosts": "localhost", "gather_facts": False, "vars": {"dify_secrets_given": given},
             "tasks": [{"name": "Check the inputs", "ansible.builtin.include_role": {
                 "name": "difyops.dify.dify_secrets", "tasks_from": "preflight"}}]}]
    proc, report = run_playbook(tmp_path, {"all": {"hosts": {"localhost": LOCAL}}}, play)
    assert proc.returncode != 0
    results = [result for task in report["plays"][0]["tasks"] for result in task["hosts"].values() if result.get("failed")]
    assert len(results) == 1
    assert "none of Dify's published defaults (found in: DIFY_AGENT_SERVER_SECRET_KEY)" in results[0]["msg"]

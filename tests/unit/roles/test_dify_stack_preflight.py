# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""dify_stack refuses what compose_project refuses (a managed variable in dify_stack_env_extra)
in its preflight, before any task that changes the host."""

from __future__ import annotations

import pathlib

import yaml

TASKS = pathlib.Path(__file__).resolve().parents[3] / "roles" / "dify_stack" / "tasks"


def load(name: str) -> list:
    with (TASKS / name).open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def test_the_project_and_its_env_extra_are_built_by_the_first_task_of_the_first_file():
    main = load("main.yml")
    assert main[0]["ansible.builtin.include_tasks"]["file"] == "preflight.yml"
    first = load("preflight.yml")[0]
    bundle = first["ansible.builtin.set_fact"]["_dify_stack_bundle"]
    assert "difyops.dify.compose_project(" in bundle and "'env_extra': dify_stack_env_extra" in bundle


# The engine check: docker_engine's `docker info` in the same run answers it (issue 22: one round
# trip less per host); without that answer, dify_stack asks `docker compose ls` itself.
DOCKER_TASKS = ("Check that Docker's engine answers and Compose v2 is there", "Note the answer")
VERSIONS = {"engine": "26.1.5+dfsg1", "compose": "2.26.1", "server": "26.1.5+dfsg1"}


def test_the_engine_check_asks_docker_unless_docker_engine_answered_in_this_run(tmp_path):
    import sys

    from playbook_runner import run_playbook

    tasks = [task for task in load("preflight.yml") if task.get("name") in DOCKER_TASKS]
    assert [task["name"] for task in tasks] == list(DOCKER_TASKS)
    tasks[0]["ansible.builtin.command"]["argv"] = ["sh", "-c", "echo asked >&2; exit 7"]  # stands for `docker compose ls`
    with (TASKS.parent / "vars" / "main.yml").open(encoding="utf-8") as handle:
        answered = yaml.safe_load(handle)["_dify_stack_docker_answered"]
    cases = {"no_versions": {}, "engine_silent": {"docker_engine_versions": dict(VERSIONS, server="")},
             "no_compose": {"docker_engine_versions": dict(VERSIONS, compose="")},
             "not_a_mapping": {"docker_engine_versions": "26.1.5"}, "answered": {"docker_engine_versions": VERSIONS}}
    hosts = {name: dict(case, ansible_connection="local", ansible_python_interpreter=sys.executable) for name, case in cases.items()}
    playbook = [{"name": "Run dify_stack's engine check", "hosts": "all", "gather_facts": False,
                 "vars": {"_dify_stack_docker_answered": answered}, "tasks": tasks}]
    proc, report = run_playbook(tmp_path, {"all": {"hosts": hosts}}, playbook)
    assert proc.returncode == 0, proc.stderr[-2000:]
    ran = {task["task"]["name"]: task["hosts"] for task in report["plays"][0]["tasks"]}
    for name in cases:
        asked = ran[DOCKER_TASKS[0]][name]
        noted = ran[DOCKER_TASKS[1]][name]["ansible_facts"]["_dify_stack_docker"]
        if name == "answered":
            assert asked.get("skipped"), asked
            assert noted == {"rc": 0, "stdout": "", "stderr": ""}
        else:
            assert not asked.get("skipped") and asked["rc"] == 7, (name, asked)
            assert noted["rc"] == 7 and noted["stderr"] == "asked", (name, noted)

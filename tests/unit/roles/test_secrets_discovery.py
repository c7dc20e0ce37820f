# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""dify_secrets run by ansible-playbook on the controller, each inventory host a project directory
of its own (local connection): one paths_info call per host finds the keeper file, the deployed
.env and the initialised databases; the keeper's file is not looked at again when the keeper is in
the play, and is when it is not (--limit)."""

from __future__ import annotations

import sys

from playbook_runner import run_playbook

SECRET_KEY = "sk-in-use-0123456789abcdef0123456789abcdef"


def inventory(tmp_path, **group_vars):
    hosts = {name: {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                    "dify_secrets_project_dir": str(tmp_path / name)} for name in ("h1", "h2")}
    for name in hosts:
        (tmp_path / name).mkdir(exist_ok=True)
    return {"all": {"children": {"dify": {"hosts": hosts, "vars": dict(
        dify_secrets_host="h1", dify_secrets_file=str(tmp_path / "keeper.json"), **group_vars)}}}}


def initialise_database(project):
    marker = project / "volumes" / "db" / "data" / "PG_VERSION"
    marker.parent.mkdir(parents=True)
    marker.write_text("17\n", encoding="utf-8")


def role_play(hosts="dify", tasks_from="main"):
    return [{"name": "Secrets", "hosts": hosts, "gather_facts": False, "tasks": [
        {"name": "Apply dify_secrets", "ansible.builtin.include_role": {"name": "difyops.dify.dify_secrets", "tasks_from": tasks_from}},
        {"name": "Show what was found", "ansible.builtin.debug": {"var": "_dify_secrets_found"}},
    ]}]


def failures(report):
    return {host: result.get("msg", "") for play in report["plays"] for task in play["tasks"]
            for host, result in task["hosts"].items() if result.get("failed")}


def found(report):
    task = [t for t in report["plays"][0]["tasks"] if t["task"]["name"] == "Show what was found"][0]
    return {host: result["_dify_secrets_found"] for host, result in task["hosts"].items()}


def module_calls(report):
    """{task name: number of hosts it ran a module on} of the role's tasks that reached a host."""
    calls = {}
    for task in report["plays"][0]["tasks"]:
        name = task["task"]["name"].split(" : ", 1)[-1]  # without the role's prefix
        for result in task["hosts"].values():
            if result.get("action") not in ("ansible.builtin.set_fact", "ansible.builtin.assert", "ansible.builtin.debug",
                                            "ansible.builtin.include_tasks", "ansible.builtin.include_role",
                                            "set_fact", "assert", "debug") and not result.get("skipped"):
                calls[name] = calls.get(name, 0) + 1
    return calls


def test_one_call_per_host_finds_the_keeper_the_env_and_the_databases(tmp_path):
    (tmp_path / "h1").mkdir()
    (tmp_path / "h1" / ".env").write_text("SECRET_KEY=%s\nOTHER=x\n" % SECRET_KEY, encoding="utf-8")
    initialise_database(tmp_path / "h1")
    proc, report = run_playbook(tmp_path, inventory(tmp_path), role_play(tasks_from="discover"))
    assert proc.returncode == 0, failures(report)
    seen = found(report)
    assert seen["h1"]["keeper"] is False and seen["h2"]["keeper"] is False
    assert seen["h1"]["env"]["source"] == str(tmp_path / "h1" / ".env") and seen["h2"]["env"] == {}
    assert seen["h1"]["databases"] == [[str(tmp_path / "h1" / "volumes/db/data/PG_VERSION"), "DB_PASSWORD"]]
    assert seen["h2"]["databases"] == []
    assert module_calls(report) == {"Look for a keeper file and initialised databases, and read the deployed .env": 2}


def test_an_initialised_database_without_its_password_is_refused_before_anything_is_kept(tmp_path):
    (tmp_path / "h2").mkdir()
    initialise_database(tmp_path / "h2")
    proc, report = run_playbook(tmp_path, inventory(tmp_path), role_play())
    assert proc.returncode != 0
    message = " ".join(failures(report).values())
    assert "h2:%s is an initialised database whose password (DB_PASSWORD)" % (tmp_path / "h2" / "volumes/db/data/PG_VERSION") in message
    assert not (tmp_path / "keeper.json").exists()


def test_the_keeper_is_looked_at_again_only_outside_the_play(tmp_path):
    proc, report = run_playbook(tmp_path, inventory(tmp_path), role_play())
    assert proc.returncode == 0, failures(report)
    assert (tmp_path / "keeper.json").exists()
    assert "Look for the file of a keeper outside the play" not in module_calls(report)
    # h2 alone (--limit): the keeper h1 is outside the play, its file is looked at there and found,
    # so h2's initialised database (no .env yet) takes the kept password instead of being refused.
    initialise_database(tmp_path / "h2")
    proc, report = run_playbook(tmp_path, inventory(tmp_path), role_play(hosts="h2"))
    assert proc.returncode == 0, failures(report)
    assert module_calls(report)["Look for the file of a keeper outside the play"] == 1

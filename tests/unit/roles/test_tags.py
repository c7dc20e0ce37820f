# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tags that run one step: every role a playbook applies is tagged with its name, and host_tuning's
and docker_engine's steps with tags of their own whose selection also runs the role's preflight.
Checked on the playbooks themselves (--list-tasks, which expands static imports) and, for the way
the playbooks include roles dynamically (include_role with apply), with a real run."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
from typing import Dict, List, Set

import pytest
import yaml

from playbook_runner import run_playbook

REPO = pathlib.Path(__file__).resolve().parents[3]
PLAYBOOKS = REPO / "playbooks"


# The steps of site; backup, restore and upgrade are procedures whose steps must all run.
STEP_PLAYBOOKS = ("tune.yml", "runtime.yml", "services.yml", "stack.yml", "monitoring.yml")


def _role_applications():
    """(playbook, role's short name, the tags on the roles entry or include, the tags it applies)."""
    for path in (PLAYBOOKS / name for name in STEP_PLAYBOOKS):
        for play in yaml.safe_load(path.read_text(encoding="utf-8")) or []:
            for entry in play.get("roles", []) or []:
                name = entry["role"] if isinstance(entry, dict) else entry
                if name.startswith("difyops.dify."):
                    yield path.name, name.split(".")[-1], entry.get("tags", []), entry.get("tags", [])
            for task in play.get("tasks", []) or []:
                include = task.get("ansible.builtin.include_role")
                if include and str(include.get("name", "")).startswith("difyops.dify."):
                    yield path.name, include["name"].split(".")[-1], task.get("tags", []), (include.get("apply") or {}).get("tags", [])


def test_every_role_a_playbook_applies_is_tagged_with_its_name():
    found = list(_role_applications())
    roles = {role for _path, role, _tags, _applied in found}
    assert roles >= {"host_tuning", "docker_engine", "nvidia_container_toolkit", "postgres_tuning", "nginx_gateway",
                     "dify_stack", "monitoring"}
    missing = ["%s: %s has tags %s and applies %s" % (path, role, tags, applied) for path, role, tags, applied in found
               if role not in tags or role not in applied]
    assert missing == []


def list_tasks(playbook, tags: str) -> Dict[str, Set[str]]:
    """The tasks --list-tasks --tags TAGS selects in PLAYBOOK (a name in playbooks/ or a path), by
    play name (role prefixes kept)."""
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_COLLECTIONS_PATH=str(REPO / ".cache/collections"))
    cmd = [str(pathlib.Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "--list-tasks", "--tags", tags,
           str(PLAYBOOKS / playbook if isinstance(playbook, str) else playbook)]
    proc = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    plays: Dict[str, Set[str]] = {}
    current: List[str] = []
    for line in proc.stdout.splitlines():
        stripped = line.strip()
        if stripped.startswith("play #"):
            current = [stripped.split(": ", 1)[1].split("\tTAGS:")[0]]
            plays[current[0]] = set()
        elif current and "\tTAGS: " in line and stripped != "tasks:":
            plays[current[0]].add(stripped.split("\tTAGS: ")[0])
    return plays


# tag: (playbook, play, tasks that must be selected, tasks that must not)
STEPS = {
    "host_tuning_docker": ("tune.yml", "Tune the hosts to their plan",
                           {"difyops.dify.host_tuning : Check that daemon.json can be merged into",
                            "difyops.dify.host_tuning : Merge the planned settings into daemon.json"},
                           {"difyops.dify.host_tuning : Note whether the swapfile is active",
                            "difyops.dify.host_tuning : Report the cgroup hierarchy as a fact"}),
    "host_tuning_swap": ("tune.yml", "Tune the hosts to their plan",
                         {"difyops.dify.host_tuning : Check the swap policy", "difyops.dify.host_tuning : Note whether the swapfile is active"},
                         {"difyops.dify.host_tuning : Merge the planned settings into daemon.json"}),
    "docker_engine_run": ("runtime.yml", "Install the container runtime",
                          {"difyops.dify.docker_engine : Read the installed packages, the Docker service's state and what Docker says of itself",
                           "difyops.dify.docker_engine : Decide which packages are missing",
                           "difyops.dify.docker_engine : Enable and start the Docker service",
                           "difyops.dify.docker_engine : Check that Compose v2 is new enough for Dify"},
                          {"difyops.dify.docker_engine : Install Docker and the Compose v2 plugin (apt)",
                           "difyops.dify.docker_engine : Merge the settings into daemon.json"}),
    "docker_engine_install": ("runtime.yml", "Install the container runtime",
                              {"difyops.dify.docker_engine : Decide which packages are missing",
                               "difyops.dify.docker_engine : Install Docker and the Compose v2 plugin (apt)"},
                              {"difyops.dify.docker_engine : Enable and start the Docker service"}),
}


@pytest.mark.parametrize("tag", sorted(STEPS))
def test_a_step_tag_runs_the_step_with_its_preflight_and_nothing_else(tag):
    playbook, play, wanted, unwanted = STEPS[tag]
    plays = list_tasks(playbook, tag)
    assert wanted <= plays[play], sorted(wanted - plays[play])
    assert not unwanted & plays[play], sorted(unwanted & plays[play])
    # The facts always run (and in tune.yml the plan): every step reads them.
    assert "Gather hardware facts" in plays["Gather the hardware facts that sizing starts from"]
    if playbook == "tune.yml":
        assert "Compute the plan" in plays["Plan the Dify fleet"]


def test_a_role_tag_selects_only_that_role():
    plays = list_tasks("runtime.yml", "nvidia_container_toolkit")
    # Each role's argument spec is validated whatever the tags (Ansible tags that task always).
    selected = {task for task in plays["Install the container runtime"] if " : Validating arguments " not in task}
    assert any(task.startswith("difyops.dify.nvidia_container_toolkit : ") for task in selected)
    assert not any(task.startswith("difyops.dify.docker_engine : ") for task in selected)


def test_an_included_role_runs_under_its_tag_with_apply(tmp_path):
    """The playbooks include roles dynamically with `tags` and `apply: {tags}`: then --tags selects
    the role's own tasks too (here common's refusal, which fails when it runs)."""
    include = {"name": "difyops.dify.common", "apply": {"tags": ["common"]}}
    playbook = [{"name": "Include a role as the playbooks do", "hosts": "all", "gather_facts": False,
                 "tasks": [{"name": "Include it", "ansible.builtin.include_role": include, "tags": ["common"]}]}]
    hosts = {"all": {"hosts": {"here": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}}
    (tmp_path / "tagged").mkdir()
    os.environ["ANSIBLE_RUN_TAGS"] = "common"
    try:
        proc, report = run_playbook(tmp_path / "tagged", hosts, playbook)
    finally:
        del os.environ["ANSIBLE_RUN_TAGS"]
    failed = {task["task"]["name"].split(" : ", 1)[-1] for task in report["plays"][0]["tasks"]
              if task["hosts"]["here"].get("failed")}
    assert proc.returncode != 0 and failed == {"Refuse to run on its own"}, failed


# The playbooks include these two roles dynamically (include_role with apply), which --list-tasks
# does not expand: their steps are listed from a play that applies the role statically.
# tag: (role, tasks that must be selected, tasks that must not)
INCLUDED_STEPS = {
    "postgres_tuning_install": ("postgres_tuning",
                                {"Read apt, systemd, the schedule and the server in one call",
                                 "Install the server, its extensions and the Python driver", "Enable and start the server"},
                                {"Write the settings, pg_hba.conf and the backup job", "Create the Dify databases, or give them to the Dify role"}),
    "postgres_tuning_configure": ("postgres_tuning",
                                  {"Read apt, systemd, the schedule and the server in one call", "Check that the server answers",
                                   "Write the settings, pg_hba.conf and the backup job", "Reload the configuration",
                                   "Restart the server", "Schedule the backups",
                                   "Write the settings file that db_postgres mounts, and its directory"},
                                  {"Install the server, its extensions and the Python driver",
                                   "Create the Dify role, or set its attributes and password",
                                   "Set the planned storage parameters where they differ"}),
    "postgres_tuning_databases": ("postgres_tuning",
                                  {"Read apt, systemd, the schedule and the server in one call", "Check that the server answers",
                                   "Create the Dify role, or set its attributes and password",
                                   "Create the Dify databases, or give them to the Dify role",
                                   "Set the planned storage parameters where they differ"},
                                  {"Install the server, its extensions and the Python driver",
                                   "Write the settings, pg_hba.conf and the backup job", "Schedule the backups"}),
    "nginx_gateway_install": ("nginx_gateway",
                              {"Check the upstreams", "Ask apt about the nginx packages and systemd about nginx", "Install nginx"},
                              {"Write the gateway configuration"}),
    "nginx_gateway_configure": ("nginx_gateway",
                                {"Check the upstreams", "Write the gateway configuration"},
                                {"Ask apt about the nginx packages and systemd about nginx", "Install nginx"}),
}


@pytest.mark.parametrize("tag", sorted(INCLUDED_STEPS))
def test_a_step_tag_of_an_included_role_runs_the_step_with_its_preflight_and_nothing_else(tmp_path, tag):
    role, wanted, unwanted = INCLUDED_STEPS[tag]
    playbook = tmp_path / "play.yml"
    playbook.write_text(yaml.safe_dump([{"name": "Apply the role", "hosts": "all", "gather_facts": False,
                                         "roles": ["difyops.dify.%s" % role]}]), encoding="utf-8")
    selected = {task.split(" : ", 1)[-1] for task in list_tasks(playbook, tag)["Apply the role"]}
    assert wanted <= selected, sorted(wanted - selected)
    assert not unwanted & selected, sorted(unwanted & selected)


def test_the_services_playbook_selects_its_includes_with_their_step_tags():
    for path, role, tags, applied in _role_applications():
        steps = {tag for tag in INCLUDED_STEPS if tag.startswith(role + "_")}
        if path == "services.yml" and steps:
            assert steps <= set(tags), (role, tags)


# dify_stack includes its steps (include_tasks), so --list-tasks cannot show them: each include must
# carry its step's tag on itself (to be selected) and in `apply` (for the tasks it includes), the
# preflight every step's, and stack.yml's include of the role every step's. molecule's default
# scenario runs the firewall step alone (verify_firewall.yml) and checks that nothing else ran.
DIFY_STACK_STEPS = {"dify_stack_render": {"render.yml"}, "dify_stack_firewall": {"firewall.yml", "firewall_absent.yml"},
                    "dify_stack_start": {"start.yml", "report.yml"}}


def test_each_step_of_dify_stack_is_included_with_its_tag_and_the_preflight_with_every_one():
    tasks = yaml.safe_load((REPO / "roles/dify_stack/tasks/main.yml").read_text(encoding="utf-8"))
    files: Dict[str, Set[str]] = {}
    for task in tasks:
        include = task["ansible.builtin.include_tasks"]
        assert set(task["tags"]) == set(include["apply"]["tags"]), task["name"]
        for tag in task["tags"]:
            files.setdefault(tag, set()).add(include["file"])
    assert files == {tag: names | {"preflight.yml"} for tag, names in DIFY_STACK_STEPS.items()}
    documented = (REPO / "roles/dify_stack/README.md").read_text(encoding="utf-8")
    assert all("`%s`" % tag in documented for tag in DIFY_STACK_STEPS)
    applications = [tags for path, role, tags, _applied in _role_applications() if role == "dify_stack"]
    assert applications and all(set(DIFY_STACK_STEPS) <= set(tags) for tags in applications), applications

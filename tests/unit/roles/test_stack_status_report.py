# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""difyops.dify.stack_status through Ansible's templating, as dify_stack's report.yml calls it: the
variables the role registers only on some paths (the Docker check, the pull, load and up errors)
reach the filter through their defaults, and the published status and the failure are the pure
function's, character for character (test_stack_outcome.py checks which hosts fail).

Each case is a host of a generated inventory whose variables stand for what main.yml and start.yml
register; nothing is run on any host."""

from __future__ import annotations

import sys

import pytest

from ansible_collections.difyops.dify.plugins.plugin_utils.stack.status import status
from playbook_runner import run_playbook

STATUS_TASK = "Publish the stack's status"
FAIL_TASK = "Fail when the stack was asked to start and did not"
BUNDLE = {"services": ["api", "worker"], "public_url": "http://10.0.0.11", "ports": [], "inference": {}, "firewall": []}
UP_OK = {"changed": True, "failed": False}
UP_SKIPPED = {"changed": False, "skipped": True}
UP_FAILED = {"changed": False, "failed": True, "msg": "unhealthy"}

# name: (host variables over a started stack whose Docker answered, the filter's arguments for them)
CASES = {
    "started": ({"_dify_stack_up": UP_OK}, {"started": True}),
    "empty": ({"_dify_stack_bundle": dict(BUNDLE, services=[])}, {"services": []}),
    "rendered": ({"dify_stack_state": "rendered", "_dify_stack_docker": {"rc": 1, "stderr": "x"}},
                 {"state": "rendered", "docker_rc": 1, "docker_error": "x"}),
    "docker_unchecked": ({"_dify_stack_docker": None}, {"docker_rc": 1}),
    "docker_msg": ({"_dify_stack_docker": {"rc": 127, "msg": "[Errno 2] No such file or directory: b'docker'"}},
                   {"docker_rc": 127, "docker_error": "[Errno 2] No such file or directory: b'docker'"}),
    "docker_stderr": ({"_dify_stack_docker": {"rc": 1, "stderr": " daemon down\n", "msg": "non-zero return code"}},
                      {"docker_rc": 1, "docker_error": " daemon down\n"}),
    "images": ({"dify_stack_pull": "never", "_dify_stack_missing": ["localhost/none:1"], "_dify_stack_up": UP_SKIPPED,
                "_dify_stack_load_error": "/opt/a.tar: open failed"},
               {"pull": "never", "missing": ["localhost/none:1"], "load_error": "/opt/a.tar: open failed"}),
    "pull": ({"_dify_stack_missing": ["a:1", "b:2"], "_dify_stack_up": UP_SKIPPED, "_dify_stack_pull_error": "i/o timeout"},
             {"missing": ["a:1", "b:2"], "pull_error": "i/o timeout"}),
    "unhealthy": ({"_dify_stack_up": UP_FAILED, "_dify_stack_up_error": "container dify-api-1 is unhealthy",
                   "dify_stack_health_timeout": 900, "dify_stack_project_dir": "/srv/dify"},
                  {"up_error": "container dify-api-1 is unhealthy", "health_timeout": 900, "project_dir": "/srv/dify"}),
    "not_created": ({"dify_stack_state": "created", "_dify_stack_up": UP_FAILED, "_dify_stack_up_error": "no such network"},
                    {"state": "created", "up_error": "no such network"}),
    "up_not_run": ({"dify_stack_state": "created"}, {"state": "created"}),
}

# The failures as operators read them, whole.
MESSAGES = {
    "docker_unchecked": (
        "host docker_unchecked: the stack was asked to be started (dify_stack_state) and is not: the Docker check (docker"
        " compose ls) failed - no usable Docker engine with Compose v2 on the host (). Install Docker Engine with the"
        " Compose v2 plugin and start it (the difyops.dify.runtime playbook: role difyops.dify.docker_engine with"
        " docker_engine_start true), or set dify_stack_state to rendered to render and validate only."),
    "images": (
        "host images: the stack was asked to be started (dify_stack_state) and is not: the image check failed - images"
        " missing and dify_stack_pull is never: localhost/none:1; loading the image archives failed: /opt/a.tar: open"
        " failed. Give the images' archives in dify_stack_image_archives (or dify_stack_image_archives_on_host), load"
        " them onto the host (docker load), set dify_stack_images to images the host has, or set dify_stack_pull to"
        " missing so that they are pulled (docs/airgapped.md)."),
    "unhealthy": (
        "host unhealthy: the stack was asked to be started (dify_stack_state) and is not: docker compose up and the"
        " health checks failed - the containers did not come up healthy within 900 s (container dify-api-1 is"
        " unhealthy). Read docker compose --project-directory /srv/dify ps --all and logs on the host; raise"
        " dify_stack_health_timeout (now 900 s) if the services were still starting."),
    "up_not_run": (
        "host up_not_run: the stack was asked to be created (dify_stack_state) and is not: docker compose create failed"
        " - the containers did not come up (docker compose up did not run). Read docker compose --project-directory"
        " /opt/dify ps --all and logs on the host."),
}

PLAYBOOK = [{
    "name": "Run dify_stack's report",
    "hosts": "all",
    "gather_facts": False,
    "tasks": [{"name": "Report", "ansible.builtin.include_role": {"name": "difyops.dify.dify_stack", "tasks_from": "report"}}],
}]


def expected(name: str) -> dict:
    """The pure function's answer for a case, with the role's defaults."""
    arguments = dict(state="started", started=False, docker_rc=0, docker_error="", missing=[], pull="missing",
                     health_timeout=600, project_dir="/opt/dify", host=name)
    arguments.update(CASES[name][1])
    return status(arguments.pop("services", BUNDLE["services"]), **arguments)


@pytest.fixture(scope="module")
def tasks(tmp_path_factory):
    hosts = {}
    for name, (overrides, _arguments) in CASES.items():
        hostvars = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable, "_dify_stack_bundle": BUNDLE,
                    "_dify_stack_docker": {"rc": 0, "stdout": "", "stderr": ""}, "_dify_stack_missing": [],
                    "dify_stack_state": "started"}
        hostvars.update(overrides)
        if hostvars["_dify_stack_docker"] is None:
            del hostvars["_dify_stack_docker"]
        hosts[name] = hostvars
    _proc, report = run_playbook(tmp_path_factory.mktemp("stack_status"), {"all": {"hosts": hosts}}, PLAYBOOK)
    return {task["task"]["name"].split(" : ", 1)[-1]: task["hosts"] for task in report["plays"][0]["tasks"]}


@pytest.mark.parametrize("name", list(CASES))
def test_the_published_status_is_the_functions(tasks, name):
    published = tasks[STATUS_TASK][name]["ansible_facts"]["dify_stack_status"]
    want = expected(name)
    assert {key: published[key] for key in ("state", "step", "reason", "validated")} == \
        {key: want[key] for key in ("state", "step", "reason", "validated")}
    assert published["host"] == name
    assert set(published) == {"host", "state", "reason", "step", "project_dir", "url", "services", "published",
                              "validated", "inference"}


@pytest.mark.parametrize("name", list(CASES))
def test_the_failure_is_the_functions(tasks, name):
    result, want = tasks[FAIL_TASK][name], expected(name)
    if want["fail"]:
        assert result.get("failed") and result["msg"] == want["message"], result
    else:
        assert result.get("skipped") and not result.get("failed"), result


@pytest.mark.parametrize("name", list(MESSAGES))
def test_the_failures_read_as_before(tasks, name):
    assert tasks[FAIL_TASK][name]["msg"] == MESSAGES[name]

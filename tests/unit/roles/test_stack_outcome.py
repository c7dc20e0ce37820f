# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""dify_stack's report.yml, run by ansible-playbook on the controller: a stack that was asked to
start and did not (no Docker, images missing, a failed pull, a failed `compose up` or health
check) fails the host after its status is published; a started, rendered or empty stack does not.

Each case is a host of a generated inventory whose variables stand for what main.yml and start.yml
register. report.yml only sets facts, prints and fails: nothing is run on any host."""

from __future__ import annotations

import pathlib
import sys

import pytest
import yaml

from playbook_runner import run_playbook

REPO = pathlib.Path(__file__).resolve().parents[3]
FAIL_TASK = "Fail when the stack was asked to start and did not"
STATUS_TASK = "Publish the stack's status"

BUNDLE = {"services": ["api", "worker"], "public_url": "http://10.0.0.11", "ports": [], "inference": {}, "firewall": []}
DOCKER_OK = {"rc": 0, "stdout": "", "stderr": ""}
DOCKER_MISSING = {"rc": 127, "msg": "[Errno 2] No such file or directory: b'docker'"}
UP_OK = {"changed": True, "failed": False}
UP_SKIPPED = {"changed": False, "skipped": True}
UP_FAILED = {"changed": False, "failed": True, "msg": "Error while waiting: container dify-api-1 is unhealthy"}

# name: (host variables, expected state, substrings of the failure or None when the host must not fail)
CASES = {
    "started": ({"_dify_stack_up": UP_OK}, "started", None),
    "created": ({"dify_stack_state": "created", "_dify_stack_up": UP_OK}, "created", None),
    "rendered": ({"dify_stack_state": "rendered"}, "rendered", None),
    "empty": ({"_dify_stack_bundle": dict(BUNDLE, services=[])}, "empty", None),
    "no_docker": ({"_dify_stack_docker": DOCKER_MISSING}, "rendered",
                  ["host no_docker:", "asked to be started (dify_stack_state)", "the Docker check (docker compose ls) failed",
                   "No such file or directory", "docker_engine_start"]),
    "pull_failed": ({"_dify_stack_missing": ["langgenius/dify-api:1.13.3"], "_dify_stack_up": UP_SKIPPED,
                     "_dify_stack_pull_error": "Get https://registry-1.docker.io/v2/: dial tcp: i/o timeout"}, "rendered",
                    ["host pull_failed:", "the image pull failed", "i/o timeout", "langgenius/dify-api:1.13.3", "dify_stack_pull to never"]),
    "images_never": ({"dify_stack_pull": "never", "_dify_stack_missing": ["localhost/none:1"], "_dify_stack_up": UP_SKIPPED},
                     "rendered", ["host images_never:", "the image check failed", "dify_stack_pull is never: localhost/none:1"]),
    "unhealthy": ({"_dify_stack_up": UP_FAILED, "_dify_stack_up_error": UP_FAILED["msg"]}, "rendered",
                  ["host unhealthy:", "docker compose up and the health checks failed", "within 600 s",
                   "container dify-api-1 is unhealthy", "dify_stack_health_timeout"]),
    "create_failed": ({"dify_stack_state": "created", "_dify_stack_up": UP_FAILED, "_dify_stack_up_error": "no such network"},
                      "rendered", ["asked to be created (dify_stack_state)", "docker compose create failed", "no such network"]),
}

# In check mode the runtime of a bare host is not installed yet: a missing Docker is only reported.
CHECK_CASES = {
    "check_no_docker": ({"_dify_stack_docker": DOCKER_MISSING}, "rendered", None),
    "check_images_never": ({"dify_stack_pull": "never", "_dify_stack_missing": ["localhost/none:1"], "_dify_stack_up": UP_SKIPPED},
                           "rendered", ["the image check failed"]),
}

PLAYBOOK = [{
    "name": "Run dify_stack's report",
    "hosts": "all",
    "gather_facts": False,
    "tasks": [{"name": "Report", "ansible.builtin.include_role": {"name": "difyops.dify.dify_stack", "tasks_from": "report"}}],
}]


def _run(tmp_path: pathlib.Path, cases: dict, check: bool) -> dict:
    hosts = {}
    for name, (overrides, _state, _expect) in cases.items():
        hostvars = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                    "_dify_stack_bundle": BUNDLE, "_dify_stack_docker": DOCKER_OK, "_dify_stack_missing": []}
        hostvars.update(overrides)
        hosts[name] = hostvars
    proc, report = run_playbook(tmp_path, {"all": {"hosts": hosts}}, PLAYBOOK, check)
    tasks = {task["task"]["name"].split(" : ", 1)[-1]: task["hosts"] for task in report["plays"][0]["tasks"]}
    assert STATUS_TASK in tasks and FAIL_TASK in tasks, "report.yml ran no status or no failure task: %s" % list(tasks)
    expect_failure = any(case[2] is not None for case in cases.values())
    assert (proc.returncode != 0) == expect_failure, "rc %d: %s" % (proc.returncode, proc.stderr[-2000:])
    return tasks


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    return {
        False: _run(tmp_path_factory.mktemp("stack_outcome"), CASES, check=False),
        True: _run(tmp_path_factory.mktemp("stack_outcome_check"), CHECK_CASES, check=True),
    }


@pytest.mark.parametrize("check, name", [(False, name) for name in CASES] + [(True, name) for name in CHECK_CASES])
def test_a_stack_asked_to_start_that_did_not_fails_the_host(outcomes, check, name):
    _overrides, state, expect = (CHECK_CASES if check else CASES)[name]
    tasks = outcomes[check]
    status = tasks[STATUS_TASK][name]["ansible_facts"]["dify_stack_status"]
    assert status["state"] == state, status
    result = tasks[FAIL_TASK][name]
    if expect is None:
        assert result.get("skipped") and not result.get("failed"), result
        assert status["step"] == "" or check, status
    else:
        assert result.get("failed"), result
        for part in expect:
            assert part in result["msg"], "%r not in %r" % (part, result["msg"])


def test_the_report_runs_last_in_main():
    """The failure lives at the end of report.yml, so main.yml must include report.yml as its last
    task and unconditionally: a `when` there would skip the failure with the report."""
    with (REPO / "roles/dify_stack/tasks/main.yml").open(encoding="utf-8") as handle:
        tasks = yaml.safe_load(handle)
    last = tasks[-1]
    assert last["ansible.builtin.include_tasks"]["file"] == "report.yml"
    assert "when" not in last and "ignore_errors" not in last


def test_no_role_ignores_errors():
    """A failed step must fail the play or be rescued into a reported reason; ignore_errors does neither."""
    offenders = [str(path.relative_to(REPO)) for path in sorted((REPO / "roles").glob("*/tasks/*.yml"))
                 if "ignore_errors" in path.read_text(encoding="utf-8")]
    assert not offenders, offenders

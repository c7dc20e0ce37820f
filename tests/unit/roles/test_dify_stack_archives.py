# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""dify_stack's image archives (docs/airgapped.md): start.yml loads them only when an image is
missing, before the per-image check and any pull; archives.yml, run by ansible-playbook on this
machine against a stand-in `docker` that records its calls, copies the controller's archives
privately, loads them and the host's own, changes nothing in check mode and notes a failed load
instead of failing before the report."""

from __future__ import annotations

import os
import pathlib
import stat
import sys

import pytest
import yaml

from playbook_runner import run_playbook

REPO = pathlib.Path(__file__).resolve().parents[3]
TASKS = REPO / "roles" / "dify_stack" / "tasks"
FAKE_DOCKER = """#!/bin/sh
echo "$*" >> "%(log)s"
if [ -n "$DIFYOPS_FAIL_LOAD" ]; then echo "archive/tar: invalid tar header" >&2; exit 1; fi
echo "Loaded image: localhost/example:1"
"""


def load(name):
    return yaml.safe_load((TASKS / name).read_text(encoding="utf-8"))


def test_start_loads_the_archives_after_the_first_image_check_and_before_the_per_image_check():
    names = [task["name"] for task in load("start.yml")]
    include = next(task for task in load("start.yml") if task.get("ansible.builtin.include_tasks", {}).get("file") == "archives.yml")
    assert names.index("Look for every image of the project on the host") < names.index(include["name"])
    assert names.index(include["name"]) < names.index("Find the images that are not on the host")
    assert names.index(include["name"]) < names.index("Pull the missing images")
    assert "_dify_stack_images_present.rc != 0" in include["when"]


def _run(tmp_path, check=False, fail=False):
    work = tmp_path / ("check" if check else "fail" if fail else "run")
    (work / "bin").mkdir(parents=True)
    docker = work / "bin" / "docker"
    docker.write_text(FAKE_DOCKER % {"log": work / "docker.log"}, encoding="utf-8")
    docker.chmod(0o755)
    controller = work / "controller" / "dify-images.tar"
    controller.parent.mkdir()
    controller.write_bytes(b"not really a tar" * 64)
    on_host = work / "host-share" / "more.tar"
    on_host.parent.mkdir()
    on_host.write_bytes(b"shipped")
    play = [{"name": "Load", "hosts": "all", "gather_facts": False,
             "environment": {"PATH": "%s:%s" % (work / "bin", os.environ["PATH"]), **({"DIFYOPS_FAIL_LOAD": "1"} if fail else {})},
             "tasks": [{"name": "Archives", "ansible.builtin.include_role": {"name": "difyops.dify.dify_stack", "tasks_from": "archives"}},
                       {"name": "Show", "ansible.builtin.debug": {"var": "_dify_stack_load_error"}}]}]
    hosts = {"all": {"hosts": {"h": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                                     "dify_stack_image_archives": [str(controller)],
                                     "dify_stack_image_archives_on_host": [str(on_host)],
                                     "dify_stack_image_archive_dir": str(work / "images")}}}}
    proc, report = run_playbook(work, hosts, play, check)
    assert proc.returncode == 0, proc.stdout[-3000:]
    log = work / "docker.log"
    return work, report["stats"]["h"], log.read_text(encoding="utf-8").splitlines() if log.exists() else [], report


@pytest.mark.skipif(os.geteuid() != 0, reason="the copies are root's")
def test_the_archives_are_copied_privately_and_loaded_with_the_hosts_own(tmp_path):
    work, stats, calls, _report = _run(tmp_path)
    copy = work / "images" / "dify-images.tar"
    assert stat.S_IMODE((work / "images").stat().st_mode) == 0o700
    assert stat.S_IMODE(copy.stat().st_mode) == 0o600 and copy.stat().st_uid == 0
    assert copy.read_bytes() == (work / "controller" / "dify-images.tar").read_bytes()
    assert calls == ["load --input %s" % copy, "load --input %s" % (work / "host-share" / "more.tar")]
    assert stats["changed"] == 3 and stats["failures"] == 0


def test_check_mode_copies_and_loads_nothing(tmp_path):
    work, stats, calls, _report = _run(tmp_path, check=True)
    assert not (work / "images").exists() and calls == []
    assert stats["failures"] == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="the copies are root's")
def test_a_failed_load_is_noted_for_the_report_not_raised(tmp_path):
    work, stats, calls, report = _run(tmp_path, fail=True)
    assert stats["failures"] == 0 and len(calls) == 2
    shown = report["plays"][0]["tasks"][-1]["hosts"]["h"]["_dify_stack_load_error"]
    assert "invalid tar header" in shown and "dify-images.tar" in shown

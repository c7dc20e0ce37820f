# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run a generated playbook with ansible-playbook on the controller and read its JSON report: the one
runner of the role tests in this directory (hosts use the local connection; nothing leaves WORK)."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
from typing import Any, Dict, List, Tuple

import pytest
import yaml

REPO = pathlib.Path(__file__).resolve().parents[3]


def run_playbook(work: pathlib.Path, hosts: Dict[str, Any], playbook: List[Dict[str, Any]],
                 check: bool = False) -> Tuple[subprocess.CompletedProcess, Dict[str, Any]]:
    """Write HOSTS (an inventory's {"all": {"hosts": ...}}) and PLAYBOOK into WORK, run them with the
    collection of this checkout, and answer the process and its ansible.posix.json report; a run
    that prints no JSON fails the test with its output."""
    (work / "hosts.yml").write_text(yaml.safe_dump(hosts), encoding="utf-8")
    (work / "play.yml").write_text(yaml.safe_dump(playbook, sort_keys=False), encoding="utf-8")
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_COLLECTIONS_PATH=str(REPO / ".cache/collections"),
               ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_CALLBACK_RESULT_FORMAT="json",
               ANSIBLE_FACT_CACHING="memory", ANSIBLE_LOCAL_TEMP=str(work / "tmp"), ANSIBLE_HOME=str(work / "home"))
    cmd = [str(pathlib.Path(sys.executable).parent / "ansible-playbook"), "-i", str(work / "hosts.yml"), str(work / "play.yml")]
    proc = subprocess.run(cmd + (["--check"] if check else []), env=env, cwd=work, capture_output=True, text=True,
                          timeout=300, check=False)
    try:
        report = json.loads(proc.stdout)
    except ValueError:
        pytest.fail("ansible-playbook printed no JSON (rc %d): %s %s" % (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:]))
    return proc, report

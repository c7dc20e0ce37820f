# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""`site` runs one step with --tags (tune, runtime, services, stack, monitoring): ansible-playbook
--list-tasks on the real playbook shows which plays each tag selects. Facts, the plan and the
secrets run under every tag, since every step reads them; the other steps' roles only check
their arguments (Ansible tags that check always)."""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys
from typing import List

import pytest
import yaml

REPO = pathlib.Path(__file__).resolve().parents[3]
ALWAYS = ["Gather the hardware facts that sizing starts from", "Plan the Dify fleet", "Check the plan against what is deployed",
          "Choose the deployment's secrets"]
STEPS = {
    "tune": ["Tune the hosts to their plan"],
    "runtime": ["Install the container runtime"],
    "services": ["Tune PostgreSQL on the database host", "Put the nginx gateway in front of the app hosts"],
    "stack": ["Render, validate and start the stack", "Report the fleet's stack"],
    "monitoring": ["Install and configure the exporters and Prometheus"],
}


def plays_with_tasks(tmp_path: pathlib.Path, tags: str) -> List[str]:
    """The names of the plays of site that run at least one task under ``tags``."""
    inventory = {"all": {"children": {"dify": {"hosts": {"one": {}}}, "dify_monitoring": {"hosts": {"one": {}}}}}}
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inventory), encoding="utf-8")
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_COLLECTIONS_PATH=str(REPO / ".cache/collections"),
               ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"), ANSIBLE_HOME=str(tmp_path / "home"))
    proc = subprocess.run([str(pathlib.Path(sys.executable).parent / "ansible-playbook"), "-i", str(tmp_path / "hosts.yml"),
                           "--list-tasks", "--tags", tags, str(REPO / "playbooks" / "site.yml")],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    plays = re.split(r"(?m)^\s*play #\d+ \([^)]*\): ", proc.stdout)[1:]
    names = []
    for play in plays:
        name, _sep, rest = play.partition("\tTAGS:")
        # A role's argument check is tagged always by Ansible itself: it checks, it changes nothing.
        tasks = [line for line in rest.splitlines()[2:] if line.strip() and "Validating arguments against arg spec" not in line]
        if tasks and name.strip() not in names:
            names.append(name.strip())
    return names


@pytest.mark.parametrize("tag", sorted(STEPS))
def test_a_tag_runs_its_step_with_the_facts_the_plan_and_the_secrets(tmp_path, tag):
    names = plays_with_tasks(tmp_path, tag)
    assert set(ALWAYS) <= set(names), names
    assert set(STEPS[tag]) <= set(names), names
    others = {play for step, plays in STEPS.items() if step != tag for play in plays}
    assert not others & set(names), "tag %s also runs %s" % (tag, sorted(others & set(names)))

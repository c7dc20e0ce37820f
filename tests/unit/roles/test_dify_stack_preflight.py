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

# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark helper, not shipped: names the task that is running in the file named by
DIFYOPS_CURRENT_TASK, so that bench/fleet.sh's ssh wrapper can tell which task each of its ssh
invocations belongs to."""

from __future__ import annotations

DOCUMENTATION = r"""
name: current_task
type: aggregate
short_description: Write the name of the running task to a file (benchmarks only)
description:
  - >-
    Used by bench/fleet.sh to count round trips per task; the file is named by the environment
    variable C(DIFYOPS_CURRENT_TASK) and holds one line, the play's name, C(|), then the task's
    name as the default callback shows it (role, colon, task).
  - It is exact with the linear strategy, which starts a task only when every host has finished the
    one before it (the collection's plays use it); with the free strategy tasks overlap.
author: difyops contributors (@difyops)
options: {}
"""

import os

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    """Write the task's name when the strategy starts it, before any host runs it."""

    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "current_task"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self.play = ""

    def _write(self, label: str) -> None:
        path = os.environ.get("DIFYOPS_CURRENT_TASK")
        if not path:
            return
        # Replaced in one rename, so a reader sees either the old name or the new one.
        with open(path + ".tmp", "w", encoding="utf-8") as handle:
            handle.write(" ".join(label.split()) + "\n")
        os.replace(path + ".tmp", path)

    def v2_playbook_on_play_start(self, play):
        self.play = play.get_name().strip()
        self._write(f"{self.play} | (play start)")

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._write(f"{self.play} | {task.get_name()}")

    def v2_playbook_on_handler_task_start(self, task):
        self._write(f"{self.play} | handler {task.get_name()}")

    def v2_playbook_on_stats(self, stats):
        self._write("(playbook end)")

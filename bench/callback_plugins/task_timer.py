# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark helper, not shipped: records how long each task took on each host and writes the
figures as JSON to the file named by DIFYOPS_TASK_TIMES when the playbook ends."""

from __future__ import annotations

DOCUMENTATION = r"""
name: task_timer
type: aggregate
short_description: Write per-task, per-host durations to a JSON file (benchmarks only)
description:
  - Used by bench/facts.py; the file is named by the environment variable C(DIFYOPS_TASK_TIMES).
author: difyops contributors (@difyops)
options: {}
"""

import json
import os
import time

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    """Task start time, and for every host the time its result arrived."""

    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "task_timer"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self.started = 0.0
        self.task = ""
        self.times = []

    def v2_playbook_on_task_start(self, task, is_conditional):
        self.task = task.get_name()
        self.started = time.monotonic()

    def _record(self, result, status):
        self.times.append({"task": self.task, "host": result._host.get_name(), "status": status,
                           "seconds": time.monotonic() - self.started})

    def v2_runner_on_ok(self, result):
        self._record(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, "failed")

    def v2_playbook_on_stats(self, stats):
        path = os.environ.get("DIFYOPS_TASK_TIMES")
        if path:
            with open(path, "w", encoding="utf-8") as handle:
                json.dump(self.times, handle, indent=1)

# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Errors of the sizing engine: every refusal names host, component, need and availability."""

from __future__ import annotations


class PlanError(Exception):
    """The plan was refused; ``problems`` lists every reason, one sentence each."""

    def __init__(self, problems):
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))

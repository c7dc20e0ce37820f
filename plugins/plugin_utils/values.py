# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-side helpers the collection's filters share (never shipped to managed hosts)."""

from __future__ import annotations

from typing import Any, Mapping


def plain(value: Any) -> Any:
    """Ansible's lazy containers and tagged strings as plain Python values (dicts, lists, str)."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    return value

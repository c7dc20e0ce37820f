# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading sysfs attributes, shared by the GPU and disk inventories. No Ansible imports."""

from __future__ import annotations

from typing import Optional


def read_attribute(path: str) -> Optional[str]:
    """A sysfs attribute's text without its trailing newline; None when it cannot be read."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read().strip()
    except OSError:
        return None


def parse_numa_node(text: Optional[str]) -> Optional[int]:
    """sysfs writes -1 where the machine has no NUMA node to name; that, and nonsense, is None."""
    if text is None or not text.lstrip("-").isdigit():
        return None
    node = int(text)
    return node if node >= 0 else None

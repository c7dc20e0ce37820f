# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests on network notation (documentation in the .yml files beside)."""

from __future__ import annotations

import ipaddress
from typing import Any, Callable, Dict


def cidr(value: Any) -> bool:
    """True for a network written as address/prefix with the host bits zero (10.0.1.0/24)."""
    if not isinstance(value, str) or "/" not in value:
        return False
    try:
        ipaddress.ip_network(value, strict=True)
    except ValueError:
        return False
    return True


class TestModule:
    """Network notation tests."""

    def tests(self) -> Dict[str, Callable[[Any], bool]]:
        return {"cidr": cidr}

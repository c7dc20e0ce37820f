"""The cidr test as roles call it before they write access rules."""

from __future__ import annotations

import pytest

from ansible_collections.difyops.dify.plugins.test.network import TestModule as NetworkTests

CIDR = NetworkTests().tests()["cidr"]


@pytest.mark.parametrize("value", ["10.0.1.0/24", "10.0.1.7/32", "0.0.0.0/0", "fd00::/64", "::1/128", "192.168.0.0/16"])
def test_networks_in_cidr_notation(value):
    assert CIDR(value)


@pytest.mark.parametrize("value", [
    "10.0.1.7",          # a bare address: which network was meant?
    "10.0.1.7/24",       # host bits set
    "10.0.1.0/33",       # prefix out of range
    "fd00::1/64",        # host bits set (IPv6)
    "app-hosts",         # a name
    "10.0.1.0/24 ",      # stray whitespace
    "",
    None,
    24,
    ["10.0.1.0/24"],
])
def test_everything_else(value):
    assert not CIDR(value)

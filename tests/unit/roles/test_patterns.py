# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The patterns that roles' preflight checks use with Ansible's `match` test (re.match), read from
the roles' vars files as Ansible reads them."""

from __future__ import annotations

import pathlib
import re

import pytest
import yaml

ROLES = pathlib.Path(__file__).resolve().parents[3] / "roles"


def pattern(role: str, name: str) -> str:
    with (ROLES / role / "vars" / "main.yml").open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)[name]


@pytest.mark.parametrize("endpoint", ["api:5001", "10.0.0.11:5001", "app-1.internal:3000", "[fd00::11]:5002", "[::1]:80"])
def test_gateway_upstream_endpoints_accepted(endpoint):
    assert re.match(pattern("nginx_gateway", "_nginx_gateway_endpoint_pattern"), endpoint)


@pytest.mark.parametrize("endpoint", ["api", "10.0.0.11", "fd00::11:5002", "[fd00::11]", "http://api:5001", "api:port", "a b:1"])
def test_gateway_upstream_endpoints_refused(endpoint):
    assert not re.match(pattern("nginx_gateway", "_nginx_gateway_endpoint_pattern"), endpoint)


@pytest.mark.parametrize("mime, ok", [("text/plain", True), ("application/vnd.api+json", True),
                                      ("Text/Plain", False), ("text", False), ("text/plain; charset=utf-8", False)])
def test_gzip_types(mime, ok):
    assert bool(re.match(pattern("nginx_gateway", "_nginx_gateway_mime_pattern"), mime)) is ok

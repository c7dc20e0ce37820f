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


# host_tuning deletes and rewrites what lies at host_tuning_swapfile_path: these paths are refused
# by name before anything is looked at (what exists at an accepted path is checked on the host).
@pytest.mark.parametrize("path", ["/swapfile.dify", "/swapfile", "/swap/dify.swap", "/var/swap", "/srv/swap/dify",
                                  "/opt/swapfile", "/home/ops/swapfile", "/mnt/data/swapfile", "/a/.hidden",
                                  "/var/lib/dockerx/swapfile"])
def test_swapfile_paths_accepted(path):
    assert not re.match(pattern("host_tuning", "_host_tuning_swapfile_refused_pattern"), path)


@pytest.mark.parametrize("path", [
    "/", "/srv", "/var", "/var/lib", "/home", "/root", "/opt", "/tmp", "/mnt",
    "/etc", "/etc/fstab", "/usr/swapfile", "/boot/swap", "/dev/sda", "/dev/nvme0n1p2", "/proc/swaps", "/sys/x",
    "/run/swap", "/var/log/swap", "/var/run/x", "/lib64/x",
    "/var/lib/docker", "/var/lib/docker/volumes/x", "/var/lib/containerd/x", "/var/lib/containers/storage",
    "/var/lib/postgresql", "/var/lib/postgresql/17/main", "/var/lib/pgsql/data", "/var/lib/mysql/ibdata1",
    "/a//b", "/a/../b", "/a/./b", "/a/..", "/a/.", "/swapfile/", "/srv/swap/"])
def test_swapfile_paths_refused(path):
    assert re.match(pattern("host_tuning", "_host_tuning_swapfile_refused_pattern"), path)

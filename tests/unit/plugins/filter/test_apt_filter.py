# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""apt_unlisted: the packages apt's lists cannot install yet, read from the records of
`apt-cache show` (whose exit status is 0 as soon as one package is known), against the real
apt-cache of this machine; and no role decides from that exit status any more."""

from __future__ import annotations

import pathlib
import re
import shutil
import subprocess

import pytest
import yaml

from ansible.errors import AnsibleFilterError
from ansible_collections.difyops.dify.plugins.filter.apt import apt_unlisted

REPO = pathlib.Path(__file__).resolve().parents[4]
APT_CACHE = shutil.which("apt-cache")
MISSING = "difyops-no-such-package"


def show(*packages: str) -> subprocess.CompletedProcess:
    return subprocess.run([APT_CACHE, "show", "--no-all-versions", *packages], capture_output=True, text=True, check=False)


def test_records_are_read_and_pins_removed():
    out = "Package: nginx\nVersion: 1.22.1-9\nDepends: nginx-common\n\nPackage: docker-ce\nVersion: 5:27.5.1\n"
    assert apt_unlisted(out, ["nginx", "docker-ce=5:27.5.1-1~debian.12~bookworm", "nginx>=1.22"]) == []
    assert apt_unlisted(out, ["nginx", "nginx-common", "containerd.io"]) == ["nginx-common", "containerd.io"]
    # A name that is only mentioned (another package's Depends) has no record.
    assert apt_unlisted("Package: docker.io\nDepends: containerd\n", ["containerd"]) == ["containerd"]
    assert apt_unlisted("", ["nginx"]) == ["nginx"]
    assert apt_unlisted(None, []) == []


def test_a_name_is_refused_where_a_list_belongs():
    with pytest.raises(AnsibleFilterError, match="list of package names"):
        apt_unlisted("", "nginx")


@pytest.mark.skipif(APT_CACHE is None, reason="apt-cache is not installed (a Debian controller has it)")
def test_the_real_apt_cache_succeeds_when_it_knows_only_one_package():
    # dpkg is installed on every Debian machine, so apt knows it even without package lists.
    both = show("dpkg", MISSING)
    assert both.returncode == 0, both.stderr
    assert apt_unlisted(both.stdout, ["dpkg", MISSING]) == [MISSING]
    assert apt_unlisted(show("dpkg").stdout, ["dpkg"]) == []
    alone = show(MISSING)
    assert alone.returncode != 0
    assert apt_unlisted(alone.stdout, [MISSING]) == [MISSING]


def walk(tasks):
    for task in tasks or []:
        if isinstance(task, dict):
            yield task
            for key in ("block", "rescue", "always"):
                yield from walk(task.get(key))


def test_no_role_trusts_the_exit_status_of_apt_cache():
    found, asked = [], 0
    for path in sorted(REPO.glob("roles/*/tasks/*.yml")):
        text = path.read_text(encoding="utf-8")
        registers = [task["register"] for task in walk(yaml.safe_load(text))
                     if "register" in task and "apt-cache" in str(task.get("ansible.builtin.command", ""))]
        asked += len(registers)
        for name in registers:
            if re.search(r"\b%s\.rc\b" % re.escape(name), text):
                found.append("%s: %s.rc" % (path.relative_to(REPO), name))
            if not re.search(r"\b%s\.stdout\b[^\n]*\|\s*difyops\.dify\.apt_unlisted\(" % re.escape(name), text):
                found.append("%s: %s is not read with difyops.dify.apt_unlisted" % (path.relative_to(REPO), name))
    assert found == []
    # common (tools and package), docker_engine, nginx_gateway, postgres_tuning, dify_stack, monitoring (2).
    assert asked == 8

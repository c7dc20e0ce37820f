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
from ansible_collections.difyops.dify.plugins.filter.apt import apt_policy, apt_unlisted

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


# apt-cache policy on Debian 12 (this machine's format): bash installed with a newer candidate,
# cowsay known to the lists only, docker.io installed from dpkg's status alone (no lists), and a
# multiarch name.
POLICY = """\
bash:
  Installed: 5.2.15-2+b8
  Candidate: 5.2.15-2+b13
  Version table:
     5.2.15-2+b13 500
        500 http://deb.debian.org/debian bookworm/main amd64 Packages
 *** 5.2.15-2+b8 100
        100 /var/lib/dpkg/status
cowsay:
  Installed: (none)
  Candidate: 3.03+dfsg2-8
  Version table:
     3.03+dfsg2-8 500
        500 http://deb.debian.org/debian bookworm/main amd64 Packages
docker.io:
  Installed: 26.1.5+dfsg1-9+deb13u1+b1
  Candidate: 26.1.5+dfsg1-9+deb13u1+b1
  Version table:
 *** 26.1.5+dfsg1-9+deb13u1+b1 100
        100 /var/lib/dpkg/status
libc6:amd64:
  Installed: 2.36-9+deb12u10
  Candidate: 2.36-9+deb12u10
  Version table:
"""


def test_policy_names_what_an_install_would_change_and_what_the_lists_lack():
    assert apt_policy(POLICY, ["bash", "docker.io", "libc6"]) == {"missing": [], "unlisted": []}
    assert apt_policy(POLICY, ["bash", "cowsay", "prometheus"]) == {"missing": ["cowsay", "prometheus"], "unlisted": ["prometheus"]}
    # A pinned package is left to apt, which decides on its version; an unknown pinned one needs the lists.
    assert apt_policy(POLICY, ["bash=5.2.15-2+b8", "nginx>=1.22"]) == {"missing": ["bash=5.2.15-2+b8", "nginx>=1.22"], "unlisted": ["nginx"]}
    assert apt_policy("", ["nginx"]) == {"missing": ["nginx"], "unlisted": ["nginx"]}
    assert apt_policy(None, []) == {"missing": [], "unlisted": []}
    with pytest.raises(AnsibleFilterError, match="list of package names"):
        apt_policy(POLICY, "bash")


@pytest.mark.skipif(APT_CACHE is None, reason="apt-cache is not installed (a Debian controller has it)")
def test_the_real_apt_cache_policy_says_dpkg_is_installed_and_knows_nothing_of_a_missing_package():
    out = subprocess.run([APT_CACHE, "policy", "dpkg", MISSING], capture_output=True, text=True, check=False)
    assert apt_policy(out.stdout, ["dpkg", MISSING]) == {"missing": [MISSING], "unlisted": [MISSING]}


def walk(tasks):
    for task in tasks or []:
        if isinstance(task, dict):
            yield task
            for key in ("block", "rescue", "always"):
                yield from walk(task.get(key))


def apt_reads(task: dict) -> list:
    """The names under which a commands_info task's apt-cache commands answer: its commands are a
    mapping, or a Jinja expression that builds one ({'apt': {'argv': ['apt-cache', ...]}})."""
    commands = (task.get("difyops.dify.commands_info") or {}).get("commands", {})
    if isinstance(commands, str):
        return re.findall(r"'(\w+)':\s*\{'argv':\s*\['apt-cache'", commands)
    return [name for name, command in commands.items() if "apt-cache" in str(command.get("argv", ""))]


def test_no_role_trusts_the_exit_status_of_apt_cache():
    found, asked = [], 0
    for role in sorted(REPO.glob("roles/*/tasks")):
        # A role may read apt in one task file and use the answer in another.
        text = "\n".join(path.read_text(encoding="utf-8") for path in sorted(role.glob("*.yml")))
        registers = []
        for path in sorted(role.glob("*.yml")):
            tasks = list(walk(yaml.safe_load(path.read_text(encoding="utf-8"))))
            registers += [task["register"] for task in tasks
                          if "register" in task and "apt-cache" in str(task.get("ansible.builtin.command", ""))]
            # A commands_info read: each of its commands is answered under outputs.<name>.
            registers += ["%s.outputs.%s" % (task["register"], name) for task in tasks if "register" in task
                          for name in apt_reads(task)]
        asked += len(registers)
        for name in registers:
            if re.search(r"\b%s\.rc\b" % re.escape(name), text):
                found.append("%s: %s.rc" % (role.parent.name, name))
            if not re.search(r"\b%s\.stdout\b[^\n]*\|\s*difyops\.dify\.apt_(unlisted|policy)\(" % re.escape(name), text):
                found.append("%s: %s is not read with difyops.dify.apt_unlisted or apt_policy" % (role.parent.name, name))
    assert found == []
    # common (tools and package), docker_engine, nginx_gateway, postgres_tuning, dify_stack, monitoring (2).
    assert asked == 8

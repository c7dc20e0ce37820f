# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What apt's package lists say about packages a role installs, from `apt-cache show`'s output.

`apt-cache show A B` succeeds as soon as apt knows one of the packages, and a name that other
packages only mention (docker-ce in Debian's lists) is "known" without a record of its own: its
exit status does not say whether the lists can install every package. The records can.
"""

from __future__ import annotations

import re
from typing import Dict, Iterable, List

_RECORD = re.compile(r"^Package: (\S+)$", re.MULTILINE)
# A version pin or bound after the name: docker-ce=5:27.5.1-1~debian.12~bookworm, nginx>=1.22.
_PIN = re.compile(r"[=<>].*$")


def unlisted(show_output: str, packages: Iterable[str]) -> List[str]:
    """The PACKAGES (names as the apt module takes them, pins allowed) without a record in
    SHOW_OUTPUT, in their order: the lists must be refreshed before they can be installed."""
    listed = set(_RECORD.findall(show_output or ""))
    names = [_PIN.sub("", str(package)) for package in packages]
    return [name for name in dict.fromkeys(names) if name not in listed]


# `apt-cache policy PACKAGE...`: a block per package apt knows, from its lists or dpkg's status,
# "NAME:" then "  Installed: VERSION|(none)" and "  Candidate: VERSION|(none)"; nothing for a
# package it does not know.
_POLICY = re.compile(r"^(\S+?)(?::[a-z0-9]+)?:\n  Installed: (\S+)\n  Candidate: (\S+)$", re.MULTILINE)


def policy(policy_output: str, packages: Iterable[str]) -> Dict[str, List[str]]:
    """What `apt-cache policy`'s POLICY_OUTPUT says of PACKAGES (names as the apt module takes
    them): ``missing``, those a ``state: present`` install would change (not installed; a pinned
    one always counts, apt decides on its version), and ``unlisted``, the missing ones apt's lists
    cannot install yet (no candidate). A role asks apt once and runs the apt module, whose rerun
    is the slowest call of a converged host, only when something is missing."""
    found = {name: (installed, candidate) for name, installed, candidate in _POLICY.findall(policy_output or "")}
    missing: List[str] = []
    not_listed: List[str] = []
    for package in dict.fromkeys(str(package) for package in packages):
        name = _PIN.sub("", package)
        installed, candidate = found.get(name, ("(none)", "(none)"))
        if installed == "(none)" or name != package:
            missing.append(package)
            if candidate == "(none)":
                not_listed.append(name)
    return {"missing": missing, "unlisted": not_listed}

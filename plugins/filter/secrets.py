# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The secrets a fleet has in use, read from its deployed .env files (documentation in
secrets_in_use.yml beside)."""

from __future__ import annotations

import base64
import binascii
from typing import Any, Dict, Iterable, List, Mapping

from ansible.errors import AnsibleFilterError


def env_values(text: str, names: Iterable[str]) -> Dict[str, str]:
    """NAME=value lines of a Compose .env file, for the given names only (comments and blanks skipped)."""
    wanted = set(names)
    values: Dict[str, str] = {}
    for line in text.splitlines():
        name, sep, value = line.strip().partition("=")
        if sep and name in wanted and value:
            values[name] = value
    return values


def _text(found: Mapping[str, Any]) -> str:
    if "text" in found:
        return str(found["text"])
    try:
        return base64.b64decode(str(found["content"])).decode("utf-8")
    except (KeyError, binascii.Error, UnicodeDecodeError) as exc:
        raise AnsibleFilterError("secrets_in_use: %s holds no readable .env content (%s)" % (found.get("at"), exc))


def _at(host: str, path: Any) -> str:
    return "%s:%s" % (host, path)


def secrets_in_use(found: Mapping[str, Mapping[str, Any]], names: List[str]) -> Dict[str, Any]:
    """One value per secret name from every host's deployed .env, the names whose hosts disagree,
    and the initialised databases whose password is a secret."""
    values: Dict[str, str] = {}
    first_at: Dict[str, str] = {}
    conflicts: Dict[str, List[str]] = {}
    places: List[str] = []
    databases: List[Dict[str, str]] = []
    for host in sorted(found):
        entry = found[host] or {}
        env = entry.get("env") or {}
        if env.get("content") is not None:
            at = _at(host, env.get("source", ".env"))
            places.append(at)
            for name, value in sorted(env_values(_text({"at": at, "content": env["content"]}), names).items()):
                if name not in values:
                    values[name], first_at[name] = value, at
                elif values[name] != value:
                    conflicts.setdefault(name, [first_at[name]]).append(at)
        for path, secret in entry.get("databases") or []:
            databases.append({"at": _at(host, path), "secret": str(secret)})
    return {"values": values, "at": places, "databases": databases,
            "conflicts": [{"name": n, "at": conflicts[n]} for n in sorted(conflicts)]}


class FilterModule:
    def filters(self):
        return {"secrets_in_use": secrets_in_use}

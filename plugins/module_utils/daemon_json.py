# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Docker's daemon.json as shared data: several owners (this collection, nvidia-ctk, the operator)
write keys into one file, so changes are merges of the keys one owns, never a rewrite of the file.
No Ansible imports: the docker_daemon_json module and the roles build on this."""

from __future__ import annotations

import copy
import json
from typing import Any, Dict, Iterable, Mapping, Optional


class DaemonJsonError(ValueError):
    """daemon.json cannot be read as a JSON object; the message says where and why."""


def load(text: Optional[str], path: str = "daemon.json") -> Dict[str, Any]:
    """The configuration in a daemon.json text; an absent or blank file is an empty configuration."""
    if text is None or not text.strip():
        return {}
    try:
        config = json.loads(text)
    except ValueError as exc:
        line = getattr(exc, "lineno", None)
        where = " at line %s, column %s" % (line, getattr(exc, "colno", "?")) if line else ""
        raise DaemonJsonError("%s is not valid JSON%s: %s. Docker cannot start with it either; fix or remove "
                              "the file, nothing was changed" % (path, where, getattr(exc, "msg", exc)))
    if not isinstance(config, dict):
        raise DaemonJsonError("%s holds a JSON %s, not an object; fix or remove the file, nothing was changed"
                              % (path, type(config).__name__))
    return config


def merge(current: Mapping[str, Any], settings: Mapping[str, Any], remove: Iterable[str] = ()) -> Dict[str, Any]:
    """`current` with `settings` merged in: objects are merged key by key (so a foreign key inside
    log-opts or runtimes survives), everything else is replaced; keys in `remove` are dropped."""
    merged = copy.deepcopy(dict(current))
    for key in remove:
        merged.pop(key, None)
    for key, value in settings.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def render(config: Mapping[str, Any]) -> str:
    return json.dumps(config, indent=2, sort_keys=True) + "\n"


def runtime_state(config: Mapping[str, Any], runtime: str = "nvidia", as_default: bool = False) -> Dict[str, Any]:
    """Whether a runtime is configured and whether it is the default, read without changing anything,
    and the decision built on it: `configure` is true exactly when `nvidia-ctk runtime configure`
    must run, that is when the runtime has no path yet, or when it should be the default and is not."""
    runtimes = config.get("runtimes")
    entry = runtimes.get(runtime) if isinstance(runtimes, Mapping) else None
    path = entry.get("path") if isinstance(entry, Mapping) else None
    configured = bool(path)
    is_default = config.get("default-runtime") == runtime
    if not configured:
        reason = "runtime '%s' has no path" % runtime if entry is not None else "runtime '%s' is not configured" % runtime
    elif as_default and not is_default:
        reason = "runtime '%s' is configured (%s) but is not the default runtime" % (runtime, path)
    else:
        reason = "runtime '%s' is configured (%s)%s" % (runtime, path, " as the default" if is_default else "")
    return {
        "configured": configured,
        "default": is_default,
        "path": path,
        "configure": not configured or (as_default and not is_default),
        "reason": reason,
    }

# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What one `docker info --format '{{json .}}'` says about a host's Docker: the client's version,
whether the engine answered (and its version), and the Compose v2 plugin's version.

`docker --version` and `docker compose version` cost a round trip each, and neither says whether
the engine answers. `docker info` answers all three at once: the client lists its CLI plugins
(Compose among them, with its version, or with the error that made it unusable) even when the
engine does not answer, in which case the server's fields are empty and `ServerErrors` says why.
It exits 0 either way when asked for JSON.
"""

from __future__ import annotations

import json
import re
from typing import Any, Dict, List

# X.Y or X.Y.Z at the start, after an optional "v": "2.26.1-4" (Debian), "v2.29.1" (Docker's own).
_RELEASE = re.compile(r"^v?(\d+\.\d+(?:\.\d+)?)")


class DockerInfoError(ValueError):
    """The output is not what `docker info --format '{{json .}}'` prints."""


def _compose(plugins: Any) -> Dict[str, str]:
    """The Compose plugin's version, or why there is none usable."""
    entries = [entry for entry in plugins or [] if isinstance(entry, dict) and entry.get("Name") == "compose"]
    if not entries:
        return {"compose": "", "compose_problem": "the Docker CLI lists no Compose plugin: the Compose v2 plugin is missing"}
    entry = entries[0]
    if entry.get("Err"):
        return {"compose": "", "compose_problem": "the Compose plugin at %s does not work (%s)" % (entry.get("Path", "?"), entry["Err"])}
    found = _RELEASE.match(str(entry.get("Version") or ""))
    if not found:
        return {"compose": "", "compose_problem": "the Compose plugin at %s gives no version (%r)" % (entry.get("Path", "?"), entry.get("Version"))}
    return {"compose": found.group(1), "compose_problem": ""}


def info(output: str) -> Dict[str, Any]:
    """From `docker info --format '{{json .}}'`'s standard output: `engine` (the client's version,
    as `docker --version` gives it), `server` (the engine's version; empty when it did not answer),
    `server_errors` (why it did not), `compose` (the Compose plugin's X.Y[.Z]; empty when it is
    missing or broken) and `compose_problem` (why)."""
    text = (output or "").strip()
    try:
        data = json.loads(text) if text else None
    except ValueError as exc:
        raise DockerInfoError("docker info printed no JSON (%s): %.200r" % (exc, text)) from None
    if not isinstance(data, dict) or not isinstance(data.get("ClientInfo"), dict):
        raise DockerInfoError("docker info printed no ClientInfo object: %.200r" % text)
    errors: List[str] = [str(error) for error in data.get("ServerErrors") or []]
    server = "" if errors else str(data.get("ServerVersion") or "")
    if not server and not errors:
        errors = ["the engine gave no version"]
    summary: Dict[str, Any] = {"engine": str(data["ClientInfo"].get("Version") or ""), "server": server,
                               "server_errors": errors}
    summary.update(_compose(data["ClientInfo"].get("Plugins")))
    return summary

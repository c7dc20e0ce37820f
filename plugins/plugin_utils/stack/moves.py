# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a new plan would leave behind on a deployed fleet.

Each host's deployed Compose project (its compose.yaml, as dify_stack wrote it) says which
services run there. A service the new plan no longer puts on that host either keeps data there
(a database, the vector store, Redis, local file or plugin storage) - then the plan is refused
unless the operator allows the move, since Dify would start against an empty store and the old
data would sit in an orphaned container - or keeps none, and is reported as an orphan that
Compose neither stops nor removes. Pure functions; no Ansible imports.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence

from ..sizing.catalog import VECTOR_STORES
from ..sizing.services import SERVICES
from .compose import DATA_DIRS

# What each service that keeps data on its host keeps (its record's ``keeps``).
_WHAT = {name: record.keeps for name, record in SERVICES.items() if record.keeps}


def _environment(service: Mapping[str, Any]) -> Dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, Mapping):
        return {str(k): str(v) for k, v in env.items()}
    pairs = (str(item).partition("=") for item in env)
    return {key: value for key, _sep, value in pairs}


def keeps_data(name: str, service: Mapping[str, Any]) -> bool:
    """Whether a deployed service keeps data on its host (file and plugin storage only when local)."""
    env = _environment(service)
    if name == "api":
        return env.get("STORAGE_TYPE") == "opendal" and env.get("OPENDAL_SCHEME", "fs") == "fs"
    if name == "plugin_daemon":
        return env.get("PLUGIN_STORAGE_TYPE") == "local"
    return name in _WHAT


def _planned_on(plan: Mapping[str, Any], name: str) -> List[str]:
    return sorted(h for h, p in plan["hosts"].items() if name in p.get("services", []))


def _planned_store(plan: Mapping[str, Any]) -> Optional[str]:
    stores = {s for p in plan["hosts"].values() for s in p.get("services", []) if s in VECTOR_STORES}
    return stores.pop() if len(stores) == 1 else None


def _refusal(host: str, name: str, plan: Mapping[str, Any]) -> str:
    kept = "host %s keeps %s in %s" % (host, _WHAT[name], DATA_DIRS.get(name, "its volume"))
    store = _planned_store(plan)
    if name in VECTOR_STORES and store and store != name:
        return ("%s, but the plan switches the vector store from %s to %s: Dify would answer from an empty "
                "store and the embeddings would be left behind. To keep %s, set dify_vector_store: %s. To "
                "switch, migrate the embeddings (Dify's `flask vdb-migrate` re-embeds every dataset into the "
                "new store) and run with dify_allow_data_move: true." % (kept, name, store, name, name))
    targets = _planned_on(plan, name)
    moved = ("moves %s to %s" % (name, ", ".join(targets))) if targets else "no longer runs %s" % name
    return ("%s, but the plan %s: the data would be left behind in an orphaned container. To keep it, place "
            "%s on %s again (its inventory group). To move it, back it up (difyops.dify.backup), restore it "
            "on the new host and run with dify_allow_data_move: true." % (kept, moved, name, host))


def plan_data_moves(plan: Mapping[str, Any], deployed: Mapping[str, Optional[Mapping[str, Any]]],
                    allowed: bool = False) -> Dict[str, List[str]]:
    """Refusals (data a plan would leave behind) and orphans (services no longer planned on a host).

    ``deployed`` maps a host to its deployed Compose project (None where it has none). With
    ``allowed`` (the operator's dify_allow_data_move) the refusals become part of the orphans.
    """
    refusals: List[str] = []
    orphans: List[str] = []
    for host in sorted(deployed):
        project = deployed[host] or {}
        planned: Sequence[str] = plan["hosts"].get(host, {}).get("services", [])
        for name in sorted(project.get("services") or {}):
            if name in planned:
                continue
            service = project["services"][name] or {}
            if keeps_data(name, service) and not allowed:
                refusals.append(_refusal(host, name, plan))
            else:
                orphans.append("%s: %s%s is no longer planned here; its container is neither stopped nor removed "
                               "(docker compose -p %s rm --stop %s, once its data is safe)"
                               % (host, name, " (with its data)" if keeps_data(name, service) else "",
                                  project.get("name", "dify"), name))
    return {"refusals": refusals, "orphans": orphans}

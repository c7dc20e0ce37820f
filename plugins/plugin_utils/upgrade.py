# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The order in which difyops.dify.upgrade moves a fleet's hosts, decided from the plan (never
shipped to managed hosts; playbooks/upgrade.yml renders it).

Steps, in order: ``data`` (hosts without app or gateway services: databases, Redis, vector store,
inference), ``migration`` (the one app host whose api migrates the database), ``apps_a`` and
``apps_b`` (the other app hosts, in two halves, so that at least half of them serve at any time),
``gateway``. In a split fleet every gateway takes the hosts of a step out of its upstreams while
they change (``drain``: their endpoints, as the plan's ``fleet.gateway_endpoints`` lists them)."""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Sequence

STEPS = ("data", "migration", "apps_a", "apps_b", "gateway")
DRAINED_STEPS = ("migration", "apps_a", "apps_b")


def _step(name: str, components: Sequence[str], migration_host: str, first_half: Sequence[str]) -> str:
    if "app" not in components and "gateway" not in components:
        return "data"
    if name == migration_host:
        return "migration"
    if "app" in components:
        return "apps_a" if name in first_half else "apps_b"
    return "gateway"


def upgrade_steps(plan: Mapping[str, Any], hosts: Sequence[str]) -> Dict[str, Any]:
    """The step of each host that changes (``hosts``, named in the plan, and with them the split
    fleet's gateway hosts), the endpoints each drained step takes out of the gateways, and the
    gateways that route around them (none in a single node, whose gateway runs on the host that
    changes).

    Returns {"step": {host: step}, "drain": {step: [host:port, ...]}, "gateways": [host, ...]}."""
    planned = plan["hosts"]
    fleet = plan["fleet"]
    unknown = sorted(str(h) for h in hosts if h not in planned)
    if unknown:
        raise ValueError("the plan has no host %s: plan the fleet with the inventory the upgrade runs on"
                         % ", ".join(unknown))
    gateways = [] if fleet["single_node"] else sorted(h for h, p in planned.items() if "gateway" in p["components"])
    changing = sorted(str(h) for h in hosts)
    if changing:
        # A gateway host of a split fleet runs the distribution's nginx and no Compose project, so
        # no version is recorded there: it changes with the fleet (the new version's routes).
        changing = sorted(set(changing) | {g for g in gateways if "app" not in planned[g]["components"]})
    migration = fleet["migration_host"]
    apps = [h for h in changing if h != migration and "app" in planned[h]["components"]]
    first_half = apps[:(len(apps) + 1) // 2]
    step = {h: _step(h, planned[h]["components"], migration, first_half) for h in changing}
    endpoints: Mapping[str, List[str]] = fleet.get("gateway_endpoints") or {}
    drain = {name: [e for h in changing if step[h] == name for e in endpoints.get(h, [])] for name in DRAINED_STEPS}
    return {"step": step, "drain": drain, "gateways": gateways}

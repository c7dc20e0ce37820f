# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The plan of a whole fleet: placement checks, every host's plan, and what only the fleet knows
(Postgres connections for every app host's pools, the gateway's upstreams, who may reach which
data service)."""

from __future__ import annotations

import ipaddress
from collections import Counter
from dataclasses import replace
from typing import Any, Dict, List, Mapping, Optional, Sequence

from .catalog import COMPONENTS, PROFILES, REQUIRED_COMPONENTS, SINGLE_HOST_COMPONENTS, VECTOR_STORES, auto_profile
from .errors import PlanError
from .host import DISK_KINDS, HostInput, plan_host
from .postgres import (STACK_POSTGRES_VERSIONS, PostgresMemoryError, host_provides_huge_pages, hot_table_settings,
                       postgres_settings)
from .units import ceil_div

PLAN_VERSION = 1
# Connections kept free for superusers, backups, monitoring and migrations.
POSTGRES_RESERVED_CONNECTIONS = 15
PORTS = {"api": 5001, "web": 3000, "plugin_daemon": 5002, "db_postgres": 5432, "redis": 6379,
         "weaviate": 8080, "qdrant": 6333, "pgvector": 5433, "inference": 8000}
# pgvector is published on 5433: a split fleet may run the host's PostgreSQL beside it on 5432.
DEFAULT_OPTIONS = {"profile": "auto", "vector_store": "auto", "object_storage": False}


def _int(value: Any, what: str, host: str, problems: List[str], minimum: int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        problems.append("host '%s': %s must be an integer, got %r" % (host, what, value))
        return minimum
    if number < minimum:
        problems.append("host '%s': %s must be at least %d, got %d" % (host, what, minimum, number))
    return number


def parse_host(raw: Mapping[str, Any], options: Mapping[str, Any], multi_host: bool, problems: List[str]) -> HostInput:
    """Validate one host's input dict and turn it into a HostInput."""
    name = str(raw.get("name") or "")
    if not name:
        problems.append("a host has no name: %r" % (dict(raw),))
    components = tuple(raw.get("components") or ())
    unknown = [c for c in components if c not in COMPONENTS]
    if unknown:
        problems.append("host '%s': unknown component(s) %s (known: %s)" % (name, ", ".join(unknown), ", ".join(COMPONENTS)))
    disk_kind = str(raw.get("disk_kind") or "ssd")
    if disk_kind not in DISK_KINDS:
        problems.append("host '%s': disk_kind '%s' is not one of %s" % (name, disk_kind, ", ".join(DISK_KINDS)))
        disk_kind = "ssd"
    profile = str(raw.get("profile") or options.get("profile") or "auto")
    if profile not in ("auto",) + PROFILES:
        problems.append("host '%s': profile '%s' is not one of auto, %s" % (name, profile, ", ".join(PROFILES)))
        profile = "auto"
    address = raw.get("address")
    if address is not None or multi_host:
        try:
            address = str(ipaddress.ip_address(str(address)))
        except ValueError:
            problems.append("host '%s': address %r is not an IP address; set ansible_host or dify_address to the "
                            "host's IP so other hosts can reach it" % (name, address))
    overrides = raw.get("overrides") or {}
    open_files = raw.get("open_files_limit")
    return HostInput(
        open_files_limit=None if open_files in (None, "") else _int(open_files, "open_files_limit", name, problems, 1024),
        name=name,
        vcpus=_int(raw.get("vcpus"), "vcpus", name, problems, 1),
        memory_mb=_int(raw.get("memory_mb"), "memory_mb", name, problems, 256),
        components=tuple(c for c in COMPONENTS if c in components),
        architecture=str(raw.get("architecture") or "x86_64"),
        address=address,
        disk_kind=disk_kind,
        gpus=tuple(raw.get("gpus") or ()),
        profile=profile,
        service_overrides=dict(overrides.get("services") or {}),
        setting_overrides=dict(overrides.get("settings") or {}),
    )


def check_placement(hosts: Sequence[HostInput], raw_hosts: Sequence[Mapping[str, Any]], options: Mapping[str, Any],
                    problems: List[str]) -> Optional[str]:
    """Placement rules that keep Dify working; returns the host that runs worker_beat."""
    for component in REQUIRED_COMPONENTS:
        if not any(component in h.components for h in hosts):
            problems.append("component '%s' is placed on no host: add a host to the inventory group 'dify_%s'"
                            % (component, component))
    for component in SINGLE_HOST_COMPONENTS:
        placed = [h.name for h in hosts if component in h.components]
        if len(placed) > 1:
            problems.append("component '%s' is placed on %d hosts (%s); it runs on exactly one host"
                            % (component, len(placed), ", ".join(placed)))
    app_hosts = [h.name for h in hosts if "app" in h.components]
    beat = [str(r.get("name")) for r in raw_hosts if r.get("worker_beat")]
    if len(beat) > 1:
        problems.append("worker_beat is placed on %d hosts (%s); exactly one host may run it, or Celery's "
                        "periodic tasks run twice" % (len(beat), ", ".join(beat)))
    app_names = set(app_hosts)
    for name in beat:
        if name not in app_names:
            problems.append("host '%s': worker_beat needs the app component on the same host" % name)
    if len(app_hosts) > 1 and not options.get("object_storage"):
        problems.append("app hosts %s are split over %d hosts but no shared object storage is configured; api "
                        "and worker on different hosts need S3-compatible storage (set dify_object_storage)"
                        % (", ".join(app_hosts), len(app_hosts)))
    if beat:
        return beat[0]
    return app_hosts[0] if app_hosts else None


def choose_vector_store(requested: str, hosts: Sequence[HostInput], problems: List[str]) -> str:
    """The vector store kind: as requested, or pgvector for edge/small vector hosts under 'auto'."""
    if requested != "auto":
        if requested not in VECTOR_STORES:
            problems.append("vector store '%s' is not supported (supported: auto, %s)"
                            % (requested, ", ".join(VECTOR_STORES)))
            return "pgvector"
        return requested
    for host in hosts:
        if "vector_store" in host.components:
            profile = auto_profile(host.vcpus, host.memory_mb) if host.profile == "auto" else host.profile
            return "pgvector" if profile in ("edge", "small") else "weaviate"
    return "weaviate"


def app_connections(plan: Mapping[str, Any]) -> int:
    """Postgres connections one app host can open at most: every process's full pool."""
    settings = plan["settings"]
    return sum(settings.get(s, {}).get("db_connections", 0) for s in ("api", "worker", "plugin_daemon"))


def connection_limit(connections: int) -> int:
    """max_connections for a server: the clients' connections plus the reserve, rounded up to 10."""
    return ceil_div(connections + POSTGRES_RESERVED_CONNECTIONS, 10) * 10


def _endpoint(plan: Mapping[str, Any], service: str, single_node: bool) -> str:
    host = service if single_node else plan["address"]
    return "%s:%d" % (host, PORTS[service])


def allowed_networks(plans: Sequence[Mapping[str, Any]]) -> List[str]:
    """The smallest list of CIDRs that covers exactly the given hosts' addresses."""
    addresses = [ipaddress.ip_network(p["address"]) for p in plans if p.get("address")]
    v4 = [a for a in addresses if a.version == 4]
    v6 = [a for a in addresses if a.version == 6]
    return [str(n) for group in (v4, v6) for n in ipaddress.collapse_addresses(group)]


def fleet_section(plans: Dict[str, Dict[str, Any]], vector_store: str, beat_host: Optional[str]) -> Dict[str, Any]:
    """Settings only the whole fleet determines; also completes the data hosts' settings."""
    single_node = len(plans) == 1
    apps = [p for p in plans.values() if "app" in p["components"]]
    connections = {p["name"]: app_connections(p) for p in apps}
    max_connections = connection_limit(sum(connections.values()))
    problems: List[str] = []
    for plan in plans.values():
        _complete_data_services(plan, max_connections, apps, problems)
    if problems:
        raise PlanError(problems)
    app_networks = allowed_networks(apps)
    data_access = {component: list(app_networks) for component in ("database", "redis", "vector_store", "gpu_inference")}
    return {
        "single_node": single_node,
        "vector_store": vector_store,
        "worker_beat_host": beat_host,
        "migration_host": beat_host,
        "postgres_max_connections": max_connections,
        "app_connections": connections,
        "gateway_hosts": [p["name"] for p in plans.values() if "gateway" in p["components"]],
        "gateway_upstreams": {
            service: [_endpoint(p, service, single_node) for p in apps if service in p["services"]]
            for service in ("api", "web", "plugin_daemon")
        },
        "plugin_daemon_host": beat_host,
        "data_access": data_access,
        "inference_endpoints": [
            "http://%s:%d/v1" % (p["address"] or p["name"], PORTS["inference"])
            for p in plans.values()
            if p["settings"].get("inference", {}).get("enabled")
        ],
    }


def _postgres_server(plan: Mapping[str, Any], service: str, max_connections: int, naptime: int,
                     problems: List[str]) -> Optional[Dict[str, Any]]:
    """One Postgres service's settings, or None after appending why its memory cannot hold them."""
    planned = plan["services"][service]
    try:
        return postgres_settings(planned["memory_mb"], planned["cpus"], plan["disk_kind"], max_connections, naptime,
                                 version=STACK_POSTGRES_VERSIONS[service],
                                 host_huge_pages=host_provides_huge_pages(plan.get("host_tuning")))
    except PostgresMemoryError as exc:
        problems.append("host '%s': service '%s' needs at least %d MiB for max_connections %d in the worst case "
                        "(shared_buffers, every connection's work_mem and process memory, autovacuum) but its "
                        "limit is %d MiB; give the host more memory, move other components off it, give "
                        "'%s' a larger memory_mb override, or run fewer app processes (their pools make "
                        "max_connections)"
                        % (plan["name"], service, exc.need_mb, max_connections, exc.memory_mb, service))
        return None


def _complete_data_services(plan: Dict[str, Any], max_connections: int, apps: Sequence[Mapping[str, Any]],
                            problems: List[str]) -> None:
    naptime = {"edge": 60, "small": 30}.get(plan["profile"], 15)
    services = plan["services"]
    if "db_postgres" in services:
        pg = _postgres_server(plan, "db_postgres", max_connections, naptime, problems)
        if pg is not None:
            plan["settings"]["postgres"] = {"server": pg, "hot_tables": hot_table_settings(),
                                            "shared_preload_libraries": ["pg_stat_statements"]}
    if "pgvector" in services:
        processes = sum(p["settings"].get("api", {}).get("server_worker_amount", 0)
                        + p["settings"].get("worker", {}).get("celery_worker_amount", 0) for p in apps)
        per_process = plan["settings"]["vector_store"]["pgvector_max_connection"]
        server = _postgres_server(plan, "pgvector", connection_limit(processes * per_process), naptime, problems)
        if server is not None:
            plan["settings"]["vector_store"]["server"] = server


def plan_fleet(raw_hosts: Sequence[Mapping[str, Any]], options: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """Plan every host and the fleet. Raises PlanError listing every problem found."""
    opts = dict(DEFAULT_OPTIONS)
    opts.update(options or {})
    problems: List[str] = []
    if not raw_hosts:
        raise PlanError(["no hosts to plan: the inventory group 'dify' is empty"])
    hosts = [parse_host(r, opts, len(raw_hosts) > 1, problems) for r in raw_hosts]
    names = [h.name for h in hosts]
    duplicates = sorted(n for n, seen in Counter(names).items() if seen > 1)
    if duplicates:
        problems.append("host names appear more than once: %s" % ", ".join(duplicates))
    beat_host = check_placement(hosts, raw_hosts, opts, problems)
    vector_store = choose_vector_store(str(opts.get("vector_store") or "auto"), hosts, problems)
    if problems:
        raise PlanError(problems)

    plans: Dict[str, Dict[str, Any]] = {}
    for host in hosts:
        host = _with_beat(host, beat_host)
        plan = plan_host(host, vector_store, problems)
        if plan is not None:
            plans[host.name] = plan
    if problems:
        raise PlanError(problems)
    fleet = fleet_section(plans, vector_store, beat_host)
    # Only the choices go into the plan: object storage settings may carry credentials.
    chosen = {"profile": opts["profile"], "vector_store": opts["vector_store"]}
    return {"version": PLAN_VERSION, "options": chosen, "hosts": plans, "fleet": fleet}


def _with_beat(host: HostInput, beat_host: Optional[str]) -> HostInput:
    return replace(host, runs_beat=host.name == beat_host)

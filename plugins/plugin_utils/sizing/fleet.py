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
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from ..stack import versions
from . import validate
from .catalog import (PROFILES, REQUIRED_COMPONENTS, SINGLE_HOST_COMPONENTS, VECTOR_STORES, auto_profile,
                      services_for)
from .errors import PlanError
from .host import DISK_KINDS, HostInput, gateway_rate_limit, plan_host
from .postgres import (STACK_POSTGRES_VERSIONS, PostgresMemoryError, host_provides_huge_pages, hot_table_settings,
                       postgres_settings)
from .services import APPS, SERVICES, gateway_upstreams, published_ports
from .units import ceil_div, clamp

# 2: CPU shares and quotas instead of limits and reservations, replicas, gevent processes and
# greenlets, the pooler (issue 19).
PLAN_VERSION = 2
# Connections kept free for superusers, backups, monitoring and migrations.
POSTGRES_RESERVED_CONNECTIONS = 15
# The host port of each service a split fleet reaches on another host (services.py says why each).
PORTS = published_ports()

# Under dify_postgres_pooler 'auto', the most connections (clients' pools + the reserve) one
# Postgres is given directly: 2.5 x PGTune's web-profile default of 200. A process per connection
# costs memory and snapshot work even idle, and Dify's pools are mostly idle (every greenlet keeps
# a connection); beyond this a transaction pooler serves them from a few server connections.
POSTGRES_DIRECT_MAX_CONNECTIONS = 500
# PgBouncer's server connections: 4 per database CPU - the PostgreSQL wiki's (2 x cores + spindles)
# for busy connections, doubled because Dify's transactions also wait on Redis, the plugin daemon
# and models while they hold one - at least PgBouncer's own default_pool_size (20), at most
# PGTune's web default max_connections (200).
PGBOUNCER_POOL_PER_CPU = 4
PGBOUNCER_POOL_MIN = 20
PGBOUNCER_POOL_MAX = 200
# Dify's database; the pooler serves it alone (the plugin daemon's dify_plugin stays direct).
POOLED_DATABASE = "dify"
# psycopg2 sends Dify's "-c timezone=UTC" as the startup parameter options, which PgBouncer
# refuses unless ignored; the server's timezone is set to UTC instead (extra_float_digits: JDBC's).
PGBOUNCER_IGNORED_STARTUP_PARAMETERS = ("extra_float_digits", "options")
# Descriptors PgBouncer needs beyond one per client and per server connection (listeners, logs,
# DNS, the admin console).
PGBOUNCER_SPARE_FILES = 100
# Processes whose SQLAlchemy pools go through the pooler; the plugin daemon (Go, prepared
# statements, which transaction pooling does not keep) stays on a direct connection.
POOLED_PROCESSES = ("api", "worker", "worker_beat")
# The app services the gateways proxy to, in the registry's order.
GATEWAY_UPSTREAMS = gateway_upstreams()
# The components whose published services the app hosts (and only they) may reach.
DATA_ACCESS_COMPONENTS = tuple(dict.fromkeys(r.component for r in SERVICES.values() if r.clients == APPS))


def parse_host(raw: Mapping[str, Any], options: Mapping[str, Any], multi_host: bool, problems: List[str],
               index: int = 0) -> HostInput:
    """Check one host's input dict (every problem goes to ``problems``) and turn it into a HostInput;
    a refused value is replaced by a harmless one so the other checks still run."""
    name = validate.checked_name(raw, index, problems)
    validate.unknown_keys(raw, validate.HOST_KEYS, name, "the host input", "plan_inputs builds it from the inventory; "
                          "name the keys as stack_plan documents them", problems)
    variables = validate.VARIABLES
    facts = "set %s to the host's %s, or gather the facts (playbooks/facts.yml)"
    vcpus = validate.checked_int(raw.get("vcpus"), name, variables["vcpus"], 1, validate.MAX_VCPUS,
                                 facts % (variables["vcpus"], "vCPU count"), problems)
    memory_mb = validate.checked_int(raw.get("memory_mb"), name, variables["memory_mb"], validate.MIN_MEMORY_MB,
                                     validate.MAX_MEMORY_MB, facts % (variables["memory_mb"], "memory in MiB"), problems)
    open_files = raw.get("open_files_limit")
    if open_files not in (None, ""):
        open_files = validate.checked_int(open_files, name, variables["open_files_limit"], validate.MIN_OPEN_FILES,
                                          validate.MAX_OPEN_FILES, "unset it to have the facts playbook read PID "
                                          "1's limit, or give that limit", problems)
    services, settings = validate.checked_overrides(raw.get("overrides"), name, problems)
    return HostInput(
        open_files_limit=open_files or None,
        name=name,
        vcpus=vcpus or 1,
        memory_mb=memory_mb or validate.MIN_MEMORY_MB,
        components=validate.checked_components(raw.get("components"), name, problems),
        architecture=validate.checked_architecture(raw.get("architecture"), name, problems),
        address=validate.checked_address(raw.get("address"), name, multi_host, problems),
        disk_kind=validate.checked_choice(raw.get("disk_kind"), name, variables["disk_kind"], DISK_KINDS, "ssd",
                                          "name the slowest disk behind the data paths, or unset it to use "
                                          "the disk facts", problems),
        gpus=validate.checked_gpus(raw.get("gpus"), name, problems),
        profile=validate.checked_choice(raw.get("profile"), name, variables["profile"], ("auto",) + PROFILES,
                                        str(options.get("profile") or "auto"),
                                        "choose a profile, or unset it to size by the host", problems),
        worker_beat=validate.checked_bool(raw.get("worker_beat"), name, variables["worker_beat"],
                                          "set it true on the one app host that runs Celery beat, or leave it unset",
                                          problems),
        service_overrides=services,
        setting_overrides=settings,
    )


def check_placement(hosts: Sequence[HostInput], options: Mapping[str, Any], problems: List[str]) -> Optional[str]:
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
    beat = [h.name for h in hosts if h.worker_beat]
    if len(beat) > 1:
        problems.append("dify_worker_beat is true on %d hosts (%s); exactly one host may run worker_beat, or Celery's "
                        "periodic tasks run twice: set it on one app host only" % (len(beat), ", ".join(beat)))
    app_names = set(app_hosts)
    for name in beat:
        if name not in app_names:
            problems.append("host '%s': dify_worker_beat is true but the host is not in the group dify_app; worker_beat "
                            "runs beside the app: set it on an app host instead" % name)
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


def app_connections(plan: Mapping[str, Any], services: Sequence[str] = POOLED_PROCESSES + ("plugin_daemon",)) -> int:
    """Postgres connections one app host can open at most: every process's full pool (of the
    given services)."""
    settings = plan["settings"]
    return sum(settings.get(s, {}).get("db_connections", 0) for s in services)


def pgbouncer_pool_size(cpus: float) -> int:
    """PgBouncer's server connections to Dify's database, from the CPUs Postgres may use."""
    return int(clamp(PGBOUNCER_POOL_PER_CPU * max(1, int(cpus)), PGBOUNCER_POOL_MIN, PGBOUNCER_POOL_MAX))


def needs_pooler(option: str, direct_max_connections: int, memory_holds: bool) -> Tuple[bool, str]:
    """Whether the plan puts PgBouncer in front of Postgres, and why: asked for, or under 'auto'
    when the clients' demand passes POSTGRES_DIRECT_MAX_CONNECTIONS or what Postgres's memory
    holds in the worst case."""
    if option in ("pgbouncer", "none"):
        return option == "pgbouncer", "dify_postgres_pooler is %s" % option
    if direct_max_connections > POSTGRES_DIRECT_MAX_CONNECTIONS:
        return True, ("the pools need max_connections %d directly, above the %d one Postgres is given"
                      % (direct_max_connections, POSTGRES_DIRECT_MAX_CONNECTIONS))
    if not memory_holds:
        return True, "Postgres's memory cannot hold max_connections %d in the worst case" % direct_max_connections
    return False, "the pools need max_connections %d directly, within the %d one Postgres is given" % (
        direct_max_connections, POSTGRES_DIRECT_MAX_CONNECTIONS)


def pgbouncer_settings(pooled: int, pool_size: int) -> Dict[str, Any]:
    """PgBouncer in transaction pooling: every pooled client admitted (their pools + the reserve),
    ``pool_size`` server connections to Dify's database."""
    clients = connection_limit(pooled)
    return {
        "pool_mode": "transaction",
        "listen_port": PORTS["pgbouncer"],
        "database": POOLED_DATABASE,
        "max_client_conn": clients,
        "default_pool_size": pool_size,
        # One database and one user: one pool, and nothing may open more server connections.
        "max_db_connections": pool_size,
        "ignore_startup_parameters": list(PGBOUNCER_IGNORED_STARTUP_PARAMETERS),
        "open_files": clients + pool_size + PGBOUNCER_SPARE_FILES,
        "pooled_clients": pooled,
    }


def connection_limit(connections: int) -> int:
    """max_connections for a server: the clients' connections plus the reserve, rounded up to 10."""
    return ceil_div(connections + POSTGRES_RESERVED_CONNECTIONS, 10) * 10


def _endpoint(plan: Mapping[str, Any], service: str, single_node: bool) -> str:
    host = service if single_node else plan["address"]
    return validate.host_port(host, PORTS[service])


def allowed_networks(plans: Sequence[Mapping[str, Any]]) -> List[str]:
    """The smallest list of CIDRs that covers exactly the given hosts' addresses."""
    addresses = [ipaddress.ip_network(p["address"]) for p in plans if p.get("address")]
    v4 = [a for a in addresses if a.version == 4]
    v6 = [a for a in addresses if a.version == 6]
    return [str(n) for group in (v4, v6) for n in ipaddress.collapse_addresses(group)]


# The port each inference engine listens on inside its container; a split fleet publishes it as
# PORTS["inference"] (vLLM only: Ollama has no API key and is never published).
INFERENCE_CONTAINER_PORTS = {"vllm": 8000, "ollama": 11434}


def inference_endpoint(plan: Mapping[str, Any], single_node: bool) -> str:
    """Where Dify reaches a host's model server: on a single node the inference service by name on
    the project's network (nothing is published there), in a fleet the host's own address."""
    if single_node:
        return "http://inference:%d/v1" % INFERENCE_CONTAINER_PORTS[str(plan["settings"]["inference"]["engine"])]
    return "http://%s/v1" % validate.host_port(plan["address"] or plan["name"], PORTS["inference"])


def fleet_section(plans: Dict[str, Dict[str, Any]], vector_store: str, beat_host: Optional[str],
                  pooler: Tuple[bool, str] = (False, ""), version: str = versions.DEFAULT_VERSION) -> Dict[str, Any]:
    """Settings only the whole fleet determines; also completes the data hosts' settings.
    ``pooler``: whether PgBouncer stands in front of Postgres (the database host's plan runs it)
    and why (needs_pooler). ``version``: the Dify version deployed (stack/versions.py)."""
    single_node = len(plans) == 1
    apps = [p for p in plans.values() if "app" in p["components"]]
    connections = {p["name"]: app_connections(p) for p in apps}
    pooled = sum(app_connections(p, POOLED_PROCESSES) for p in apps)
    problems: List[str] = []
    database = [p for p in plans.values() if "pgbouncer" in p["services"]]
    if pooler[0] and database:
        pool_size = pgbouncer_pool_size(database[0]["services"]["db_postgres"]["cpus"])
        database[0]["settings"]["pgbouncer"] = pgbouncer_settings(pooled, pool_size)
        _check_open_files(database[0], problems)
        # The pooler's server connections, the plugin daemon's direct pool and the reserve.
        max_connections = connection_limit(pool_size + sum(connections.values()) - pooled)
    else:
        max_connections = connection_limit(sum(connections.values()))
    for plan in plans.values():
        _complete_data_services(plan, max_connections, apps, problems)
        _complete_gateway(plan, apps)
    if problems:
        raise PlanError(problems)
    app_networks = allowed_networks(apps)
    data_access = {component: list(app_networks) for component in DATA_ACCESS_COMPONENTS}
    return {
        "single_node": single_node,
        "dify_version": version,
        "gateway_routes": {name: list(routes) for name, routes in versions.gateway_routes(version).items()},
        "vector_store": vector_store,
        "worker_beat_host": beat_host,
        "migration_host": beat_host,
        "postgres_max_connections": max_connections,
        "postgres_pooler": "pgbouncer" if pooler[0] and database else "none",
        "postgres_pooler_reason": pooler[1],
        "app_connections": connections,
        "gateway_hosts": [p["name"] for p in plans.values() if "gateway" in p["components"]],
        "gateway_upstreams": {
            service: [_endpoint(p, service, single_node) for p in apps if service in p["services"]]
            for service in GATEWAY_UPSTREAMS
        },
        # What each app host serves behind the gateways: the endpoints an upgrade takes out of the
        # upstreams while the host changes (none in a single node, whose gateway is on the host).
        "gateway_endpoints": {} if single_node else {
            p["name"]: [_endpoint(p, service, single_node) for service in GATEWAY_UPSTREAMS
                        if service in p["services"]]
            for p in apps
        },
        "plugin_daemon_host": beat_host,
        "data_access": data_access,
        "inference_endpoints": [inference_endpoint(p, single_node) for p in plans.values()
                                if p["settings"].get("inference", {}).get("enabled")],
    }


def _complete_gateway(plan: Dict[str, Any], apps: Sequence[Mapping[str, Any]]) -> None:
    """The gateway's per-client rate limit, sized from every app host's api greenlets unless the
    operator set one (rate_limit_rps)."""
    nginx = plan["settings"].get("nginx")
    if nginx is None or nginx["rate_limit_rps"] is not None:
        return
    api = [p["settings"]["api"] for p in apps if "api" in p["settings"]]
    rps, burst = gateway_rate_limit(sum(a["server_worker_amount"] * a["server_worker_connections"] for a in api))
    nginx.update(rate_limit_rps=rps, rate_limit_burst=burst)


def _check_open_files(plan: Mapping[str, Any], problems: List[str]) -> None:
    """PgBouncer holds a descriptor per client and server connection: the host must grant them."""
    need = plan["settings"]["pgbouncer"]["open_files"]
    hard = plan["host_tuning"]["docker"]["nofile_hard"]
    if need > hard:
        problems.append("host '%s': PgBouncer needs %d open files for its %d clients but the host's containers may "
                        "open at most %d (dify_open_files_limit or PID 1's hard limit); raise the host's limit "
                        "(LimitNOFILE of PID 1, fs.nr_open) or run fewer app processes"
                        % (plan["name"], need, plan["settings"]["pgbouncer"]["max_client_conn"], hard))


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
                        "'%s' a larger memory_mb override, run fewer app processes (their pools make "
                        "max_connections)%s"
                        % (plan["name"], service, exc.need_mb, max_connections, exc.memory_mb, service,
                           "" if "pgbouncer" in plan["services"] or service != "db_postgres"
                           else ", or put PgBouncer in front of it (dify_postgres_pooler: auto or pgbouncer)"))
        return None


def _naptime(plan: Mapping[str, Any]) -> int:
    """autovacuum_naptime (s) of the host's Postgres servers, by profile."""
    return {"edge": 60, "small": 30}.get(plan["profile"], 15)


def _complete_data_services(plan: Dict[str, Any], max_connections: int, apps: Sequence[Mapping[str, Any]],
                            problems: List[str]) -> None:
    naptime = _naptime(plan)
    services = plan["services"]
    if "db_postgres" in services:
        pg = _postgres_server(plan, "db_postgres", max_connections, naptime, problems)
        if pg is not None and "pgbouncer" in services:
            # PgBouncer drops the clients' "-c timezone=UTC" (ignore_startup_parameters): the
            # server's own default gives them UTC.
            pg["timezone"] = "UTC"
        if pg is not None:
            plan["settings"]["postgres"] = {"server": pg, "hot_tables": hot_table_settings(),
                                            "shared_preload_libraries": ["pg_stat_statements"]}
    if "pgvector" in services:
        # Dify's pgvector client keeps one pool per process (PGVECTOR_MAX_CONNECTION).
        processes = sum(p["settings"].get("api", {}).get("server_worker_amount", 0)
                        + p["settings"].get("worker", {}).get("processes", 0) for p in apps)
        per_process = plan["settings"]["vector_store"]["pgvector_max_connection"]
        server = _postgres_server(plan, "pgvector", connection_limit(processes * per_process), naptime, problems)
        if server is not None:
            plan["settings"]["vector_store"]["server"] = server


def plan_fleet(raw_hosts: Sequence[Mapping[str, Any]], options: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """Plan every host and the fleet. Raises PlanError listing every problem found; every input is
    checked (types, ranges, names, addresses) before anything is planned."""
    problems: List[str] = []
    opts = validate.checked_options(options, problems)
    if not isinstance(raw_hosts, (list, tuple)):
        raise PlanError(problems + ["the hosts to plan must be a list of mappings, got %s; pass "
                                    "groups | difyops.dify.plan_inputs(hostvars)" % validate.describe(raw_hosts)])
    if not raw_hosts:
        raise PlanError(problems + ["no hosts to plan: the inventory group 'dify' is empty"])
    hosts = []
    for index, raw in enumerate(raw_hosts):
        if isinstance(raw, Mapping):
            hosts.append(parse_host(raw, opts, len(raw_hosts) > 1, problems, index))
        else:
            problems.append("hosts[%d] must be a mapping (name, vcpus, memory_mb, components, ...), got %s; pass "
                            "groups | difyops.dify.plan_inputs(hostvars)" % (index, validate.describe(raw)))
    names = [h.name for h in hosts]
    duplicates = sorted(n for n, seen in Counter(names).items() if seen > 1)
    if duplicates:
        problems.append("host names appear more than once: %s; give every host its own inventory name"
                        % ", ".join(duplicates))
    problems.extend(validate.shared_addresses([(h.name, h.address) for h in hosts]))
    beat_host = check_placement(hosts, opts, problems)
    vector_store = choose_vector_store(opts["vector_store"], hosts, problems)
    extra_app = versions.record(opts["version"]).extra_app_services
    hosts = [replace(host, extra_app_services=extra_app) for host in hosts]
    for host in hosts:
        services = services_for(host.components, vector_store, host.name == beat_host, extra_app=extra_app)
        problems.extend(validate.placed_overrides(host.name, list(host.service_overrides), services))
    if problems:
        raise PlanError(problems)

    plans: Dict[str, Dict[str, Any]] = {}
    hosts = [_with_beat(host, beat_host) for host in hosts]
    for host in hosts:
        plan = plan_host(host, vector_store, problems)
        if plan is not None:
            plans[host.name] = plan
    if problems:
        raise PlanError(problems)
    pooler = _pooler_choice(opts["postgres_pooler"], plans)
    if pooler[0]:
        _replan_with_pooler(hosts, plans, vector_store, problems)
        if problems:
            raise PlanError(problems)
    fleet = fleet_section(plans, vector_store, beat_host, pooler, opts["version"])
    # Only the choices go into the plan: object storage settings may carry credentials.
    chosen = {"profile": opts["profile"], "vector_store": opts["vector_store"],
              "postgres_pooler": opts["postgres_pooler"], "version": opts["version"]}
    return {"version": PLAN_VERSION, "options": chosen, "hosts": plans, "fleet": fleet}


def _with_beat(host: HostInput, beat_host: Optional[str]) -> HostInput:
    return replace(host, runs_beat=host.name == beat_host)


def _pooler_choice(option: str, plans: Mapping[str, Mapping[str, Any]]) -> Tuple[bool, str]:
    """needs_pooler for the fleet planned without a pooler: its clients' demand, and whether the
    database host's Postgres holds it directly."""
    apps = [p for p in plans.values() if "app" in p["components"]]
    direct = connection_limit(sum(app_connections(p) for p in apps))
    holds = True
    if option == "auto" and direct <= POSTGRES_DIRECT_MAX_CONNECTIONS:
        for plan in plans.values():
            if "db_postgres" in plan["services"]:
                holds = _postgres_server(plan, "db_postgres", direct, _naptime(plan), []) is not None
    return needs_pooler(option, direct, holds)


def _replan_with_pooler(hosts: Sequence[HostInput], plans: Dict[str, Dict[str, Any]], vector_store: str,
                        problems: List[str]) -> None:
    """Plan the database host again with PgBouncer, whose floor counts the clients it admits. On a
    single node the app services then get a little less memory, so their pools (and the clients)
    can only shrink: the floor from this first count always suffices."""
    pooled = sum(app_connections(p, POOLED_PROCESSES) for p in plans.values() if "app" in p["components"])
    for host in hosts:
        if "database" in host.components:
            plan = plan_host(replace(host, pooler_clients=connection_limit(pooled)), vector_store, problems)
            if plan is not None:
                plans[host.name] = plan

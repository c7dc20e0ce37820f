# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The plan of one host: reserves, per-service CPU and memory, and process counts.

Settings that depend on the whole fleet (Postgres connections, upstreams) are added by fleet.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Dict, List, Mapping, Optional, Tuple

from .allocate import water_fill
from .catalog import (API_GREENLET_MB, API_PROCESS_CAP_MB, API_PROCESS_MB, CELERY_GREENLET_MB, CELERY_POOL_CLASS,
                      CELERY_PROCESS_CAP_MB, CELERY_PROCESS_MB, DATA_SERVICES, DIFY_MIN_MEMORY_MB, DIFY_MIN_VCPUS,
                      DIFY_UPLOAD_LIMITS_MB, PGBOUNCER_CLIENT_KB, PROFILE_TARGETS, SERVICE_SPECS, VECTOR_STORES,
                      ProfileTargets, auto_profile, services_for)
from .gpu import plan_inference
from .postgres import STACK_POSTGRES_VERSIONS
from .units import clamp, human_mb, round_cpus

DISK_KINDS = ("nvme", "ssd", "hdd", "virtual", "network")
SLICE_NAME = "dify.slice"
# systemd's default CPUWeight is 100: under contention the stack gets four shares to the OS's one.
SLICE_CPU_WEIGHT = 400
OVERRIDABLE_SETTINGS = ("api_workers", "api_worker_connections", "celery_workers", "nginx_worker_connections",
                        "rate_limit_rps", "context_tokens")


# Services that run PostgreSQL in their container.
POSTGRES_SERVICES = tuple(STACK_POSTGRES_VERSIONS)
# Open-files limits Docker hands each container (default-ulimits), before the host's own cap.
CONTAINER_NOFILE_SOFT = 65536
CONTAINER_NOFILE_HARD = 1048576


@dataclass(frozen=True)
class HostInput:
    """What the engine needs to know about one host."""

    name: str
    vcpus: int
    memory_mb: int
    components: Tuple[str, ...]
    architecture: str = "x86_64"
    address: Optional[str] = None
    disk_kind: str = "ssd"
    gpus: Tuple[Dict[str, Any], ...] = ()
    profile: str = "auto"
    # The operator asked this host to run worker_beat (dify_worker_beat); the fleet decides runs_beat.
    worker_beat: bool = False
    runs_beat: bool = True
    # The hard open-files limit the host's services can get (PID 1's); None: not known.
    open_files_limit: Optional[int] = None
    service_overrides: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    setting_overrides: Mapping[str, int] = field(default_factory=dict)
    # Client connections the PgBouncer on this (database) host admits; 0: the fleet plans no pooler.
    pooler_clients: int = 0
    # App services the Dify version adds to the core ones (stack/versions.py).
    extra_app_services: Tuple[str, ...] = ()


@dataclass(frozen=True)
class Counts:
    """Processes and greenlets a host runs, and the clients its PgBouncer admits: what the
    memory floors and pools depend on."""

    api_processes: int
    api_greenlets: int
    worker_processes: int
    worker_greenlets: int
    pooler_clients: int = 0


def os_reserve_mb(memory_mb: int) -> int:
    """Memory kept for the kernel, the OS's daemons, the container engine and its per-container
    shims (which live outside the containers' limits)."""
    return int(min(320 + memory_mb * 0.04, 8192)) + 192


def cpu_reserve(vcpus: int) -> float:
    """CPU the OS and the container engine can count on under contention (the stack's slice
    weight leaves them at least this share; nothing is set aside when the host is idle)."""
    if vcpus <= 2:
        return 0.25
    if vcpus <= 8:
        return 0.5
    return round_cpus(min(2.0, vcpus * 0.05))


def target_counts(targets: ProfileTargets, cpu_available: float, overrides: Mapping[str, int]) -> Counts:
    """Processes follow the cores (a gevent process runs on one), greenlets the profile's I/O
    concurrency; the operator's overrides win."""
    api = int(clamp(round(cpu_available * 0.5), 1, targets.api_processes_max))
    worker = int(clamp(round(cpu_available * 0.25), 1, targets.worker_processes_max))
    return Counts(
        api_processes=int(overrides.get("api_workers", api)),
        api_greenlets=int(overrides.get("api_worker_connections", targets.api_greenlets)),
        worker_processes=worker,
        worker_greenlets=int(overrides.get("celery_workers", targets.worker_greenlets)),
    )


def smaller_counts(counts: Counts) -> Optional[Counts]:
    """One step down when the floors do not fit: fewer processes first (greenlets are cheap),
    then the smallest greenlet counts that still run Dify; None at the bottom."""
    if counts.api_processes > 1 or counts.worker_processes > 1:
        return replace(counts, api_processes=max(1, counts.api_processes - 1),
                       worker_processes=max(1, counts.worker_processes - 1))
    smallest = Counts(1, min(10, counts.api_greenlets), 1, min(4, counts.worker_greenlets), counts.pooler_clients)
    return smallest if smallest != counts else None


def service_floor_mb(service: str, counts: Counts) -> int:
    """Memory a service needs at the given counts (the worker's is per process)."""
    floor = SERVICE_SPECS[service].floor_mb
    if service == "api":
        return floor + counts.api_processes * (API_PROCESS_MB + counts.api_greenlets * API_GREENLET_MB)
    if service == "worker":
        return CELERY_PROCESS_MB + counts.worker_greenlets * CELERY_GREENLET_MB
    if service == "pgbouncer":
        return floor + -(-counts.pooler_clients * PGBOUNCER_CLIENT_KB // 1024)
    return floor


def replicas(service: str, counts: Counts) -> int:
    """Containers of a service: the worker runs one gevent process per container."""
    return counts.worker_processes if service == "worker" else 1


def _fixed_memory(host: HostInput, services: Tuple[str, ...], problems: List[str]) -> Dict[str, int]:
    """Memory limits the operator fixed by override, checked against the services on the host."""
    fixed = {}
    for service, override in host.service_overrides.items():
        if service not in services:
            problems.append("host '%s': override for service '%s', which is not placed on this host (its services: %s)"
                            % (host.name, service, ", ".join(services)))
            continue
        if "memory_mb" in override:
            fixed[service] = int(float(override["memory_mb"]))
    return fixed


def _cap_mb(service: str, counts: Counts, floor: int) -> Optional[int]:
    """The most a service's containers gain from, in all (None: no bound)."""
    if service == "api":
        return max(floor, SERVICE_SPECS["api"].floor_mb + counts.api_processes * API_PROCESS_CAP_MB)
    if service == "worker":
        return max(floor, CELERY_PROCESS_CAP_MB)
    cap = SERVICE_SPECS[service].cap_mb
    return max(cap, floor) if cap else None


def allocate_memory(services: Tuple[str, ...], counts: Counts, usable: int,
                    fixed: Mapping[str, int]) -> Tuple[Optional[Dict[str, int]], Dict[str, int]]:
    """Memory limits per container, or None when the floors do not fit; also returns the floors.
    Floors, caps and fixed limits are per container; the budget is shared over every container."""
    floors = {s: service_floor_mb(s, counts) for s in services}
    count = {s: replicas(s, counts) for s in services}
    free = {s: floors[s] * count[s] for s in services if s not in fixed}
    budget = usable - sum(fixed[s] * count[s] for s in fixed)
    if sum(free.values()) > budget:
        return None, floors
    caps = {}
    for service in free:
        cap = _cap_mb(service, counts, floors[service])
        caps[service] = cap * count[service] if cap else None
    shares = water_fill(budget, free, {s: SERVICE_SPECS[s].weight for s in free}, caps)
    limits = {s: int(v // count[s]) for s, v in shares.items()}
    limits.update(fixed)
    return limits, floors


def allocate_cpu(host: HostInput, services: Tuple[str, ...], available: float) -> Dict[str, Dict[str, Any]]:
    """CPU per container: shares from the service's weight, and a hard quota only for services
    that cannot use more than their cap (or that the operator capped). ``cpus`` is the most the
    container can use: its quota, or every CPU left after the OS reserve."""
    planned = {}
    for service in services:
        spec = SERVICE_SPECS[service]
        override = host.service_overrides.get(service, {})
        cap = float(override["cpus"]) if "cpus" in override else spec.cpu_cap
        quota = cap is not None and cap < available
        planned[service] = {
            "cpus": round_cpus(min(cap, available)) if quota else available,
            "cpu_quota": quota,
            "cpu_shares": max(2, int(round(1024 * spec.cpu_weight))),
        }
    return planned


def _check_overrides(host: HostInput, available_cpu: float, usable: int, problems: List[str]) -> None:
    """Service overrides against what this host has; their types, names and ranges were checked
    with the inputs (validate.checked_overrides)."""
    for service, override in host.service_overrides.items():
        variable = "dify_sizing_overrides.services.%s" % service
        cpus = override.get("cpus")
        if cpus is not None and not 0 < float(cpus) <= available_cpu:
            problems.append("host '%s': %s.cpus must be above 0 and at most %.2f (the CPUs left after the OS "
                            "reserve), got %s; lower the override or give the host more CPUs"
                            % (host.name, variable, available_cpu, ("%f" % cpus).rstrip("0").rstrip(".")))
        memory = override.get("memory_mb")
        if memory is not None and not 0 < float(memory) <= usable:
            problems.append("host '%s': %s.memory_mb must be at most the %s usable on the host, got %s; lower the "
                            "override or give the host more memory"
                            % (host.name, variable, human_mb(usable), ("%f" % memory).rstrip("0").rstrip(".")))


def _check_dify_minimum(host: HostInput, problems: List[str]) -> None:
    full_node = all(c in host.components for c in ("app", "database", "redis", "vector_store"))
    if full_node and (host.vcpus < DIFY_MIN_VCPUS or host.memory_mb < DIFY_MIN_MEMORY_MB):
        problems.append("host '%s': a full single-node Dify needs at least %d CPUs and 4 GiB of memory (Dify's stated "
                        "minimum); the host has %d vCPUs and %s (dify_vcpus, dify_memory_mb or the gathered facts). "
                        "Use a larger host or split the components over several hosts"
                        % (host.name, DIFY_MIN_VCPUS, host.vcpus, human_mb(host.memory_mb)))


def plan_host(host: HostInput, vector_store: str, problems: List[str]) -> Optional[Dict[str, Any]]:
    """The plan of one host, or None after appending the reasons to ``problems``."""
    before = len(problems)
    profile = auto_profile(host.vcpus, host.memory_mb) if host.profile == "auto" else host.profile
    services = services_for(host.components, vector_store, host.runs_beat, host.pooler_clients > 0,
                            host.extra_app_services)
    reserve_mb = os_reserve_mb(host.memory_mb)
    usable = host.memory_mb - reserve_mb
    cpu_available = round_cpus(host.vcpus - cpu_reserve(host.vcpus))
    _check_dify_minimum(host, problems)
    _check_overrides(host, cpu_available, usable, problems)
    if len(problems) > before:
        return None
    fixed = _fixed_memory(host, services, problems)
    if len(problems) > before:
        return None

    counts, limits, floors = _fit_counts(host, services, PROFILE_TARGETS[profile], cpu_available, usable, fixed)
    if limits is None:
        count = {s: replicas(s, counts) for s in services}
        need = sum(fixed.get(s, floors[s]) * count[s] for s in services)
        detail = ", ".join("%s %s" % (s, human_mb(fixed.get(s, floors[s]) * count[s])) for s in services)
        problems.append("host '%s': components %s need %s of memory (%s) but only %s is usable after the %s OS "
                        "reserve; give the host more memory or move components to other hosts"
                        % (host.name, ", ".join(host.components), human_mb(need), detail, human_mb(usable),
                           human_mb(reserve_mb)))
        return None
    for service, limit in fixed.items():
        if limit < floors[service]:
            problems.append("host '%s': service '%s' override memory_mb=%d is below its floor of %s"
                            % (host.name, service, limit, human_mb(floors[service])))
    if len(problems) > before:
        return None

    cpus = allocate_cpu(host, services, cpu_available)
    planned_services = {}
    for service in services:
        memory = limits[service]
        planned_services[service] = dict(
            cpus[service],
            replicas=replicas(service, counts),
            memory_mb=memory,
            memory_reserved_mb=min(memory, floors[service]),
            memswap_mb=memory if service in DATA_SERVICES else None,
        )
        if service in POSTGRES_SERVICES:
            # Parallel queries keep their hash tables in /dev/shm (Docker's default is 64 MB); what
            # they use there is charged to the container's memory, so its limit is the bound.
            planned_services[service]["shm_size_mb"] = memory
    targets = PROFILE_TARGETS[profile]
    plan: Dict[str, Any] = {
        "name": host.name,
        "address": host.address,
        "profile": profile,
        "architecture": host.architecture,
        "disk_kind": host.disk_kind,
        "components": list(host.components),
        "resources": {
            "vcpus": host.vcpus,
            "cpu_reserve": round_cpus(host.vcpus - cpu_available),
            "cpu_available": cpu_available,
            "memory_mb": host.memory_mb,
            "os_reserve_mb": reserve_mb,
            "usable_mb": usable,
            "allocated_mb": sum(p["memory_mb"] * p["replicas"] for p in planned_services.values()),
        },
        "services": planned_services,
        "settings": service_settings(services, counts, targets, planned_services, host),
        "host_tuning": host_tuning(host, services, targets, cpu_available, usable),
    }
    return plan


COUNT_OVERRIDES = {"api_workers": "api_processes", "api_worker_connections": "api_greenlets",
                   "celery_workers": "worker_greenlets"}


def _fit_counts(host: HostInput, services: Tuple[str, ...], targets: ProfileTargets, cpu_available: float,
                usable: int, fixed: Mapping[str, int]) -> Tuple[Counts, Optional[Dict[str, int]], Dict[str, int]]:
    """The largest counts, from the profile's targets down, whose floors fit in the usable memory;
    counts the operator set are kept as set."""
    counts: Optional[Counts] = replace(target_counts(targets, cpu_available, host.setting_overrides),
                                       pooler_clients=host.pooler_clients)
    kept = {COUNT_OVERRIDES[k]: int(v) for k, v in host.setting_overrides.items() if k in COUNT_OVERRIDES}
    last = counts
    while counts is not None:
        limits, floors = allocate_memory(services, counts, usable, fixed)
        if limits is not None:
            return counts, limits, floors
        last = counts
        smaller = smaller_counts(counts)
        counts = replace(smaller, **kept) if smaller is not None else None
        if counts == last:
            break
    return last, None, {s: service_floor_mb(s, last) for s in services}


def api_pool(greenlets: int) -> Tuple[int, int]:
    """SQLAlchemy pool (size, overflow) of one gevent api process: every greenlet may hold a
    connection for its whole request, so the pool is at least the greenlets, and a little
    overflow covers the process's own background work."""
    return greenlets, max(2, greenlets // 10)


def worker_pool(greenlets: int) -> Tuple[int, int]:
    """SQLAlchemy pool (size, overflow) of one gevent Celery process: one per greenlet."""
    return greenlets, max(2, greenlets // 10)


# worker_beat only schedules: one connection and a spare are all it opens.
BEAT_POOL = (1, 1)
# Connections the plugin daemon (Go, its own pool: DB_MAX_OPEN_CONNS) may open on its database.
PLUGIN_DAEMON_DB_CONNECTIONS = {"edge": 10, "small": 20, "standard": 20, "large": 30}
# Short API requests turn a greenlet around in about 100 ms: the stack's request capacity per
# greenlet, from which the gateway's per-client rate limit is sized.
REQUESTS_PER_GREENLET_S = 10


def service_settings(services: Tuple[str, ...], counts: Counts, targets: ProfileTargets,
                     planned: Mapping[str, Mapping[str, Any]], host: HostInput) -> Dict[str, Any]:
    """Derived settings of the services on the host (fleet-wide ones are added later)."""
    settings: Dict[str, Any] = {}
    if "api" in services:
        size, overflow = api_pool(counts.api_greenlets)
        settings["api"] = {
            "server_worker_amount": counts.api_processes,
            "server_worker_class": "gevent",
            "server_worker_connections": counts.api_greenlets,
            "gunicorn_timeout": 360,
            "sqlalchemy_pool_size": size,
            "sqlalchemy_max_overflow": overflow,
            "db_connections": counts.api_processes * (size + overflow),
        }
    if "worker" in services:
        size, overflow = worker_pool(counts.worker_greenlets)
        processes = counts.worker_processes
        settings["worker"] = {
            "celery_worker_class": CELERY_POOL_CLASS,
            "celery_worker_amount": counts.worker_greenlets,
            "processes": processes,
            "celery_auto_scale": False,
            "sqlalchemy_pool_size": size,
            "sqlalchemy_max_overflow": overflow,
            "db_connections": processes * (size + overflow),
        }
    if "worker_beat" in services:
        settings["worker_beat"] = {"sqlalchemy_pool_size": BEAT_POOL[0], "sqlalchemy_max_overflow": BEAT_POOL[1],
                                   "db_connections": sum(BEAT_POOL)}
    if "plugin_daemon" in services:
        profile = host.profile if host.profile != "auto" else auto_profile(host.vcpus, host.memory_mb)
        settings["plugin_daemon"] = {"db_connections": PLUGIN_DAEMON_DB_CONNECTIONS[profile],
                                     "gomaxprocs": max(1, int(planned["plugin_daemon"]["cpus"]))}
    if "redis" in services:
        settings["redis"] = redis_settings(planned["redis"]["memory_mb"])
    if "nginx" in services:
        settings["nginx"] = nginx_settings(planned["nginx"]["cpus"], targets, host.setting_overrides)
    for store in VECTOR_STORES:
        if store in services:
            settings["vector_store"] = vector_store_settings(store, planned[store])
    if "inference" in services:
        context = int(host.setting_overrides.get("context_tokens", 8192))
        settings["inference"] = plan_inference(host.gpus, host.architecture, context)
    return settings


def redis_settings(limit_mb: int) -> Dict[str, Any]:
    """maxmemory below the container limit (room for fork copy-on-write during snapshots and
    fragmentation) and ``volatile-lru``: only keys with a TTL (cache entries) may be evicted,
    never the Celery broker's queues, which carry no TTL. ``allkeys-lru`` would drop queued tasks."""
    return {"maxmemory_mb": max(64, int(limit_mb * 0.7)), "maxmemory_policy": "volatile-lru"}


def nginx_settings(cpus: float, targets: ProfileTargets, overrides: Mapping[str, int]) -> Dict[str, Any]:
    """Gateway settings: workers from the CPUs it may use, body size above every Dify upload
    limit. The rate limit is completed by the fleet (sized from every app host's capacity)
    unless the operator set one."""
    connections = int(overrides.get("nginx_worker_connections", targets.nginx_worker_connections))
    rps = overrides.get("rate_limit_rps")
    return {
        "worker_processes": int(clamp(math.ceil(cpus), 1, 32)),
        "worker_connections": connections,
        # A proxied connection holds two descriptors: the client's and the upstream's.
        "worker_rlimit_nofile": connections * 2,
        # Multipart framing adds a little to the largest file Dify accepts; the gateway role refuses
        # a body size below dify_upload_limit_mb.
        "client_max_body_size_mb": max(DIFY_UPLOAD_LIMITS_MB.values()) + 5,
        "dify_upload_limit_mb": max(DIFY_UPLOAD_LIMITS_MB.values()),
        "gzip": True,
        "gzip_comp_level": 5,
        "gzip_min_length": 1024,
        "gzip_types": ["text/plain", "text/css", "text/xml", "application/javascript", "application/json",
                       "application/xml", "application/rss+xml", "image/svg+xml"],
        "proxy_read_timeout_s": 3600,
        "rate_limit_rps": None if rps is None else int(rps),
        "rate_limit_burst": None if rps is None else int(rps) * 2,
        "rate_limit_source": "plan capacity" if rps is None else "override",
        "rate_limit_status": 429,
        # Idle upstream connections kept per nginx worker. None to the api: a gevent process
        # serves at most its greenlets' connections, and connections nginx keeps reusing hold
        # those slots while the others wait in the listen backlog until the load stops (p99 25 s
        # at 50 clients in the stack scenario); closed after each request, the backlog is served
        # in order, as upstream's own nginx does.
        "upstream_keepalive": {"api": 0, "web": 32, "plugin_daemon": 32},
    }


def gateway_rate_limit(api_greenlets: int) -> Tuple[int, int]:
    """Per-client rate and burst from the request capacity of every api greenlet in the fleet:
    a client can never be refused while the stack could still serve it."""
    rps = max(20, api_greenlets * REQUESTS_PER_GREENLET_S)
    return rps, rps * 2


def vector_store_settings(store: str, planned: Mapping[str, Any]) -> Dict[str, Any]:
    """The vector store's own memory settings within its container limit."""
    settings: Dict[str, Any] = {"type": store}
    if store == "weaviate":
        # Weaviate is a Go program: GOMEMLIMIT makes its GC work before the cgroup kills it.
        settings["gomemlimit_mb"] = int(planned["memory_mb"] * 0.8)
        settings["gomaxprocs"] = max(1, int(planned["cpus"]))
    elif store == "pgvector":
        settings["pgvector_min_connection"] = 1
        settings["pgvector_max_connection"] = 5
    return settings


def host_tuning(host: HostInput, services: Tuple[str, ...], targets: ProfileTargets, cpu_available: float,
                usable_mb: int) -> Dict[str, Any]:
    """Kernel, swap, THP, the systemd slice that bounds the whole stack, and Docker daemon settings."""
    # A container's nofile limit above what the engine itself holds fails every start
    # ("error setting rlimit type 7: operation not permitted"): the plan stays within the host's.
    nofile_hard = min(CONTAINER_NOFILE_HARD, host.open_files_limit or CONTAINER_NOFILE_HARD)
    data = [s for s in services if s in DATA_SERVICES]
    sysctl = {
        "net.core.somaxconn": max(1024, targets.nginx_worker_connections),
        "fs.inotify.max_user_watches": 524288,
        "fs.inotify.max_user_instances": 1024,
        "fs.file-max": 2097152,
    }
    if "redis" in services:
        sysctl["vm.overcommit_memory"] = 1
    if "weaviate" in services or "qdrant" in services:
        sysctl["vm.max_map_count"] = 262144
    small = host.memory_mb < 16384
    return {
        # Small hosts get a modest swapfile for the OS and stateless services; data services never
        # swap either way (memswap_limit = mem_limit).
        "swap": {"policy": "swapfile", "size_mb": int(clamp(host.memory_mb // 4, 1024, 4096)), "swappiness": 10}
        if small else {"policy": "off"},
        "sysctl": sysctl,
        "transparent_hugepage": "madvise" if data else "unchanged",
        # The slice holds every container of the stack: the memory the services were sized from,
        # so the stack as a whole can never take the OS reserve; MemoryHigh starts reclaim a
        # little before the hard limit. CPU is shared by weight, not capped: a quota would idle
        # cores the OS does not use, and the weight still keeps the OS its share under contention.
        "slice": {
            "name": SLICE_NAME,
            "cpu_weight": SLICE_CPU_WEIGHT,
            "memory_high_mb": int(usable_mb * 0.95),
            "memory_max_mb": usable_mb,
        },
        "docker": {
            "log_max_size_mb": targets.docker_log_max_mb,
            "log_max_files": targets.docker_log_max_files,
            "live_restore": True,
            "nofile_soft": min(CONTAINER_NOFILE_SOFT, nofile_hard),
            "nofile_hard": nofile_hard,
            "cgroup_driver": "systemd",
        },
    }

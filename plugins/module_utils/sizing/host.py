# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The plan of one host: reserves, per-service CPU and memory, and process counts.

Settings that depend on the whole fleet (Postgres connections, upstreams) are added by fleet.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple

from .allocate import water_fill
from .catalog import (API_WORKER_MB, CELERY_CHILD_MB, DATA_SERVICES, DIFY_MIN_MEMORY_MB, DIFY_MIN_VCPUS,
                      DIFY_UPLOAD_LIMITS_MB, PROFILE_TARGETS, SERVICE_SPECS, ProfileTargets, auto_profile, services_for)
from .gpu import plan_inference
from .units import clamp, human_mb, round_cpus

DISK_KINDS = ("nvme", "ssd", "hdd", "virtual", "network")
SLICE_NAME = "dify.slice"
# systemd's default CPUWeight is 100: under contention the stack gets four shares to the OS's one.
SLICE_CPU_WEIGHT = 400
OVERRIDABLE_SETTINGS = ("api_workers", "api_worker_connections", "celery_workers", "nginx_worker_connections",
                        "rate_limit_rps", "context_tokens")


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


@dataclass(frozen=True)
class Counts:
    """Process counts a host runs, which the memory floors depend on."""

    api_workers: int
    api_worker_connections: int
    celery_workers: int
    celery_autoscale: bool


def os_reserve_mb(memory_mb: int) -> int:
    """Memory kept for the OS, page-table and kernel overhead, and the container engine."""
    return int(min(512 + memory_mb * 0.05, 8192)) + 256


def cpu_reserve(vcpus: int) -> float:
    """CPU kept for the OS and the container engine."""
    if vcpus <= 2:
        return 0.25
    if vcpus <= 8:
        return 0.5
    return round_cpus(min(2.0, vcpus * 0.05))


def target_counts(targets: ProfileTargets, cpu_available: float, overrides: Mapping[str, int]) -> Counts:
    """Process counts the profile and the host's CPUs aim at (before memory bounds them)."""
    api_workers = int(clamp(round(cpu_available * 0.35), 1, targets.api_workers_max))
    # Celery tasks wait on LLM calls and I/O: two children per CPU share.
    celery = int(clamp(round(cpu_available * 0.5 * 2), 1, targets.celery_max))
    return Counts(
        api_workers=int(overrides.get("api_workers", api_workers)),
        api_worker_connections=int(overrides.get("api_worker_connections", targets.api_worker_connections)),
        celery_workers=int(overrides.get("celery_workers", celery)),
        celery_autoscale=targets.celery_autoscale,
    )


def minimal_counts(counts: Counts) -> Counts:
    """The smallest counts that still run Dify: the fallback before refusing a host."""
    return Counts(api_workers=1, api_worker_connections=min(10, counts.api_worker_connections), celery_workers=1,
                  celery_autoscale=False)


def service_floor_mb(service: str, counts: Counts) -> int:
    """Memory a service needs at the given process counts."""
    floor = SERVICE_SPECS[service].floor_mb
    if service == "api":
        return floor + API_WORKER_MB * counts.api_workers
    if service == "worker":
        return floor + CELERY_CHILD_MB * counts.celery_workers
    return floor


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


def allocate_memory(host: HostInput, services: Tuple[str, ...], counts: Counts, usable: int,
                    fixed: Mapping[str, int]) -> Tuple[Optional[Dict[str, int]], Dict[str, int]]:
    """Memory limits per service, or None when the floors do not fit; also returns the floors."""
    floors = {s: service_floor_mb(s, counts) for s in services}
    free = {s: floors[s] for s in services if s not in fixed}
    budget = usable - sum(fixed.values())
    if sum(free.values()) > budget:
        return None, floors
    caps = {s: (max(SERVICE_SPECS[s].cap_mb, floors[s]) if SERVICE_SPECS[s].cap_mb else None) for s in free}
    shares = water_fill(budget, free, {s: SERVICE_SPECS[s].weight for s in free}, caps)
    limits = {s: int(v) for s, v in shares.items()}
    limits.update(fixed)
    return limits, floors


def allocate_cpu(host: HostInput, services: Tuple[str, ...], available: float) -> Dict[str, Tuple[float, float]]:
    """(limit, reservation) per service. Reservations fit within the available CPUs; limits may
    overlap (a limit is a ceiling), each at most the available CPUs."""
    floors = {s: SERVICE_SPECS[s].cpu_floor for s in services}
    scale = min(1.0, available / sum(floors.values()))
    total_weight = sum(SERVICE_SPECS[s].cpu_weight for s in services)
    planned = {}
    for service in services:
        override = host.service_overrides.get(service, {})
        share = available * SERVICE_SPECS[service].cpu_weight / total_weight
        limit = float(override.get("cpus", min(available, max(2 * share, floors[service], 0.1))))
        reservation = min(limit, floors[service] * scale)
        planned[service] = (round_cpus(limit), round_cpus(reservation))
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
    services = services_for(host.components, vector_store, host.runs_beat)
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

    counts = target_counts(PROFILE_TARGETS[profile], cpu_available, host.setting_overrides)
    limits, floors = allocate_memory(host, services, counts, usable, fixed)
    if limits is None and not host.setting_overrides:
        counts = minimal_counts(counts)
        limits, floors = allocate_memory(host, services, counts, usable, fixed)
    if limits is None:
        need = sum(floors[s] for s in services if s not in fixed) + sum(fixed.values())
        detail = ", ".join("%s %s" % (s, human_mb(fixed.get(s, floors[s]))) for s in services)
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
        planned_services[service] = {
            "cpus": cpus[service][0],
            "cpus_reserved": cpus[service][1],
            "memory_mb": memory,
            "memory_reserved_mb": min(memory, floors[service]),
            "memswap_mb": memory if service in DATA_SERVICES else None,
        }
    counts = _bound_counts_by_memory(counts, limits)
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
            "allocated_mb": sum(limits.values()),
        },
        "services": planned_services,
        "settings": service_settings(services, counts, targets, planned_services, host),
        "host_tuning": host_tuning(host, services, targets, cpu_available, usable),
    }
    return plan


def _bound_counts_by_memory(counts: Counts, limits: Mapping[str, int]) -> Counts:
    """Process counts never exceed what the memory limits can hold."""
    api_workers, celery = counts.api_workers, counts.celery_workers
    if "api" in limits:
        api_workers = max(1, min(api_workers, (limits["api"] - SERVICE_SPECS["api"].floor_mb) // API_WORKER_MB))
    if "worker" in limits:
        celery = max(1, min(celery, (limits["worker"] - SERVICE_SPECS["worker"].floor_mb) // CELERY_CHILD_MB))
    return Counts(api_workers, counts.api_worker_connections, celery, counts.celery_autoscale and celery >= 4)


def api_pool(connections: int) -> Tuple[int, int]:
    """SQLAlchemy pool (size, overflow) of one gevent api worker."""
    size = int(clamp(connections // 2, 5, 30))
    return size, max(2, size // 3)


# Each Celery child runs one task at a time; a small pool covers the task and its helpers.
CELERY_POOL = (3, 2)
# Connections the plugin daemon (Go, its own pool) holds on its database.
PLUGIN_DAEMON_DB_CONNECTIONS = 20


def service_settings(services: Tuple[str, ...], counts: Counts, targets: ProfileTargets,
                     planned: Mapping[str, Mapping[str, Any]], host: HostInput) -> Dict[str, Any]:
    """Derived settings of the services on the host (fleet-wide ones are added later)."""
    settings: Dict[str, Any] = {}
    if "api" in services:
        size, overflow = api_pool(counts.api_worker_connections)
        settings["api"] = {
            "server_worker_amount": counts.api_workers,
            "server_worker_connections": counts.api_worker_connections,
            "gunicorn_timeout": 360,
            "sqlalchemy_pool_size": size,
            "sqlalchemy_max_overflow": overflow,
            "db_connections": counts.api_workers * (size + overflow),
        }
    if "worker" in services:
        worker = {
            "celery_worker_amount": counts.celery_workers,
            "celery_auto_scale": counts.celery_autoscale,
            "sqlalchemy_pool_size": CELERY_POOL[0],
            "sqlalchemy_max_overflow": CELERY_POOL[1],
        }
        if counts.celery_autoscale:
            worker["celery_max_workers"] = counts.celery_workers
            worker["celery_min_workers"] = max(1, int(math.ceil(counts.celery_workers / 4.0)))
        # Children, plus the worker_beat process where it runs, on the same pool settings.
        processes = counts.celery_workers + (1 if "worker_beat" in services else 0)
        worker["db_connections"] = processes * sum(CELERY_POOL)
        settings["worker"] = worker
    if "plugin_daemon" in services:
        settings["plugin_daemon"] = {"db_connections": PLUGIN_DAEMON_DB_CONNECTIONS,
                                     "gomaxprocs": max(1, int(planned["plugin_daemon"]["cpus"]))}
    if "redis" in services:
        settings["redis"] = redis_settings(planned["redis"]["memory_mb"])
    if "nginx" in services:
        settings["nginx"] = nginx_settings(planned["nginx"]["cpus"], targets, host.setting_overrides)
    for store in ("weaviate", "qdrant", "pgvector"):
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
    """Gateway settings: workers from its CPU limit, body size above every Dify upload limit."""
    rps = int(overrides.get("rate_limit_rps", targets.rate_limit_rps))
    connections = int(overrides.get("nginx_worker_connections", targets.nginx_worker_connections))
    return {
        "worker_processes": max(1, int(math.ceil(cpus))),
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
        "rate_limit_rps": rps,
        "rate_limit_burst": rps * 2,
        "rate_limit_status": 429,
        "keepalive_connections": 32,
    }


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
        # The slice holds every container of the stack: the same CPUs and memory the services were
        # sized from, so the stack as a whole can never take the OS reserve. MemoryHigh starts
        # reclaim a little before the hard limit.
        "slice": {
            "name": SLICE_NAME,
            "cpu_quota_percent": int(round(cpu_available * 100)),
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

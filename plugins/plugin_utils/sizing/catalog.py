# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the sizing engine knows about Dify's components, services and profiles.

Floors are what a service needs to start and serve light load (MiB, CPUs); weights say how the
memory and CPU left after the floors are shared; caps bound services that gain nothing from more.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Tuple

# Inventory components (groups ``dify_<component>``) and the Compose services each one runs.
COMPONENTS = ("gateway", "app", "database", "redis", "vector_store", "gpu_inference")
REQUIRED_COMPONENTS = ("gateway", "app", "database", "redis", "vector_store")
SINGLE_HOST_COMPONENTS = ("database", "redis", "vector_store")

APP_SERVICES = ("api", "worker", "worker_beat", "web", "sandbox", "plugin_daemon", "ssrf_proxy")
# App services that run on one app host of a fleet only (the one that runs the migrations).
SINGLETON_APP_SERVICES = ("worker_beat", "plugin_daemon")
VECTOR_STORES = ("weaviate", "qdrant", "pgvector")
# Connection poolers the plan may put in front of the database host's Postgres (dify_postgres_pooler).
POSTGRES_POOLERS = ("pgbouncer",)
POSTGRES_POOLER_CHOICES = ("auto",) + POSTGRES_POOLERS + ("none",)
# Services whose data must never be swapped out: memswap_limit = mem_limit.
DATA_SERVICES = ("db_postgres", "redis") + VECTOR_STORES

PROFILES = ("edge", "small", "standard", "large")

# Dify's stated minimum for a full single node.
DIFY_MIN_VCPUS = 2
# MemTotal of a machine sold as 4 GiB is 3.6 to 3.9 GiB once firmware and the kernel take theirs.
DIFY_MIN_MEMORY_MB = 3584

# Dify 1.13 upload limits (MB) and the plugin package limit; the gateway must admit the largest.
DIFY_UPLOAD_LIMITS_MB = {
    "UPLOAD_FILE_SIZE_LIMIT": 15,
    "UPLOAD_IMAGE_FILE_SIZE_LIMIT": 10,
    "UPLOAD_VIDEO_FILE_SIZE_LIMIT": 100,
    "UPLOAD_AUDIO_FILE_SIZE_LIMIT": 50,
    "PLUGIN_MAX_PACKAGE_SIZE": 50,
}


@dataclass(frozen=True)
class ServiceSpec:
    """Static sizing data of one Compose service.

    ``cpu_weight`` becomes the container's CPU shares: under contention CPU time is shared in
    proportion, and an idle host lends every core to whoever needs it. ``cpu_cap`` is a hard
    quota in whole cores for services that cannot use more (one process); None: no quota, the
    service may use every CPU the host has left after the OS reserve.
    """

    floor_mb: int
    weight: float
    cap_mb: Optional[int]
    cpu_weight: float
    cpu_cap: Optional[float] = None


# Floors sit above what Dify 1.13.3's own services use at idle, measured from their RSS on a
# 2-vCPU host (api 431 MB: gunicorn master 47 + one gevent worker 384; worker 390 MB; worker_beat
# 367 MB, OOM-killed in a loop under a 252 MiB limit; web 116-237 MB; sandbox 115-207 MB;
# PostgreSQL 87 MiB). api and worker floors grow with their processes and greenlets; see
# host.service_floor_mb. The request path (nginx, api, web, sandbox, plugin daemon, the
# databases) has no CPU quota: a slice of one core throttled the sandbox in 2463 of 2496 periods.
SERVICE_SPECS: Dict[str, ServiceSpec] = {
    # api's own floor is gunicorn's master process; each gevent process adds its own.
    "api": ServiceSpec(floor_mb=48, weight=3.0, cap_mb=None, cpu_weight=3.0),
    "worker": ServiceSpec(floor_mb=0, weight=4.0, cap_mb=None, cpu_weight=1.5),
    "worker_beat": ServiceSpec(floor_mb=384, weight=0.1, cap_mb=640, cpu_weight=0.2, cpu_cap=1.0),
    "web": ServiceSpec(floor_mb=256, weight=0.3, cap_mb=1024, cpu_weight=0.5),
    "sandbox": ServiceSpec(floor_mb=256, weight=0.5, cap_mb=2048, cpu_weight=2.0),
    # The daemon runs every installed plugin as its own Python process (100-300 MB each).
    "plugin_daemon": ServiceSpec(floor_mb=384, weight=1.5, cap_mb=16384, cpu_weight=1.0),
    "ssrf_proxy": ServiceSpec(floor_mb=64, weight=0.1, cap_mb=256, cpu_weight=0.5, cpu_cap=1.0),
    "nginx": ServiceSpec(floor_mb=48, weight=0.2, cap_mb=512, cpu_weight=1.0),
    "db_postgres": ServiceSpec(floor_mb=256, weight=3.0, cap_mb=None, cpu_weight=2.0),
    "redis": ServiceSpec(floor_mb=96, weight=0.5, cap_mb=16384, cpu_weight=1.0),
    "weaviate": ServiceSpec(floor_mb=1024, weight=3.0, cap_mb=None, cpu_weight=2.0),
    "qdrant": ServiceSpec(floor_mb=512, weight=2.5, cap_mb=None, cpu_weight=2.0),
    "pgvector": ServiceSpec(floor_mb=192, weight=2.0, cap_mb=None, cpu_weight=1.5),
    # PgBouncer is one event-loop process: one core is all it can use, so its quota never throttles
    # it. Its floor grows with the clients it admits (host.service_floor_mb, PGBOUNCER_CLIENT_KB).
    "pgbouncer": ServiceSpec(floor_mb=32, weight=0.05, cap_mb=64, cpu_weight=1.0, cpu_cap=1.0),
    # CPU-side memory of the inference engine (weights stream through host memory on load).
    "inference": ServiceSpec(floor_mb=2048, weight=2.0, cap_mb=None, cpu_weight=2.0),
    # Dify 1.16's agent services (stack/versions.py). ESTIMATES, not measured here (their images
    # cannot be pulled on the test machines): the agent backend is a Python (uvicorn) service like
    # the api's processes at idle; the local sandbox runs the agent's shell commands, as the code
    # sandbox runs code, so it gets the sandbox's floor and no CPU quota; the agent's SSRF proxy is
    # the same squid as ssrf_proxy.
    "agent_backend": ServiceSpec(floor_mb=320, weight=0.5, cap_mb=2048, cpu_weight=1.0),
    "local_sandbox": ServiceSpec(floor_mb=256, weight=0.5, cap_mb=2048, cpu_weight=1.0),
    "agent_ssrf_proxy": ServiceSpec(floor_mb=64, weight=0.1, cap_mb=256, cpu_weight=0.5, cpu_cap=1.0),
}

# Dify's api and worker are gevent processes: gunicorn ``--worker-class gevent`` and
# ``celery worker -P gevent`` (the entrypoint's default, which the plan sets explicitly). One
# process runs its greenlets on one core and shares one SQLAlchemy pool among them.
API_PROCESS_MB = 400
API_GREENLET_MB = 4
# A gevent process gains nothing past these: more memory goes to more processes. A Celery
# process holds whole documents while it indexes them, hence its larger bound.
API_PROCESS_CAP_MB = 1536
CELERY_PROCESS_CAP_MB = 8192
CELERY_PROCESS_MB = 420
CELERY_GREENLET_MB = 8
CELERY_POOL_CLASS = "gevent"
# PgBouncer's memory per client connection ("low memory requirements, 2 kB per connection by
# default", PgBouncer's own description; pkt_buf 4096).
PGBOUNCER_CLIENT_KB = 2


@dataclass(frozen=True)
class ProfileTargets:
    """Process counts and front-end limits a profile aims at, before the host bounds them.

    Greenlets are the I/O concurrency of one process: requests and tasks mostly wait on LLM calls
    and the database, so one process carries many of them; processes are added to use cores."""

    api_processes_max: int
    api_greenlets: int
    worker_processes_max: int
    worker_greenlets: int
    nginx_worker_connections: int
    autovacuum_naptime_s: int
    docker_log_max_mb: int
    docker_log_max_files: int


PROFILE_TARGETS: Dict[str, ProfileTargets] = {
    "edge": ProfileTargets(1, 10, 1, 4, 512, 60, 10, 3),
    "small": ProfileTargets(2, 20, 1, 8, 1024, 30, 20, 5),
    "standard": ProfileTargets(4, 32, 2, 16, 2048, 15, 50, 5),
    "large": ProfileTargets(12, 32, 4, 32, 4096, 15, 100, 5),
}


def auto_profile(vcpus: int, memory_mb: int) -> str:
    """Pick the profile of a host from its size (MemTotal in MiB)."""
    if memory_mb < 6144 or vcpus < 2:
        return "edge"
    if memory_mb < 14336 or vcpus < 4:
        return "small"
    if memory_mb < 61440 or vcpus < 16:
        return "standard"
    return "large"


def services_for(components: Tuple[str, ...], vector_store: str, runs_beat: bool = True,
                 pooler: bool = False, extra_app: Tuple[str, ...] = ()) -> Tuple[str, ...]:
    """The Compose services that the given components run on one host, in a stable order.
    Only one app host of a fleet (``runs_beat``) runs worker_beat, and the plugin daemon: daemons
    on several hosts forward plugin calls to each other's container addresses, which other hosts
    cannot route (and upstream supports one daemon only), so every app host calls that one.
    ``pooler``: the fleet puts PgBouncer in front of the database host's Postgres. ``extra_app``:
    the app services the Dify version adds (stack/versions.py), on every app host."""
    services = []
    if "gateway" in components:
        services.append("nginx")
    if "app" in components:
        services.extend(s for s in APP_SERVICES if runs_beat or s not in SINGLETON_APP_SERVICES)
        services.extend(extra_app)
    if "database" in components:
        services.append("db_postgres")
        if pooler:
            services.append("pgbouncer")
    if "redis" in components:
        services.append("redis")
    if "vector_store" in components:
        services.append(vector_store)
    if "gpu_inference" in components:
        services.append("inference")
    return tuple(services)

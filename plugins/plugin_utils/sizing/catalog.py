# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the sizing engine knows about Dify's components, services and profiles.

Floors are what a service needs to start and serve light load (MiB, CPUs); weights say how the
memory and CPU left after the floors are shared; caps bound services that gain nothing from more.
Each service's own numbers are in its record (services.py); the tables here are views of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Tuple

from .services import SERVICES, ServiceSpec, names

# Inventory components (groups ``dify_<component>``) and the Compose services each one runs.
COMPONENTS = ("gateway", "app", "database", "redis", "vector_store", "gpu_inference")
REQUIRED_COMPONENTS = ("gateway", "app", "database", "redis", "vector_store")
SINGLE_HOST_COMPONENTS = ("database", "redis", "vector_store")

# The services each kind of host runs, from the registry (services.py), in its order.
APP_SERVICES = names("app", every_version=True)
# App services that run on one app host of a fleet only (the one that runs the migrations).
SINGLETON_APP_SERVICES = names("app", singleton=True)
VECTOR_STORES = names("vector_store")
# Connection poolers the plan may put in front of the database host's Postgres (dify_postgres_pooler).
POSTGRES_POOLERS = ("pgbouncer",)
POSTGRES_POOLER_CHOICES = ("auto",) + POSTGRES_POOLERS + ("none",)
# Services whose data must never be swapped out: memswap_limit = mem_limit.
DATA_SERVICES = names(never_swap=True)

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


# Every service's floors, weights and caps (services.py explains the numbers).
SERVICE_SPECS: Dict[str, ServiceSpec] = {name: record.sizing for name, record in SERVICES.items()}

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

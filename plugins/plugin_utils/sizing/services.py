# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One record per Compose service the collection deploys: what every module needs to know about it.

The sizing engine (catalog.SERVICE_SPECS, APP_SERVICES, DATA_SERVICES, VECTOR_STORES, fleet.PORTS,
postgres.STACK_POSTGRES_VERSIONS) and the stack model (compose.DATA_DIRS, the firewall's sources,
backup, data moves, the shared constants) derive their tables from ``SERVICES``; adding a service
is mainly adding its record here. What depends on the Dify version (images, variables, secrets,
which app services a version adds) stays in stack/versions.py and the reference modules.

Pure data, no Ansible imports: sizing is the core that the stack model imports.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Tuple

# Who may reach a service's published port on a split fleet (the firewall's sources).
APPS = "apps"  # the app hosts (the fleet's data_access networks of the service's component)
GATEWAYS = "gateways"  # the gateway hosts, whose nginx proxies to it
GATEWAYS_AND_APPS = "gateways_and_apps"  # the gateways, and every other app host (the one plugin daemon)
CLIENTS = (APPS, GATEWAYS, GATEWAYS_AND_APPS)


@dataclass(frozen=True)
class ServiceSpec:
    """Static sizing data of one Compose service.

    Floors are what a service needs to start and serve light load (MiB, CPUs); weights say how the
    memory and CPU left after the floors are shared; caps bound services that gain nothing from more.
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


@dataclass(frozen=True)
class Service:
    """One Compose service.

    ``component``: the inventory component (group ``dify_<component>``) whose hosts run it.
    ``port``: where it listens inside the project (its container port; None: no port of its own,
    or one that depends on its engine). ``published``: the host port a split fleet publishes it on
    for the other hosts (None: never published). ``clients``: who may reach that port (CLIENTS).
    ``data_dir``: the project-relative directory it keeps its data in (created by the role).
    ``keeps``: what that data is, for the refusal of a plan that would leave it behind.
    ``every_version``: False for a service only the Dify versions that add it run
    (versions.Version.extra_app_services). ``singleton``: one app host of a fleet runs it.
    ``never_swap``: its data must never be swapped out (memswap_limit = mem_limit).
    ``host_when_split``: a split fleet runs it on the host itself, outside the project.
    ``postgres``: the PostgreSQL major version its image runs; ``password``: the secret that is its
    database password.
    """

    name: str
    component: str
    sizing: ServiceSpec
    port: Optional[int] = None
    published: Optional[int] = None
    clients: str = ""
    data_dir: Optional[str] = None
    keeps: str = ""
    every_version: bool = True
    singleton: bool = False
    never_swap: bool = False
    host_when_split: bool = False
    postgres: Optional[int] = None
    password: str = ""


# Floors sit above what Dify 1.13.3's own services use at idle, measured from their RSS on a
# 2-vCPU host (api 431 MB: gunicorn master 47 + one gevent worker 384; worker 390 MB; worker_beat
# 367 MB, OOM-killed in a loop under a 252 MiB limit; web 116-237 MB; sandbox 115-207 MB;
# PostgreSQL 87 MiB). api and worker floors grow with their processes and greenlets; see
# host.service_floor_mb. The request path (nginx, api, web, sandbox, plugin daemon, the
# databases) has no CPU quota: a slice of one core throttled the sandbox in 2463 of 2496 periods.
# The order is the catalog's: app services in start order, then the gateway and the data services.
_RECORDS: Tuple[Service, ...] = (
    # api's own floor is gunicorn's master process; each gevent process adds its own.
    Service("api", "app", ServiceSpec(floor_mb=48, weight=3.0, cap_mb=None, cpu_weight=3.0),
            port=5001, published=5001, clients=GATEWAYS, data_dir="volumes/app/storage",
            keeps="the uploaded files and the workspaces' private keys (local file storage)"),
    Service("worker", "app", ServiceSpec(floor_mb=0, weight=4.0, cap_mb=None, cpu_weight=1.5),
            data_dir="volumes/app/storage"),
    Service("worker_beat", "app",
            ServiceSpec(floor_mb=384, weight=0.1, cap_mb=640, cpu_weight=0.2, cpu_cap=1.0), singleton=True),
    Service("web", "app", ServiceSpec(floor_mb=256, weight=0.3, cap_mb=1024, cpu_weight=0.5),
            port=3000, published=3000, clients=GATEWAYS),
    Service("sandbox", "app", ServiceSpec(floor_mb=256, weight=0.5, cap_mb=2048, cpu_weight=2.0),
            port=8194, data_dir="sandbox/dependencies"),
    # The daemon runs every installed plugin as its own Python process (100-300 MB each).
    Service("plugin_daemon", "app", ServiceSpec(floor_mb=384, weight=1.5, cap_mb=16384, cpu_weight=1.0),
            port=5002, published=5002, clients=GATEWAYS_AND_APPS, data_dir="volumes/plugin_daemon",
            keeps="the installed plugins (local plugin storage)", singleton=True),
    Service("ssrf_proxy", "app",
            ServiceSpec(floor_mb=64, weight=0.1, cap_mb=256, cpu_weight=0.5, cpu_cap=1.0), port=3128),
    Service("nginx", "gateway", ServiceSpec(floor_mb=48, weight=0.2, cap_mb=512, cpu_weight=1.0),
            host_when_split=True),
    # PostgreSQL majors: Dify 1.13.3's compose file uses postgres:15-alpine for db_postgres and
    # pgvector/pgvector:pg16 for pgvector (stack/reference_1_13_3.py IMAGES; a unit test keeps the
    # two in step).
    Service("db_postgres", "database", ServiceSpec(floor_mb=256, weight=3.0, cap_mb=None, cpu_weight=2.0),
            port=5432, published=5432, clients=APPS, data_dir="volumes/db/data",
            keeps="the PostgreSQL database (every app, conversation and dataset)",
            never_swap=True, host_when_split=True, postgres=15, password="DB_PASSWORD"),
    Service("redis", "redis", ServiceSpec(floor_mb=96, weight=0.5, cap_mb=16384, cpu_weight=1.0),
            port=6379, published=6379, clients=APPS, data_dir="volumes/redis/data",
            keeps="Redis (Celery's queued tasks and the sessions)", never_swap=True),
    Service("weaviate", "vector_store", ServiceSpec(floor_mb=1024, weight=3.0, cap_mb=None, cpu_weight=2.0),
            port=8080, published=8080, clients=APPS, data_dir="volumes/weaviate",
            keeps="the Weaviate store (every knowledge base's embeddings)", never_swap=True),
    Service("qdrant", "vector_store", ServiceSpec(floor_mb=512, weight=2.5, cap_mb=None, cpu_weight=2.0),
            port=6333, published=6333, clients=APPS, data_dir="volumes/qdrant",
            keeps="the Qdrant store (every knowledge base's embeddings)", never_swap=True),
    # pgvector is published on 5433: a split fleet may run the host's PostgreSQL beside it on 5432.
    Service("pgvector", "vector_store", ServiceSpec(floor_mb=192, weight=2.0, cap_mb=None, cpu_weight=1.5),
            port=5432, published=5433, clients=APPS, data_dir="volumes/pgvector/data",
            keeps="the pgvector store (every knowledge base's embeddings)", never_swap=True,
            postgres=16, password="PGVECTOR_PASSWORD"),
    # PgBouncer is one event-loop process: one core is all it can use, so its quota never throttles
    # it. Its floor grows with the clients it admits (host.service_floor_mb, PGBOUNCER_CLIENT_KB).
    # It listens on its customary 6432. On a split fleet it shares the host's network, so Compose
    # publishes nothing: the app hosts reach 6432 on the host's address, where the firewall admits
    # them (compose.firewall_rules).
    Service("pgbouncer", "database",
            ServiceSpec(floor_mb=32, weight=0.05, cap_mb=64, cpu_weight=1.0, cpu_cap=1.0),
            port=6432, published=6432, clients=APPS),
    # CPU-side memory of the inference engine (weights stream through host memory on load). Its
    # container port is the engine's (fleet.INFERENCE_CONTAINER_PORTS); a split fleet publishes vLLM
    # on 8000 (Ollama has no API key and is never published).
    Service("inference", "gpu_inference", ServiceSpec(floor_mb=2048, weight=2.0, cap_mb=None, cpu_weight=2.0),
            published=8000, clients=APPS, data_dir="volumes/inference"),
    # Dify 1.16's agent services (stack/versions.py). ESTIMATES, not measured here (their images
    # cannot be pulled on the test machines): the agent backend is a Python (uvicorn) service like
    # the api's processes at idle; the local sandbox runs the agent's shell commands, as the code
    # sandbox runs code, so it gets the sandbox's floor and no CPU quota; the agent's SSRF proxy is
    # the same squid as ssrf_proxy. The backend's API listens on 5050, the local sandbox's shellctl
    # on 5004.
    Service("agent_backend", "app", ServiceSpec(floor_mb=320, weight=0.5, cap_mb=2048, cpu_weight=1.0),
            port=5050, every_version=False),
    Service("local_sandbox", "app", ServiceSpec(floor_mb=256, weight=0.5, cap_mb=2048, cpu_weight=1.0),
            port=5004, every_version=False),
    Service("agent_ssrf_proxy", "app",
            ServiceSpec(floor_mb=64, weight=0.1, cap_mb=256, cpu_weight=0.5, cpu_cap=1.0), port=3128,
            every_version=False),
)

SERVICES: Dict[str, Service] = {record.name: record for record in _RECORDS}


def names(component: str = "", **flags: bool) -> Tuple[str, ...]:
    """The services, in the registry's order, of ``component`` (any when empty) whose boolean
    fields are as ``flags`` say, e.g. ``names("app", every_version=True)``."""
    return tuple(r.name for r in _RECORDS if (not component or r.component == component)
                 and all(getattr(r, flag) == value for flag, value in flags.items()))


def published_ports() -> Dict[str, int]:
    """The host port each published service uses on a split fleet."""
    return {r.name: r.published for r in _RECORDS if r.published is not None}


def gateway_upstreams() -> Tuple[str, ...]:
    """The services the gateways proxy to: those whose published port admits them."""
    return tuple(r.name for r in _RECORDS if r.clients in (GATEWAYS, GATEWAYS_AND_APPS))


def data_dirs() -> Dict[str, str]:
    """The project-relative data directory of each service that keeps one."""
    return {r.name: r.data_dir for r in _RECORDS if r.data_dir is not None}


def port(name: str) -> int:
    """Where a service listens inside the project; KeyError for a service without a port of its own."""
    listens = SERVICES[name].port
    if listens is None:
        raise KeyError("service %s has no port of its own" % name)
    return listens

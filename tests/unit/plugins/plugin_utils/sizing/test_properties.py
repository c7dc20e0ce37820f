"""Property tests over host shapes from 1 vCPU/2 GiB to 192 vCPU/2 TiB, 0-8 GPUs of 8-141 GB,
HDD/SSD/NVMe disks, single-node and split placements."""

from __future__ import annotations

import math

from hypothesis import HealthCheck, event, given, settings, strategies as st

from ansible_collections.difyops.dify.plugins.plugin_utils.sizing.catalog import DIFY_MIN_MEMORY_MB, DIFY_UPLOAD_LIMITS_MB
from ansible_collections.difyops.dify.plugins.plugin_utils.sizing.errors import PlanError
from ansible_collections.difyops.dify.plugins.plugin_utils.sizing.fleet import POSTGRES_DIRECT_MAX_CONNECTIONS, plan_fleet
from ansible_collections.difyops.dify.plugins.plugin_utils.sizing.host import os_reserve_mb, service_floor_mb, Counts
from ansible_collections.difyops.dify.plugins.plugin_utils.sizing.postgres import worst_case_kb

from sizing_helpers import pg_kb

GIB = 1024
EXAMPLES = 600


def pgtune_web_kb(memory_mb, cpus, max_connections):
    """Current PGTune's web profile (le0pard/pgtune 7caef27), written out independently of the engine (kB)."""
    total = memory_mb * 1024
    shared_buffers = total // 4
    workers = cpus if cpus >= 4 else 8
    maintenance = min(total // 16, 8 * 1024 * 1024)
    return {
        "shared_buffers": shared_buffers,
        "effective_cache_size": total * 3 // 4,
        "maintenance_work_mem": maintenance,
        "work_mem": max(4096, (total - shared_buffers) // ((max_connections + workers) * 3)),
        "autovacuum_work_mem": 2 * 1024 * 1024 if maintenance >= 2 * 1024 * 1024 else None,
    }


gpu = st.builds(
    lambda gb, cc, i: {"index": i, "name": "GPU %dGB" % gb, "memory_total_mib": gb * 1000 * 1000 // 1024,
                       "compute_capability": cc, "mig_mode": False},
    st.integers(8, 141), st.sampled_from(["7.5", "8.0", "8.6", "8.9", "9.0"]), st.just(0))


@st.composite
def shape(draw):
    vcpus = draw(st.integers(1, 192))
    memory_mb = draw(st.integers(2 * GIB, 2 * 1024 * GIB))
    gpus = draw(st.lists(gpu, min_size=0, max_size=8))
    same = draw(st.booleans())
    gpus = [dict(gpus[0] if same else g, index=i) for i, g in enumerate(gpus)]
    return {"vcpus": vcpus, "memory_mb": memory_mb, "gpus": gpus,
            "disk_kind": draw(st.sampled_from(["hdd", "ssd", "nvme"])),
            "architecture": draw(st.sampled_from(["x86_64", "aarch64"]))}


@st.composite
def fleet(draw):
    layout = draw(st.sampled_from(["single", "single+gpu", "split"]))
    pooler = draw(st.sampled_from(["auto", "auto", "pgbouncer", "none"]))
    if layout.startswith("single"):
        components = ["gateway", "app", "database", "redis", "vector_store"]
        shp = draw(shape())
        if layout == "single+gpu" and shp["gpus"]:
            components.append("gpu_inference")
        return [dict(shp, name="node", components=components)], {} if pooler == "auto" else {"postgres_pooler": pooler}
    roles = [["gateway"], ["app"], ["app"], ["database", "redis"], ["vector_store"]]
    if draw(st.booleans()):
        roles.append(["gpu_inference"])
    hosts = []
    for i, components in enumerate(roles):
        shp = draw(shape())
        if "gpu_inference" in components and not shp["gpus"]:
            shp["gpus"] = [draw(gpu)]
        hosts.append(dict(shp, name="h%d" % i, components=components, address="10.1.0.%d" % (10 + i)))
    return hosts, {"object_storage": True, "vector_store": draw(st.sampled_from(["auto", "weaviate", "qdrant", "pgvector"])),
                   "postgres_pooler": pooler}


REQUEST_PATH = ("nginx", "api", "web", "sandbox", "plugin_daemon", "db_postgres", "pgvector", "weaviate", "qdrant")


def minimum_floors(host_plan_services):
    """Floors at the smallest process counts: what the plan must at least give."""
    counts = Counts(api_processes=1, api_greenlets=10, worker_processes=1, worker_greenlets=4)
    return {s: service_floor_mb(s, counts) for s in host_plan_services}


def check_host(plan, raw):
    resources = plan["resources"]
    services = plan["services"]
    usable = raw["memory_mb"] - os_reserve_mb(raw["memory_mb"])
    assert resources["usable_mb"] == usable
    # The sum of memory limits (every replica) never exceeds host memory minus the OS reserve.
    assert sum(s["memory_mb"] * s["replicas"] for s in services.values()) <= usable
    assert sum(s["memory_reserved_mb"] * s["replicas"] for s in services.values()) <= usable
    # Every service gets at least its floor.
    for name, floor in minimum_floors(services).items():
        assert services[name]["memory_mb"] >= floor, name
        assert services[name]["memory_reserved_mb"] <= services[name]["memory_mb"]
        assert 0 < services[name]["cpus"] <= resources["cpu_available"]
        assert services[name]["cpu_shares"] >= 2
    # The request path is never given a CPU quota: it shares the CPUs by weight.
    for name in REQUEST_PATH:
        if name in services:
            assert not services[name]["cpu_quota"], name
            assert services[name]["cpus"] == resources["cpu_available"], name
    for name in ("db_postgres", "redis", "weaviate", "qdrant", "pgvector"):
        if name in services:
            assert services[name]["memswap_mb"] == services[name]["memory_mb"]
    settings = plan["settings"]
    # Every gevent process has a connection for each greenlet that may hold one.
    if "api" in settings:
        api = settings["api"]
        assert api["sqlalchemy_pool_size"] + api["sqlalchemy_max_overflow"] >= api["server_worker_connections"]
    if "worker" in settings:
        worker = settings["worker"]
        assert worker["celery_worker_class"] == "gevent"
        assert worker["sqlalchemy_pool_size"] + worker["sqlalchemy_max_overflow"] >= worker["celery_worker_amount"]
        assert services["worker"]["replicas"] == worker["processes"]
    if "nginx" in settings:
        assert settings["nginx"]["client_max_body_size_mb"] >= max(DIFY_UPLOAD_LIMITS_MB.values())
        assert "text/event-stream" not in settings["nginx"]["gzip_types"]
        assert settings["nginx"]["dify_upload_limit_mb"] == max(DIFY_UPLOAD_LIMITS_MB.values())
        assert settings["nginx"]["worker_rlimit_nofile"] >= 2 * settings["nginx"]["worker_connections"]
        # Kept-alive upstream connections would hold the api's greenlet slots (see host.nginx_settings).
        assert settings["nginx"]["upstream_keepalive"]["api"] == 0
    if "pgbouncer" in settings:
        # One event-loop process: at most one core (a quota where the host has more); memory for
        # every client it admits.
        assert services["pgbouncer"]["cpus"] <= 1
        assert services["pgbouncer"]["cpu_quota"] == (resources["cpu_available"] > 1)
        clients = settings["pgbouncer"]["max_client_conn"]
        assert services["pgbouncer"]["memory_mb"] >= service_floor_mb("pgbouncer", Counts(1, 10, 1, 4, clients))
        assert settings["pgbouncer"]["pool_mode"] == "transaction"
    if "redis" in settings:
        assert settings["redis"]["maxmemory_mb"] < services["redis"]["memory_mb"]
        assert not settings["redis"]["maxmemory_policy"].startswith("allkeys")
    inference = settings.get("inference")
    if inference and inference["enabled"]:
        per_gpu = [g for g in raw["gpus"] if g["index"] in inference["gpu_indexes"]][0]["memory_total_mib"]
        assert inference["vram_need_mib"] <= 0.9 * per_gpu * inference["tensor_parallel_size"]


def check_postgres(pg, memory_mb, cpus):
    reference = pgtune_web_kb(memory_mb, max(1, int(cpus)), pg["max_connections"])
    limit_kb = memory_mb * 1024
    # The worst case fits the container's limit; huge pages are never planned (host tuning reserves none).
    assert worst_case_kb(pg) <= limit_kb
    assert pg["huge_pages"] == "off"
    for key in ("shared_buffers", "effective_cache_size"):
        assert pg_kb(pg[key]) == reference[key], (key, pg[key], reference[key])
    pgtune_memory = {key: "%dkB" % reference[key] for key in ("work_mem", "maintenance_work_mem")}
    if reference["autovacuum_work_mem"]:
        pgtune_memory["autovacuum_work_mem"] = "2GB"
    for key, expected in pgtune_memory.items():
        value = pg_kb(pg[key])
        assert value <= pg_kb(expected), (key, pg[key], expected)
        if value < pg_kb(expected):
            # Lowered only where PGTune's own values would exceed the limit in the worst case.
            unfitted = {k: v for k, v in pg.items() if k != "autovacuum_work_mem"}
            unfitted.update(pgtune_memory)
            assert worst_case_kb(unfitted) > limit_kb, (key, pg[key], expected)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fleet())
def test_plans_fit_or_are_refused(case):
    hosts, options = case
    try:
        plan = plan_fleet(hosts, options)
    except PlanError as exc:
        event("refused")
        # A refusal always names a host or component and what is missing.
        assert exc.problems
        for problem in exc.problems:
            assert "host '" in problem or "component '" in problem
        return
    event("planned")
    raw = {h["name"]: h for h in hosts}
    fleet_plan = plan["fleet"]
    for name, host_plan in plan["hosts"].items():
        check_host(host_plan, raw[name])
    pools = sum(fleet_plan["app_connections"].values())
    # Every pool is counted: by Postgres directly, or by PgBouncer (all but the plugin daemon's).
    direct = sum(h["settings"].get("plugin_daemon", {}).get("db_connections", 0) for h in plan["hosts"].values())
    pooled = [h["settings"]["pgbouncer"] for h in plan["hosts"].values() if "pgbouncer" in h["settings"]]
    if fleet_plan["postgres_pooler"] == "none":
        assert not pooled
        assert fleet_plan["postgres_max_connections"] >= pools
    else:
        assert pooled[0]["max_client_conn"] >= pools - direct
        assert fleet_plan["postgres_max_connections"] >= pooled[0]["default_pool_size"] + direct
    if options.get("postgres_pooler", "auto") == "auto":
        assert fleet_plan["postgres_max_connections"] <= POSTGRES_DIRECT_MAX_CONNECTIONS
    for host_plan in plan["hosts"].values():
        if "postgres" in host_plan["settings"]:
            db = host_plan["services"]["db_postgres"]
            pg = host_plan["settings"]["postgres"]["server"]
            assert pg["max_connections"] == fleet_plan["postgres_max_connections"]
            check_postgres(pg, db["memory_mb"], db["cpus"])
        if "pgvector" in host_plan["services"]:
            vector = host_plan["services"]["pgvector"]
            check_postgres(host_plan["settings"]["vector_store"]["server"], vector["memory_mb"], vector["cpus"])
    assert sum(1 for h in plan["hosts"].values() if "worker_beat" in h["services"]) == 1


@settings(max_examples=200, deadline=None)
@given(st.integers(2, 192), st.integers(DIFY_MIN_MEMORY_MB, 2 * 1024 * GIB))
def test_full_nodes_at_or_above_dify_minimum_are_planned(vcpus, memory_mb):
    plan = plan_fleet([{"name": "n", "vcpus": vcpus, "memory_mb": memory_mb,
                        "components": ["gateway", "app", "database", "redis", "vector_store"]}])
    resources = plan["hosts"]["n"]["resources"]
    assert resources["allocated_mb"] <= resources["usable_mb"]
    assert math.isfinite(resources["allocated_mb"])

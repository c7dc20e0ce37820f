"""PostgreSQL settings: versions, huge pages, and the worst case inside the memory limit."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from ansible_collections.difyops.dify.plugins.plugin_utils.sizing import postgres
from ansible_collections.difyops.dify.plugins.plugin_utils.sizing.fleet import plan_fleet
from ansible_collections.difyops.dify.plugins.plugin_utils.sizing.postgres import (
    STACK_POSTGRES_VERSIONS, PostgresMemoryError, format_kb, host_provides_huge_pages, pgtune_web, postgres_settings,
    size_kb, worst_case_kb)
from ansible_collections.difyops.dify.plugins.plugin_utils.stack import reference_1_13_3

from sizing_helpers import host

GIB = 1024
DISKS = ("hdd", "ssd", "nvme", "virtual", "network")


def test_stack_versions_are_those_of_the_stack_images():
    for service, version in STACK_POSTGRES_VERSIONS.items():
        image = reference_1_13_3.IMAGES[service]
        assert image in ("postgres:%d-alpine" % version, "pgvector/pgvector:pg%d" % version), image


@pytest.mark.parametrize("version,compression", [(13, "on"), (14, "on"), (15, "lz4"), (16, "lz4"), (17, "lz4")])
def test_version_decides_wal_compression(version, compression):
    pg = postgres_settings(8 * GIB, 4, "ssd", 100, 15, version=version)
    assert pg["wal_compression"] == compression and pg["jit"] == "off"


def test_unsupported_version_is_refused():
    with pytest.raises(ValueError, match="PostgreSQL 18 is not supported"):
        postgres_settings(8 * GIB, 4, "ssd", 100, 15, version=18)


def test_network_disks_get_pgtune_san_values():
    pg = postgres_settings(8 * GIB, 4, "network", 100, 15)
    assert pg["random_page_cost"] == 1.1 and pg["effective_io_concurrency"] == 300
    assert postgres_settings(8 * GIB, 4, "hdd", 100, 15)["random_page_cost"] == 4.0


def test_maintenance_work_mem_follows_pgtune_8gb_cap():
    pg = postgres_settings(256 * GIB, 32, "ssd", 200, 15)
    assert pg["maintenance_work_mem"] == "8GB" and pg["autovacuum_work_mem"] == "2GB"
    assert "autovacuum_work_mem" not in postgres_settings(16 * GIB, 8, "ssd", 100, 15)


def test_huge_pages_only_where_host_tuning_reserves_them():
    # The plans' host tuning reserves none (roles/host_tuning sets no vm.nr_hugepages).
    plan = plan_fleet([host(vcpus=16, memory_mb=128 * GIB)])["hosts"]["h1"]
    assert "vm.nr_hugepages" not in plan["host_tuning"]["sysctl"]
    assert not host_provides_huge_pages(plan["host_tuning"])
    assert plan["settings"]["postgres"]["server"]["huge_pages"] == "off"
    assert pgtune_web(128 * GIB, 16, 200, "ssd", 15)["huge_pages"] == "try"
    # Where host tuning does reserve them, PGTune's rule applies.
    assert host_provides_huge_pages({"sysctl": {"vm.nr_hugepages": 4096}})
    assert postgres_settings(128 * GIB, 16, "ssd", 200, 15, host_huge_pages=True)["huge_pages"] == "try"
    assert postgres_settings(4 * GIB, 4, "ssd", 100, 15, host_huge_pages=True)["huge_pages"] == "off"


def test_worst_case_counts_every_part():
    pg = {"max_connections": 100, "shared_buffers": "1GB", "wal_buffers": "16MB", "work_mem": "4MB",
          "maintenance_work_mem": "256MB", "huge_pages": "off"}
    processes = 100 + 8 + 3 + postgres.AUXILIARY_PROCESSES
    per_process = postgres.PROCESS_OVERHEAD_KB + 1024 * 1024 // 512
    expected = 1024 * 1024 + 16 * 1024 + processes * per_process + 108 * 4096 + 3 * 256 * 1024 + 256 * 1024
    assert worst_case_kb(pg) == expected
    # autovacuum_work_mem replaces maintenance_work_mem for the autovacuum workers.
    assert worst_case_kb(dict(pg, autovacuum_work_mem="64MB")) == expected - 3 * 192 * 1024


def test_the_4_gib_plan_fits_its_postgres_limits():
    plan = plan_fleet([host(vcpus=2, memory_mb=4 * GIB)])["hosts"]["h1"]
    for service, server in (("db_postgres", plan["settings"]["postgres"]["server"]),
                            ("pgvector", plan["settings"]["vector_store"]["server"])):
        limit_kb = plan["services"][service]["memory_mb"] * 1024
        assert worst_case_kb(server) <= limit_kb
        # PGTune's 4 MB work_mem would not fit: the engine lowered it, not below PostgreSQL's minimum.
        assert worst_case_kb(dict(server, work_mem="4MB")) > limit_kb
        assert 64 <= size_kb(server["work_mem"]) < 4096


def test_postgres_too_small_for_its_connections_is_refused_with_need_and_fix():
    with pytest.raises(PostgresMemoryError) as exc:
        postgres_settings(256, 1, "ssd", 500, 15)
    assert exc.value.need_mb > 256 and exc.value.memory_mb == 256
    fleet = [host("app", 8, 32 * GIB, ["gateway", "app"], address="10.0.0.2"),
             host("db", 2, 2 * GIB, ["database", "redis", "vector_store"], address="10.0.0.3",
                  overrides={"services": {"db_postgres": {"memory_mb": 300}}})]
    with pytest.raises(Exception) as refused:
        plan_fleet(fleet, {"vector_store": "qdrant", "postgres_pooler": "none"})
    message = str(refused.value)
    assert "host 'db': service 'db_postgres' needs at least" in message and "its limit is 300 MiB" in message
    assert "give the host more memory" in message
    assert "put PgBouncer in front of it (dify_postgres_pooler: auto or pgbouncer)" in message
    # Under 'auto' the same fleet gets PgBouncer instead of the refusal: Postgres then holds only
    # the pooler's server connections, the plugin daemon's pool and the reserve.
    plan = plan_fleet(fleet, {"vector_store": "qdrant"})
    assert plan["fleet"]["postgres_pooler"] == "pgbouncer"
    assert plan["fleet"]["postgres_pooler_reason"].startswith("Postgres's memory cannot hold max_connections")
    assert plan["hosts"]["db"]["settings"]["postgres"]["server"]["max_connections"] == 60


@settings(max_examples=400, deadline=None)
@given(st.integers(256, 1024 * GIB), st.floats(0.1, 192), st.integers(20, 2000), st.sampled_from(DISKS),
       st.sampled_from(postgres.SUPPORTED_POSTGRES_VERSIONS))
def test_worst_case_fits_whenever_the_engine_plans(memory_mb, cpus, connections, disk, version):
    try:
        pg = postgres_settings(memory_mb, cpus, disk, connections, 15, version=version)
    except PostgresMemoryError as exc:
        # Refused only when even PostgreSQL's minimums exceed the limit.
        assert exc.need_mb > memory_mb
        return
    assert worst_case_kb(pg) <= memory_mb * 1024
    reference = pgtune_web(memory_mb, max(1, int(cpus)), connections, disk, version)
    for name, minimum in (("work_mem", 64), ("maintenance_work_mem", 1024), ("autovacuum_work_mem", 1024)):
        if name in pg:
            assert minimum <= size_kb(pg[name]) <= reference.get(name, reference["maintenance_work_mem"])
    for name in ("shared_buffers", "effective_cache_size", "wal_buffers", "min_wal_size", "max_wal_size"):
        assert pg[name] == format_kb(reference[name])

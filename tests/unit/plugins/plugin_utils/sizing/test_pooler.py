"""The connection budget: every pool counted, and PgBouncer in front of Postgres past what one
Postgres should hold directly (dify_postgres_pooler)."""

from __future__ import annotations

import pytest

from ansible_collections.difyops.dify.plugins.plugin_utils.sizing import fleet
from ansible_collections.difyops.dify.plugins.plugin_utils.sizing.errors import PlanError
from ansible_collections.difyops.dify.plugins.plugin_utils.sizing.fleet import (
    POSTGRES_DIRECT_MAX_CONNECTIONS, connection_limit, needs_pooler, pgbouncer_pool_size, plan_fleet)

from sizing_helpers import host

GIB = 1024
STORAGE = {"endpoint": "http://s3.example.com:9000", "bucket": "dify"}


def split_fleet(apps, pooler="auto", db_vcpus=16, db_memory=64 * GIB):
    hosts = [host("gw", 2, 4 * GIB, ["gateway"], address="10.0.0.1"),
             host("db", db_vcpus, db_memory, ["database", "redis", "vector_store"], address="10.0.0.2")]
    hosts += [host("app%d" % i, 16, 64 * GIB, ["app"], address="10.0.%d.%d" % (1 + i // 200, 1 + i % 200))
              for i in range(apps)]
    return plan_fleet(hosts, {"postgres_pooler": pooler, "object_storage": STORAGE, "vector_store": "qdrant"})


def pools(plan, services=("api", "worker", "worker_beat", "plugin_daemon")):
    return sum(h["settings"].get(s, {}).get("db_connections", 0) for h in plan["hosts"].values() for s in services)


@pytest.mark.parametrize("option,direct,holds,pooled", [
    ("auto", POSTGRES_DIRECT_MAX_CONNECTIONS, True, False),
    ("auto", POSTGRES_DIRECT_MAX_CONNECTIONS + 10, True, True),
    ("auto", 100, False, True),
    ("none", 100000, False, False),
    ("pgbouncer", 30, True, True),
])
def test_the_pooler_is_planned_past_the_bound_or_what_memory_holds(option, direct, holds, pooled):
    chosen, reason = needs_pooler(option, direct, holds)
    assert chosen is pooled
    assert str(direct) in reason or "dify_postgres_pooler is" in reason


@pytest.mark.parametrize("cpus,size", [(0.5, 20), (1, 20), (4, 20), (5.9, 20), (6, 24), (15.2, 60), (50, 200), (192, 200)])
def test_server_connections_follow_the_database_cpus(cpus, size):
    assert pgbouncer_pool_size(cpus) == size


def test_a_small_fleet_connects_directly_as_before():
    plan = split_fleet(1)
    assert plan["fleet"]["postgres_pooler"] == "none"
    assert "pgbouncer" not in plan["hosts"]["db"]["services"]
    assert plan["fleet"]["postgres_max_connections"] == connection_limit(pools(plan))
    assert "timezone" not in plan["hosts"]["db"]["settings"]["postgres"]["server"]


def test_past_the_bound_pgbouncer_takes_every_pool_but_the_plugin_daemons():
    plan = split_fleet(2)
    db = plan["hosts"]["db"]
    bouncer = db["settings"]["pgbouncer"]
    direct = pools(plan, ("plugin_daemon",))
    assert connection_limit(pools(plan)) > POSTGRES_DIRECT_MAX_CONNECTIONS
    assert plan["fleet"]["postgres_pooler"] == "pgbouncer"
    assert "above the 500" in plan["fleet"]["postgres_pooler_reason"]
    assert list(db["services"])[:2] == ["db_postgres", "pgbouncer"]
    # Every api, worker and beat pool is admitted, with the reserve on top.
    assert bouncer["pooled_clients"] == pools(plan, ("api", "worker", "worker_beat"))
    assert bouncer["max_client_conn"] == connection_limit(bouncer["pooled_clients"])
    assert bouncer["pool_mode"] == "transaction" and bouncer["database"] == "dify"
    assert bouncer["default_pool_size"] == bouncer["max_db_connections"] == 60
    assert set(bouncer["ignore_startup_parameters"]) == {"extra_float_digits", "options"}
    assert bouncer["open_files"] > bouncer["max_client_conn"] + bouncer["default_pool_size"]
    # Postgres: the pooler's server connections, the plugin daemon's own pool and the reserve.
    assert plan["fleet"]["postgres_max_connections"] == connection_limit(60 + direct) == 110
    server = db["settings"]["postgres"]["server"]
    assert server["max_connections"] == 110 and server["timezone"] == "UTC"
    # One core, and memory for its clients.
    assert db["services"]["pgbouncer"]["cpu_quota"] and db["services"]["pgbouncer"]["cpus"] == 1.0
    assert db["services"]["pgbouncer"]["memory_mb"] >= 32 + bouncer["max_client_conn"] * 2 // 1024


@pytest.mark.parametrize("apps", [2, 10, 100, 400])
def test_max_connections_never_passes_the_bound_under_auto(apps):
    plan = split_fleet(apps)
    assert plan["fleet"]["postgres_max_connections"] <= POSTGRES_DIRECT_MAX_CONNECTIONS
    bouncer = plan["hosts"]["db"]["settings"]["pgbouncer"]
    assert bouncer["max_client_conn"] >= pools(plan) - pools(plan, ("plugin_daemon",))


def test_none_keeps_the_unbounded_direct_budget():
    plan = split_fleet(2, pooler="none")
    assert plan["fleet"]["postgres_pooler"] == "none"
    assert plan["fleet"]["postgres_pooler_reason"] == "dify_postgres_pooler is none"
    assert plan["fleet"]["postgres_max_connections"] == connection_limit(pools(plan)) == 890
    assert "pgbouncer" not in plan["hosts"]["db"]["services"]


def test_none_keeps_the_memory_refusal_that_auto_replaces_with_the_pooler():
    with pytest.raises(PlanError) as refused:
        split_fleet(10, pooler="none", db_vcpus=4, db_memory=8 * GIB)
    assert "service 'db_postgres' needs at least" in str(refused.value)
    assert "dify_postgres_pooler" in str(refused.value)
    plan = split_fleet(10, db_vcpus=4, db_memory=8 * GIB)
    assert plan["fleet"]["postgres_pooler"] == "pgbouncer"


def test_pgbouncer_forces_the_pooler_on_a_single_node():
    plan = plan_fleet([host("n", 4, 8 * GIB)], {"postgres_pooler": "pgbouncer"})
    node = plan["hosts"]["n"]
    bouncer = node["settings"]["pgbouncer"]
    assert plan["fleet"]["postgres_pooler"] == "pgbouncer" and plan["options"]["postgres_pooler"] == "pgbouncer"
    assert bouncer["pooled_clients"] == pools(plan, ("api", "worker", "worker_beat"))
    assert bouncer["default_pool_size"] == 20
    assert node["settings"]["postgres"]["server"]["max_connections"] == connection_limit(
        20 + node["settings"]["plugin_daemon"]["db_connections"])
    assert node["resources"]["allocated_mb"] <= node["resources"]["usable_mb"]
    # The same node under auto connects directly: its pools are far below the bound.
    assert plan_fleet([host("n", 4, 8 * GIB)])["fleet"]["postgres_pooler"] == "none"


def test_a_large_single_node_gets_the_pooler_under_auto():
    plan = plan_fleet([host("n", 64, 256 * GIB)])
    assert plan["fleet"]["postgres_pooler"] == "pgbouncer"
    assert plan["fleet"]["postgres_max_connections"] <= POSTGRES_DIRECT_MAX_CONNECTIONS


def test_pgbouncer_needs_the_open_files_of_its_clients():
    hosts = [host("gw", 2, 4 * GIB, ["gateway"], address="10.0.0.1"),
             host("db", 16, 64 * GIB, ["database", "redis", "vector_store"], address="10.0.0.2",
                  open_files_limit=1024)]
    hosts += [host("app%d" % i, 16, 64 * GIB, ["app"], address="10.0.1.%d" % (i + 1)) for i in range(3)]
    with pytest.raises(PlanError) as refused:
        plan_fleet(hosts, {"object_storage": STORAGE})
    assert "host 'db': PgBouncer needs" in str(refused.value) and "at most 1024" in str(refused.value)


@pytest.mark.parametrize("value", ["pgpool", "yes", 1, ["pgbouncer"]])
def test_an_unknown_pooler_is_refused_with_the_choices(value):
    with pytest.raises(PlanError) as refused:
        plan_fleet([host("n")], {"postgres_pooler": value})
    assert ("dify_postgres_pooler (an option of the group 'dify') must be one of auto, pgbouncer, none"
            in str(refused.value))


def test_the_direct_bound_is_the_documented_one():
    assert fleet.POSTGRES_DIRECT_MAX_CONNECTIONS == 500
    assert fleet.PORTS["pgbouncer"] == 6432

# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PgBouncer in the Compose projects: where it runs, what Dify's processes connect to, the
firewall, secrets and the checks against its image's contract and the Compose Specification."""

from __future__ import annotations

import json
import pathlib

from ansible_collections.difyops.dify.plugins.filter.compose import compose_project, compose_schema_errors
from ansible_collections.difyops.dify.plugins.plugin_utils.sizing.fleet import plan_fleet
from ansible_collections.difyops.dify.plugins.plugin_utils.stack import compose

REPO = pathlib.Path(__file__).resolve().parents[5]
SCHEMA = json.loads((REPO / "roles" / "dify_stack" / "files" / "compose-spec.json").read_text(encoding="utf-8"))
ALL = ["gateway", "app", "database", "redis", "vector_store"]
S3 = {"object_storage": {"endpoint": "https://s3.example", "bucket": "dify"}}


def single(pooler="pgbouncer"):
    return plan_fleet([{"name": "one", "vcpus": 4, "memory_mb": 16000, "components": ALL, "address": "192.0.2.10"}],
                      {"postgres_pooler": pooler})


def split(pooler="pgbouncer", data_address="10.0.0.4"):
    return plan_fleet([
        {"name": "gw", "vcpus": 2, "memory_mb": 4000, "components": ["gateway"], "address": "10.0.0.1"},
        {"name": "app1", "vcpus": 8, "memory_mb": 32000, "components": ["app"], "address": "10.0.0.2"},
        {"name": "app2", "vcpus": 8, "memory_mb": 32000, "components": ["app"], "address": "10.0.0.3"},
        {"name": "data", "vcpus": 8, "memory_mb": 32000, "components": ["database", "redis", "vector_store"],
         "address": data_address},
    ], {"object_storage": True, "vector_store": "pgvector", "postgres_pooler": pooler})


def test_single_node_puts_pgbouncer_between_dify_and_db_postgres():
    plan = single()
    bundle = compose_project(plan, "one")
    services = bundle["compose"]["services"]
    bouncer = services["pgbouncer"]
    settings = plan["hosts"]["one"]["settings"]["pgbouncer"]
    assert bundle["unknown_env"] == [] and compose_schema_errors(bundle["compose"], SCHEMA) == []
    assert bouncer["image"] == compose.PGBOUNCER_IMAGE
    env = bouncer["environment"]
    assert env["DB_HOST"] == "db_postgres" and env["DB_PORT"] == "5432" and env["DB_NAME"] == "dify"
    assert env["DB_PASSWORD"] == compose.secret("DB_PASSWORD") and env["AUTH_TYPE"] == "scram-sha-256"
    assert env["POOL_MODE"] == "transaction" and env["LISTEN_PORT"] == "6432" and env["LISTEN_ADDR"] == "0.0.0.0"
    assert env["MAX_CLIENT_CONN"] == str(settings["max_client_conn"])
    assert env["DEFAULT_POOL_SIZE"] == env["MAX_DB_CONNECTIONS"] == str(settings["default_pool_size"])
    assert env["IGNORE_STARTUP_PARAMETERS"] == "extra_float_digits,options"
    assert bouncer["depends_on"] == {"db_postgres": {"condition": "service_healthy"}}
    assert "ports" not in bouncer and "network_mode" not in bouncer
    assert bouncer["ulimits"]["nofile"]["hard"] == settings["open_files"]
    assert bouncer["deploy"]["resources"]["limits"]["cpus"] == "1"
    assert "SELECT 1" in bouncer["healthcheck"]["test"][1] and "$$DB_PASSWORD" in bouncer["healthcheck"]["test"][1]
    for name in ("api", "worker", "worker_beat"):
        assert services[name]["environment"]["DB_HOST"] == "pgbouncer"
        assert services[name]["environment"]["DB_PORT"] == "6432"
        assert services[name]["depends_on"]["pgbouncer"] == {"condition": "service_healthy"}
    daemon = services["plugin_daemon"]["environment"]
    assert daemon["DB_HOST"] == "db_postgres" and daemon["DB_PORT"] == "5432"
    assert "pgbouncer" not in bundle["ports"] and bundle["ports"]["nginx"] == ["80:80"] and bundle["firewall"] == []


def test_split_fleet_runs_pgbouncer_on_the_database_hosts_network_for_the_app_hosts_only():
    plan = split()
    data = compose_project(plan, "data", S3)
    app1 = compose_project(plan, "app1", S3)
    bouncer = data["compose"]["services"]["pgbouncer"]
    assert data["unknown_env"] == [] and compose_schema_errors(data["compose"], SCHEMA) == []
    assert bouncer["network_mode"] == "host" and "ports" not in bouncer and "depends_on" not in bouncer
    assert bouncer["environment"]["DB_HOST"] == "127.0.0.1"
    assert bouncer["environment"]["LISTEN_ADDR"] == "127.0.0.1,10.0.0.4"
    assert "DB_PASSWORD" in data["secrets"]
    rules = {r["service"]: r for r in data["firewall"]}
    assert rules["pgbouncer"] == {"service": "pgbouncer", "port": 6432, "sources": ["10.0.0.2/31"]}
    api = app1["compose"]["services"]["api"]
    assert api["environment"]["DB_HOST"] == "10.0.0.4" and api["environment"]["DB_PORT"] == "6432"
    assert "pgbouncer" not in api.get("depends_on", {})
    daemon = app1["compose"]["services"]["plugin_daemon"]["environment"]
    assert daemon["DB_HOST"] == "10.0.0.4" and daemon["DB_PORT"] == "5432"


def test_an_ipv6_database_host_gets_its_address_bracketed_for_dify_and_bare_for_pgbouncer():
    plan = plan_fleet([
        {"name": "gw", "vcpus": 2, "memory_mb": 4000, "components": ["gateway"], "address": "2001:db8::1"},
        {"name": "app1", "vcpus": 8, "memory_mb": 32000, "components": ["app"], "address": "2001:db8::2"},
        {"name": "data", "vcpus": 8, "memory_mb": 32000, "components": ["database", "redis", "vector_store"],
         "address": "2001:db8::4"},
    ], {"postgres_pooler": "pgbouncer"})
    data = compose_project(plan, "data")
    app1 = compose_project(plan, "app1")
    assert data["compose"]["services"]["pgbouncer"]["environment"]["LISTEN_ADDR"] == "127.0.0.1,2001:db8::4"
    assert app1["compose"]["services"]["api"]["environment"]["DB_HOST"] == "[2001:db8::4]"


def test_without_the_pooler_nothing_changes():
    plan = split(pooler="none")
    data = compose_project(plan, "data", S3)
    app1 = compose_project(plan, "app1", S3)
    assert "pgbouncer" not in data["services"]
    assert "DB_PASSWORD" not in data["secrets"]
    assert app1["compose"]["services"]["api"]["environment"]["DB_PORT"] == "5432"
    assert {r["service"] for r in data["firewall"]} == {"redis", "pgvector"}


def test_pgbouncer_variables_are_checked_against_its_image():
    plan = single()
    project = compose.build_project(plan, "one", {"env_extra": {"pgbouncer": {"POOL_SIZE_TYPO": "3"}}})
    assert compose.unknown_env(project, "1.13.3") == ["pgbouncer: POOL_SIZE_TYPO"]


def test_the_pgbouncer_image_can_be_replaced():
    bundle = compose_project(single(), "one", {"images": {"pgbouncer": "registry.example/pgbouncer:1"}})
    assert bundle["compose"]["services"]["pgbouncer"]["image"] == "registry.example/pgbouncer:1"

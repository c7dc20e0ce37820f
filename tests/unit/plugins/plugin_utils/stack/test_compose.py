# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Compose projects built from real plans: placement, numbers, secrets, ports, firewall, and the
checks against the upstream reference and the Compose Specification."""

from __future__ import annotations

import csv
import json
import pathlib

import pytest

from ansible.errors import AnsibleFilterError
from ansible_collections.difyops.dify.plugins.filter.compose import compose_project, compose_schema_errors
from ansible_collections.difyops.dify.plugins.plugin_utils.sizing.fleet import plan_fleet
from ansible_collections.difyops.dify.plugins.plugin_utils.stack import compose, reference_1_13_3
from stack_plans import ALL, single, split

REPO = pathlib.Path(__file__).resolve().parents[5]
TABLES = REPO / "reference"
SCHEMA = json.loads((REPO / "roles" / "dify_stack" / "files" / "compose-spec.json").read_text(encoding="utf-8"))
# A GPU as difyops.dify.gpu_facts reports it: the stand-in for hardware this machine lacks.
L40S = {"index": 0, "name": "NVIDIA L40S", "memory_total_mib": 46068, "uuid": "GPU-0b1", "compute_capability": "8.9"}


def fleet(vector_store="weaviate"):
    return split(vector_store=vector_store, extra_hosts=[
        {"name": "gpu", "vcpus": 16, "memory_mb": 64000, "components": ["gpu_inference"], "address": "10.0.0.5",
         "gpus": [L40S]}])


S3 = {"object_storage": {"endpoint": "https://s3.example", "bucket": "dify"}}


@pytest.mark.parametrize("store", ["weaviate", "qdrant", "pgvector"])
def test_single_node_runs_everything_and_publishes_only_nginx_beyond_the_loopback(store):
    plan = single(vector_store=store)
    bundle = compose_project(plan, "one")
    assert set(bundle["services"]) == set(plan["hosts"]["one"]["services"])
    # PostgreSQL and Redis only on 127.0.0.1, for the host's exporters (roles/monitoring).
    assert bundle["ports"] == {"nginx": ["80:80"], "db_postgres": ["127.0.0.1:5432:5432"], "redis": ["127.0.0.1:6379:6379"]}
    assert bundle["firewall"] == []
    assert bundle["unknown_env"] == []
    assert compose_schema_errors(bundle["compose"], SCHEMA) == []
    api = bundle["compose"]["services"]["api"]["environment"]
    assert api["DB_HOST"] == "db_postgres" and api["MIGRATION_ENABLED"] == "true"


def test_limits_and_swap_come_from_the_plan():
    plan = single()
    services = compose_project(plan, "one")["compose"]["services"]
    for name, spec in services.items():
        planned = plan["hosts"]["one"]["services"][name]
        limits = spec["deploy"]["resources"]["limits"]
        quota = {"cpus": "%g" % planned["cpus"]} if planned["cpu_quota"] else {}
        assert limits == dict(quota, memory="%dM" % planned["memory_mb"])
        assert spec["cpu_shares"] == planned["cpu_shares"]
        # Compose's CPU reservations do nothing outside Swarm: none is written.
        assert "cpus" not in spec["deploy"]["resources"]["reservations"]
        assert spec["deploy"].get("replicas", 1) == planned["replicas"]
        # Postgres's /dev/shm is its memory limit, not Docker's 64 MB.
        assert spec.get("shm_size") == ("%dM" % planned["memory_mb"] if name in ("db_postgres", "pgvector") else None)
        if name in ("db_postgres", "redis", "weaviate"):
            assert spec["memswap_limit"] == "%dM" % planned["memory_mb"]
        else:
            assert "memswap_limit" not in spec
    total = sum(int(s["deploy"]["resources"]["limits"]["memory"][:-1]) * s["deploy"].get("replicas", 1)
                for s in services.values())
    assert total <= plan["hosts"]["one"]["resources"]["usable_mb"]
    worker = services["worker"]["environment"]
    assert worker["CELERY_WORKER_AMOUNT"] == str(plan["hosts"]["one"]["settings"]["worker"]["celery_worker_amount"])
    # Dify's entrypoint runs "-P ${CELERY_WORKER_CLASS:-gevent}": the plan's model is said, not assumed.
    assert worker["CELERY_WORKER_CLASS"] == "gevent"
    assert services["api"]["environment"]["SERVER_WORKER_CLASS"] == "gevent"
    for name in ("nginx", "api", "web", "sandbox", "plugin_daemon", "db_postgres"):
        if name in services:
            assert "cpus" not in services[name]["deploy"]["resources"]["limits"], name
    assert "--maxmemory %dmb" % plan["hosts"]["one"]["settings"]["redis"]["maxmemory_mb"] in services["redis"]["command"][2]
    assert "REDIS_PASSWORD" not in services["redis"]["command"][2]


def test_split_fleet_places_services_and_publishes_on_private_addresses():
    plan = fleet()
    gw, app1, app2, data = (compose_project(plan, h, S3) for h in ("gw", "app1", "app2", "data"))
    assert gw["services"] == []
    assert "worker_beat" in app1["services"] and "worker_beat" not in app2["services"]
    assert app1["compose"]["services"]["api"]["environment"]["MIGRATION_ENABLED"] == "true"
    assert app2["compose"]["services"]["api"]["environment"]["MIGRATION_ENABLED"] == "false"
    assert data["services"] == ["redis", "weaviate"]  # PostgreSQL runs on the host
    assert app2["ports"]["api"] == ["10.0.0.3:5001:5001"]
    assert data["ports"]["redis"] == ["10.0.0.4:6379:6379"]
    env = app2["compose"]["services"]["api"]["environment"]
    assert env["DB_HOST"] == "10.0.0.4" and env["REDIS_HOST"] == "10.0.0.4"
    assert env["STORAGE_TYPE"] == "s3" and env["S3_SECRET_KEY"].startswith("${S3_SECRET_KEY:?")
    assert {r["service"]: r["sources"] for r in data["firewall"]}["redis"] == ["10.0.0.2/31"]
    assert {r["service"]: r["sources"] for r in app1["firewall"]}["api"] == ["10.0.0.1/32"]
    for bundle in (app1, app2, data):
        assert bundle["unknown_env"] == []
        assert compose_schema_errors(bundle["compose"], SCHEMA) == []


def test_gpu_host_gets_inference_on_its_gpus_and_reports_the_endpoint():
    bundle = compose_project(fleet(), "gpu")
    spec = bundle["compose"]["services"]["inference"]
    devices = spec["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "device_ids": ["GPU-0b1"], "capabilities": ["gpu"]}]
    assert bundle["inference"]["endpoint"] == "http://10.0.0.5:8000/v1"
    assert compose_schema_errors(bundle["compose"], SCHEMA) == []


def test_secrets_are_references_only():
    bundle = compose_project(fleet(), "app1", S3)
    values = []
    for spec in bundle["compose"]["services"].values():
        values += list(spec.get("environment", {}).values()) + list(spec.get("command", []))
    for value in values:
        assert value not in reference_1_13_3.DEFAULT_SECRETS
        assert not any(secret in value for secret in reference_1_13_3.DEFAULT_SECRETS if len(secret) >= 12)
    assert set(bundle["secrets"]) <= set(compose.SECRET_VARIABLES)
    assert "S3_ACCESS_KEY" in bundle["secrets"]


def test_unknown_variables_and_schema_errors_are_reported():
    plan = single()
    bundle = compose_project(plan, "one", {"env_extra": {"api": {"NOT_A_DIFY_SETTING": 1}}})
    assert bundle["unknown_env"] == ["api: NOT_A_DIFY_SETTING"]
    broken = dict(bundle["compose"], services={"api": {"image": "x", "deploy": {"resources": {"limits": {"memory": []}}}}})
    assert compose_schema_errors(broken, SCHEMA)


def test_an_unsupported_version_is_named():
    from ansible.errors import AnsibleFilterError
    with pytest.raises(AnsibleFilterError, match="supported: 1.13.3"):
        compose_project(single(), "one", {"version": "0.15.0"})


def test_reference_module_matches_the_upstream_tables():
    with (TABLES / "dify-1.13.3" / "env-defaults.tsv").open(encoding="utf-8", newline="") as handle:
        names = {row[0] for row in csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE) if row and row[0]}
    assert names == set(reference_1_13_3.ENV_NAMES)


def test_ipv6_fleet_brackets_every_address_joined_with_a_port():
    plan = plan_fleet([
        {"name": "gw", "vcpus": 2, "memory_mb": 4000, "components": ["gateway"], "address": "2001:db8::1"},
        {"name": "app", "vcpus": 8, "memory_mb": 32000, "components": ["app"], "address": "2001:db8::2"},
        {"name": "data", "vcpus": 8, "memory_mb": 32000, "components": ["database", "redis", "vector_store"],
         "address": "2001:db8::4"},
    ], {"vector_store": "weaviate"})
    app = compose_project(plan, "app", S3)["compose"]["services"]
    env = app["api"]["environment"]
    assert env["DB_HOST"] == "[2001:db8::4]"
    assert env["CELERY_BROKER_URL"].endswith("@[2001:db8::4]:6379/1")
    assert env["WEAVIATE_ENDPOINT"] == "http://[2001:db8::4]:8080"
    assert env["PLUGIN_DAEMON_URL"] == "http://[2001:db8::2]:5002"
    assert app["api"]["ports"] == ["[2001:db8::2]:5001:5001"]
    data = compose_project(plan, "data", S3)["compose"]["services"]
    assert data["redis"]["ports"] == ["[2001:db8::4]:6379:6379"]
    assert plan["fleet"]["gateway_upstreams"]["api"] == ["[2001:db8::2]:5001"]


@pytest.mark.parametrize("given, style", [(True, "path"), ("yes", "path"), (False, "virtual"), ("false", "virtual"),
                                          ("off", "virtual")])
def test_path_style_is_read_as_ansible_reads_booleans(given, style):
    storage = {"object_storage": {"endpoint": "https://s3.example", "bucket": "dify", "path_style": given}}
    services = compose_project(fleet(), "app1", storage)["compose"]["services"]
    assert services["api"]["environment"]["S3_ADDRESS_STYLE"] == style
    assert services["plugin_daemon"]["environment"]["S3_USE_PATH_STYLE"] == ("true" if style == "path" else "false")


@pytest.mark.parametrize("service, name, knob", [
    ("api", "SECRET_KEY", "a secret: difyops.dify.dify_secrets generates it"),
    ("api", "MIGRATION_ENABLED", "fleet.migration_host"),
    ("worker", "MIGRATION_ENABLED", "fleet.migration_host"),
    ("api", "DB_HOST", "the inventory's components"),
    ("api", "SERVER_WORKER_AMOUNT", "dify_sizing_overrides"),
    ("worker", "CELERY_WORKER_AMOUNT", "dify_sizing_overrides"),
    ("api", "FILES_URL", "dify_stack_public_url"),
    ("api", "STORAGE_TYPE", "dify_stack_object_storage"),
    ("api", "VECTOR_STORE", "dify_vector_store"),
    ("sandbox", "API_KEY", "a secret"),
    ("web", "REDIS_PASSWORD", "a secret"),  # a secret is refused on any service, even one that has none
])
def test_env_extra_may_not_override_what_the_collection_manages(service, name, knob):
    with pytest.raises(AnsibleFilterError, match=r"host one: dify_stack_env_extra sets what the collection manages: "
                                                 r"%s\.%s \(.*%s" % (service, name, knob)):
        compose_project(single(), "one", {"env_extra": {service: {name: "x"}}})


def test_every_variable_the_builder_writes_is_managed():
    for plan, host, options in ((single(), "one", {}), (fleet(), "app1", S3), (fleet(), "data", {}), (fleet(), "gpu", {})):
        services = compose.build_project(plan, host, options)["services"]
        for service, spec in services.items():
            for name in spec.get("environment", {}):
                if name not in compose.OPERATOR_DEFAULTS:
                    assert compose.managed_env_problems(services, {service: {name: "x"}}), (host, service, name)


def test_env_extra_keeps_the_operators_defaults_and_unmanaged_settings():
    bundle = compose_project(single(), "one", {"env_extra": {"api": {"LOG_LEVEL": "DEBUG", "HTTP_REQUEST_NODE_MAX_TEXT_SIZE": 2048}}})
    api = bundle["compose"]["services"]["api"]["environment"]
    assert api["LOG_LEVEL"] == "DEBUG" and api["HTTP_REQUEST_NODE_MAX_TEXT_SIZE"] == "2048"
    assert bundle["unknown_env"] == []


def test_single_node_model_server_is_reached_by_name_and_the_plan_says_so():
    gpu = dict(L40S, memory_total_mib=24564, name="NVIDIA GeForce RTX 4090")
    plan = plan_fleet([{"name": "one", "vcpus": 8, "memory_mb": 32000, "components": ALL + ["gpu_inference"],
                        "address": "192.0.2.10", "gpus": [gpu]}])
    bundle = compose_project(plan, "one")
    engine = plan["hosts"]["one"]["settings"]["inference"]["engine"]
    expected = "http://inference:%d/v1" % {"vllm": 8000, "ollama": 11434}[engine]
    assert bundle["inference"]["endpoint"] == expected
    # The fleet's list (plan.json, reports) names the same endpoint, not the host's address.
    assert plan["fleet"]["inference_endpoints"] == [expected]
    assert "ports" not in bundle["compose"]["services"]["inference"]

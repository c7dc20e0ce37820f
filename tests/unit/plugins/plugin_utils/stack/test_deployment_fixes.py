# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a real Dify deployment needs from the rendered stack (issue 17): the sandbox's interpreter,
public URLs instead of the api image's 127.0.0.1 defaults, the inference server launching what the
plan counted, S3 path style for Dify itself, and an SSRF proxy that admits the inference hosts."""

from __future__ import annotations

import json
import pathlib

import jinja2
import pytest
import yaml

from ansible.errors import AnsibleFilterError
from ansible_collections.difyops.dify.plugins.filter.compose import compose_project, compose_schema_errors
from ansible_collections.difyops.dify.plugins.plugin_utils.sizing.fleet import plan_fleet
from ansible_collections.difyops.dify.plugins.plugin_utils.sizing.gpu import MODEL_TIERS, QUANTIZATIONS, plan_inference, weights_source
from ansible_collections.difyops.dify.plugins.plugin_utils.stack import compose

REPO = pathlib.Path(__file__).resolve().parents[5]
TEMPLATES = REPO / "roles" / "dify_stack" / "templates"
SCHEMA = json.loads((REPO / "roles" / "dify_stack" / "files" / "compose-spec.json").read_text(encoding="utf-8"))
ALL = ["gateway", "app", "database", "redis", "vector_store"]
URL_VARIABLES = ("CONSOLE_API_URL", "CONSOLE_WEB_URL", "SERVICE_API_URL", "APP_WEB_URL", "FILES_URL", "TRIGGER_URL")
# GPUs as difyops.dify.gpu_facts reports them: stand-ins for hardware this machine lacks.
L4 = {"index": 0, "name": "NVIDIA L4", "memory_total_mib": 23034, "uuid": "GPU-l4", "compute_capability": "8.9"}
T4 = {"index": 0, "name": "Tesla T4", "memory_total_mib": 15360, "uuid": "GPU-t4", "compute_capability": "7.5"}
H100 = {"index": 0, "name": "NVIDIA H100 80GB HBM3", "memory_total_mib": 81559, "uuid": "GPU-h1", "compute_capability": "9.0"}
RTX = {"index": 0, "name": "NVIDIA GeForce RTX 4090", "memory_total_mib": 24564, "uuid": "GPU-rtx", "compute_capability": "8.9"}
S3 = {"endpoint": "https://s3.example", "bucket": "dify", "path_style": True}


def single(address="192.0.2.10"):
    return plan_fleet([{"name": "one", "vcpus": 4, "memory_mb": 16000, "components": ALL, "address": address}], {})


def split(gpu=None):
    gpu = gpu or L4
    return plan_fleet([
        {"name": "gw", "vcpus": 2, "memory_mb": 4000, "components": ["gateway"], "address": "10.0.0.1"},
        {"name": "app1", "vcpus": 8, "memory_mb": 32000, "components": ["app"], "address": "10.0.0.2"},
        {"name": "app2", "vcpus": 8, "memory_mb": 32000, "components": ["app"], "address": "10.0.0.3"},
        {"name": "data", "vcpus": 8, "memory_mb": 32000, "components": ["database", "redis", "vector_store"], "address": "10.0.0.4"},
        {"name": "gpu", "vcpus": 16, "memory_mb": 64000, "components": ["gpu_inference"], "address": "10.0.0.5", "gpus": [gpu]},
    ], {"object_storage": True})


def render(name, bundle):
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), undefined=jinja2.StrictUndefined)
    return env.get_template(name).render(ansible_managed="managed", _dify_stack_bundle=bundle)


def test_sandbox_runs_code_with_the_interpreter_of_its_image():
    config = yaml.safe_load(render("sandbox-config.yaml.j2", compose_project(single(), "one")))
    # dify-sandbox 0.2.14's own conf/config.yaml; /usr/local/bin/python3 does not exist in its image.
    assert config["python_path"] == "/opt/python/bin/python3"
    assert config["enable_network"] is True and config["app"]["port"] == compose.SANDBOX_PORT


@pytest.mark.parametrize("service", ["api", "worker", "worker_beat"])
def test_links_come_from_the_gateway_address_not_the_images_loopback_defaults(service):
    env = compose_project(single(), "one")["compose"]["services"][service]["environment"]
    for name in URL_VARIABLES:
        assert env[name] == "http://192.0.2.10", name
    assert env["ENDPOINT_URL_TEMPLATE"] == "http://192.0.2.10/e/{hook_id}"
    assert env["INTERNAL_FILES_URL"] == "http://api:5001"


def test_every_app_host_of_a_split_fleet_links_to_the_gateway():
    plan = split()
    for host in ("app1", "app2"):
        bundle = compose_project(plan, host, {"object_storage": S3, "gateway_port": 8080})
        assert bundle["public_url"] == "http://10.0.0.1:8080"
        assert bundle["compose"]["services"]["api"]["environment"]["FILES_URL"] == "http://10.0.0.1:8080"


def test_the_operators_public_url_wins_and_loses_its_trailing_slash():
    bundle = compose_project(single(), "one", {"public_url": "https://dify.example.com/"})
    env = bundle["compose"]["services"]["api"]["environment"]
    assert env["CONSOLE_WEB_URL"] == "https://dify.example.com"
    assert env["ENDPOINT_URL_TEMPLATE"] == "https://dify.example.com/e/{hook_id}"
    assert bundle["unknown_env"] == []


@pytest.mark.parametrize("url, words", [
    ("http://127.0.0.1", "leads every browser"),
    ("http://localhost:8080", "leads every browser"),
    ("https://[::1]/", "leads every browser"),
    ("http://0.0.0.0", "leads every browser"),
    ("dify.example.com", "absolute http"),
    ("ftp://dify.example.com", "absolute http"),
    ("https://dify.example.com/?a=1", "without query"),
])
def test_a_public_url_that_cannot_work_is_refused_with_the_variable(url, words):
    with pytest.raises(AnsibleFilterError, match=r"host one: dify_stack_public_url .*%s" % words):
        compose_project(single(), "one", {"public_url": url})


def test_a_loopback_gateway_address_asks_for_the_public_url():
    with pytest.raises(AnsibleFilterError, match="set dify_stack_public_url"):
        compose_project(single(address="127.0.0.1"), "one")


def test_dify_itself_uses_path_style_s3_and_the_check_knows_the_setting():
    bundle = compose_project(split(), "app1", {"object_storage": S3})
    env = bundle["compose"]["services"]["api"]["environment"]
    assert env["S3_ADDRESS_STYLE"] == "path"
    assert bundle["unknown_env"] == []
    virtual = compose_project(split(), "app1", {"object_storage": dict(S3, path_style=False)})
    assert virtual["compose"]["services"]["worker"]["environment"]["S3_ADDRESS_STYLE"] == "virtual"


def vllm_command(gpu):
    bundle = compose_project(split(gpu), "gpu")
    assert compose_schema_errors(bundle["compose"], SCHEMA) == []
    return bundle, bundle["compose"]["services"]["inference"]


def flag(command, name):
    return command[command.index(name) + 1] if name in command else None


def test_a_quantized_plan_launches_the_quantized_checkpoint_not_the_bf16_weights():
    plan = plan_inference([T4], "x86_64")
    assert plan["quantization"] == "awq-int4"
    bundle, spec = vllm_command(T4)
    command = spec["command"]
    assert flag(command, "--model") == "Qwen/Qwen2.5-14B-Instruct-AWQ"
    assert flag(command, "--served-model-name") == "qwen2.5-14b-instruct"
    assert flag(command, "--quantization") == "awq"  # Turing: no awq_marlin kernels
    assert flag(command, "--kv-cache-dtype") == "fp8"  # the plan counted 1 byte per KV element
    assert bundle["inference"]["weights"] == "Qwen/Qwen2.5-14B-Instruct-AWQ"


def test_an_fp8_plan_loads_an_fp8_checkpoint():
    spec = vllm_command(L4)[1]
    command = spec["command"]
    assert flag(command, "--model") == "RedHatAI/Qwen2.5-14B-Instruct-FP8-dynamic"
    assert flag(command, "--quantization") == "compressed-tensors"
    assert flag(command, "--kv-cache-dtype") == "fp8"


def test_the_endpoint_needs_the_deployments_key_and_a_gated_model_the_token():
    bundle, spec = vllm_command(H100)
    assert spec["environment"]["VLLM_API_KEY"] == compose.secret("INFERENCE_API_KEY")
    assert "--api-key" not in spec["command"]  # a key in the command would show in docker inspect and logs
    assert "INFERENCE_API_KEY" in bundle["secrets"]
    if plan_inference([H100], "x86_64")["gated"]:
        assert spec["environment"]["HF_TOKEN"] == compose.secret("HF_TOKEN") and "HF_TOKEN" in bundle["secrets"]
    bf16 = compose_project(split(dict(H100, memory_total_mib=200000)), "gpu")
    assert "--quantization" not in bf16["compose"]["services"]["inference"]["command"]


def single_gpu(gpu):
    return plan_fleet([{"name": "one", "vcpus": 16, "memory_mb": 64000, "components": ALL + ["gpu_inference"],
                        "address": "192.0.2.10", "gpus": [gpu]}], {})


def test_ollama_gets_the_planned_tag_context_and_parallelism_and_is_healthy_once_loaded():
    plan = plan_inference([RTX], "x86_64")
    bundle = compose_project(single_gpu(RTX), "one")
    spec = bundle["compose"]["services"]["inference"]
    env = spec["environment"]
    assert env["DIFYOPS_MODEL"] == "qwen2.5:14b-instruct-q8_0" == plan["weights"]
    assert env["OLLAMA_CONTEXT_LENGTH"] == str(plan["context_tokens"])
    assert env["OLLAMA_NUM_PARALLEL"] == str(plan["concurrent_sequences"])
    assert 'ollama pull "$$DIFYOPS_MODEL"' in spec["command"][0]
    assert "DIFYOPS_MODEL" in spec["healthcheck"]["test"][1]
    assert compose_schema_errors(bundle["compose"], SCHEMA) == []


def test_every_tier_and_quantization_names_real_weights():
    for tier in MODEL_TIERS:
        for engine, quants in QUANTIZATIONS.items():
            for quant in (entry[0] for entry in quants):
                found = weights_source(tier, engine, quant, 9.0)
                if found is None:
                    assert engine == "vllm" and quant != "bf16"
                    continue
                assert found["weights"] and " " not in found["weights"]
                if engine == "vllm" and quant != "bf16":
                    assert found["weights"] != tier.repo and not found["gated"]


def test_the_ssrf_proxy_admits_the_inference_hosts_and_the_named_networks_only():
    bundle = compose_project(split(), "app1", {"object_storage": S3, "ssrf_allowed_networks": ["192.168.50.0/24"]})
    assert bundle["ssrf_allowed_private"] == ["10.0.0.5/32", "192.168.50.0/24"]
    conf = render("squid.conf.j2", bundle)
    lines = conf.splitlines()
    allow = lines.index("http_access allow allowed_private_dst localnet")
    assert "acl allowed_private_dst dst 10.0.0.5/32 192.168.50.0/24" in lines
    assert allow < lines.index("http_access deny private_dst")
    for kept in ("client_request_buffer_max_size 100 MB", "connect_timeout 30 seconds", "read_timeout 2 minutes"):
        assert kept in lines
    # Forward-proxied requests never go to the sandbox peer (upstream's langgenius/dify#25801).
    assert lines.index("cache_peer_access sandbox allow sandbox_port") < lines.index("cache_peer_access sandbox deny all")
    bare = render("squid.conf.j2", compose_project(single(), "one"))
    assert "allowed_private_dst" not in bare and "http_access deny private_dst" in bare.splitlines()


def test_the_plugin_daemon_gets_the_settings_it_refuses_to_start_without():
    bundle = compose_project(single(), "one")
    env = bundle["compose"]["services"]["plugin_daemon"]["environment"]
    for name in ("SERVER_KEY", "DIFY_INNER_API_URL", "DIFY_INNER_API_KEY", "DB_USERNAME", "DB_PASSWORD", "DB_HOST",
                 "DB_PORT", "DB_DATABASE", "REDIS_HOST", "REDIS_PORT", "PLUGIN_WORKING_PATH",
                 "PLUGIN_REMOTE_INSTALLING_HOST", "PLUGIN_REMOTE_INSTALLING_PORT"):
        assert env.get(name), name
    assert "5003" not in str(bundle["ports"])


@pytest.mark.parametrize("limit, soft, hard", [(None, 65536, 1048576), ("20000", 20000, 20000), (131072, 65536, 131072)])
def test_containers_never_get_more_open_files_than_the_host_grants(limit, soft, hard):
    # Above the engine's own hard limit, every container start fails with "error setting rlimit
    # type 7: operation not permitted" (a podman host on this machine grants 20000).
    plan = plan_fleet([{"name": "one", "vcpus": 4, "memory_mb": 16000, "components": ALL, "address": "192.0.2.10",
                        "open_files_limit": limit}], {})
    docker = plan["hosts"]["one"]["host_tuning"]["docker"]
    assert (docker["nofile_soft"], docker["nofile_hard"]) == (soft, hard)


def test_an_unusable_open_files_limit_is_refused_with_the_host():
    from ansible_collections.difyops.dify.plugins.plugin_utils.sizing.errors import PlanError
    with pytest.raises(PlanError, match="host 'one': dify_open_files_limit must be an integer"):
        plan_fleet([{"name": "one", "vcpus": 4, "memory_mb": 16000, "components": ALL, "open_files_limit": "lots"}], {})


def test_db_postgres_keeps_the_access_rules_initdb_wrote_beside_its_data():
    # config_file=/etc/postgresql/... moves the default hba_file there, where the image has none:
    # PostgreSQL then refuses to start ("could not load pg_hba.conf").
    spec = compose_project(single(), "one")["compose"]["services"]["db_postgres"]
    command, pgdata = spec["command"], spec["environment"]["PGDATA"]
    assert "config_file=/etc/postgresql/postgresql.conf" in command
    assert "hba_file=%s/pg_hba.conf" % pgdata in command and "ident_file=%s/pg_ident.conf" % pgdata in command


def test_a_split_fleet_has_one_plugin_daemon_that_every_app_host_and_the_gateway_call():
    # Daemons on several hosts forward plugin calls to each other's container addresses, which
    # other hosts cannot route; every caller goes to the migration host's daemon instead.
    plan = split()
    assert plan["fleet"]["plugin_daemon_host"] == "app1"
    assert plan["fleet"]["gateway_upstreams"]["plugin_daemon"] == ["10.0.0.2:5002"]
    assert plan["fleet"]["gateway_upstreams"]["api"] == ["10.0.0.2:5001", "10.0.0.3:5001"]
    app1, app2 = (compose_project(plan, h, {"object_storage": S3}) for h in ("app1", "app2"))
    assert "plugin_daemon" in app1["services"] and "plugin_daemon" not in app2["services"]
    assert app1["compose"]["services"]["api"]["environment"]["PLUGIN_DAEMON_URL"] == "http://10.0.0.2:5002"
    assert app2["compose"]["services"]["worker"]["environment"]["PLUGIN_DAEMON_URL"] == "http://10.0.0.2:5002"
    rules = {r["service"]: r["sources"] for r in app1["firewall"]}
    assert rules["plugin_daemon"] == ["10.0.0.1/32", "10.0.0.3/32"]
    assert compose_project(single(), "one")["compose"]["services"]["api"]["environment"]["PLUGIN_DAEMON_URL"] == \
        "http://plugin_daemon:5002"


def test_the_plugin_daemon_opens_no_more_connections_than_the_plan_counts():
    plan = single()
    bundle = compose_project(plan, "one")
    env = bundle["compose"]["services"]["plugin_daemon"]["environment"]
    assert env["DB_MAX_OPEN_CONNS"] == str(plan["hosts"]["one"]["settings"]["plugin_daemon"]["db_connections"])
    assert bundle["unknown_env"] == []


@pytest.mark.parametrize("gpu, engine, port", [(L4, "vllm", 8000), (RTX, "ollama", 11434)])
def test_a_single_nodes_model_server_is_published_nowhere_and_reached_by_its_service_name(gpu, engine, port):
    bundle = compose_project(single_gpu(gpu), "one")
    spec = bundle["compose"]["services"]["inference"]
    assert bundle["inference"]["engine"] == engine
    assert "ports" not in spec and "inference" not in bundle["ports"]
    assert bundle["inference"]["endpoint"] == "http://inference:%d/v1" % port
    assert bundle["ssrf_allowed_private"] == []  # nothing of it listens on the host's address
    assert compose_schema_errors(bundle["compose"], SCHEMA) == []


def test_a_split_fleets_model_server_is_published_with_its_key_and_behind_the_firewall():
    plan = split(L4)
    bundle = compose_project(plan, "gpu")
    spec = bundle["compose"]["services"]["inference"]
    assert spec["ports"] == ["10.0.0.5:8000:8000"]
    assert spec["environment"]["VLLM_API_KEY"] == compose.secret("INFERENCE_API_KEY")
    assert bundle["inference"]["api_key"] == "INFERENCE_API_KEY"
    rules = [rule for rule in bundle["firewall"] if rule["service"] == "inference"]
    assert rules == [{"service": "inference", "port": 8000, "sources": plan["fleet"]["data_access"]["gpu_inference"]}]
    assert rules[0]["sources"]


def test_ollama_on_a_split_fleet_is_refused_for_want_of_a_key():
    with pytest.raises(AnsibleFilterError, match="host gpu: the plan serves gpu's model with ollama, which has no API key"):
        compose_project(split(RTX), "gpu")

"""Worked examples from the documentation (docs/sizing.md), computed by the engine."""

from __future__ import annotations

from ansible_collections.difyops.dify.plugins.plugin_utils.sizing.catalog import DIFY_UPLOAD_LIMITS_MB
from ansible_collections.difyops.dify.plugins.plugin_utils.sizing.fleet import plan_fleet

from sizing_helpers import host, pg_kb

RTX_4090 = {"index": 0, "uuid": "GPU-4090", "name": "NVIDIA GeForce RTX 4090", "memory_total_mib": 24564,
            "compute_capability": "8.9", "mig_mode": False}
H100 = {"name": "NVIDIA H100 80GB HBM3", "memory_total_mib": 81559, "compute_capability": "9.0", "mig_mode": False}


def _sum_limits(plan):
    return sum(s["memory_mb"] * s["replicas"] for s in plan["services"].values())


def test_poc_2_vcpu_8_gib_cpu_only():
    plan = plan_fleet([host(vcpus=2, memory_mb=7940)])
    h = plan["hosts"]["h1"]
    assert h["profile"] == "small"
    assert plan["fleet"]["vector_store"] == "pgvector"
    assert set(h["services"]) == {"nginx", "api", "worker", "worker_beat", "web", "sandbox", "plugin_daemon",
                                  "ssrf_proxy", "db_postgres", "redis", "pgvector"}
    assert _sum_limits(h) <= h["resources"]["usable_mb"]
    assert h["settings"]["api"]["server_worker_amount"] == 1
    assert "inference" not in h["services"]
    assert plan["fleet"]["gateway_endpoints"] == {}  # the gateway is on the host: nothing to take out


def test_4_vcpu_8_gib_whole_stack_fits():
    plan = plan_fleet([host(vcpus=4, memory_mb=7940)])
    h = plan["hosts"]["h1"]
    assert _sum_limits(h) <= h["resources"]["usable_mb"]
    for service in h["services"].values():
        assert service["memory_reserved_mb"] <= service["memory_mb"]
    # The small profile runs one gevent worker process with eight greenlets, each with a pooled
    # connection, and two api processes (one per two of the 3.5 CPUs left) of 20 greenlets.
    worker = h["settings"]["worker"]
    assert (worker["processes"], worker["celery_worker_amount"], worker["celery_worker_class"]) == (1, 8, "gevent")
    assert (h["settings"]["api"]["server_worker_amount"], h["settings"]["api"]["server_worker_connections"]) == (2, 20)
    assert worker["sqlalchemy_pool_size"] + worker["sqlalchemy_max_overflow"] >= 8
    assert h["settings"]["redis"]["maxmemory_policy"] == "volatile-lru"
    assert h["settings"]["nginx"]["client_max_body_size_mb"] >= max(DIFY_UPLOAD_LIMITS_MB.values())


def test_4_vcpu_16_gib_with_one_24_gb_consumer_gpu():
    components = ["gateway", "app", "database", "redis", "vector_store", "gpu_inference"]
    plan = plan_fleet([host(vcpus=4, memory_mb=15990, components=components, gpus=[RTX_4090])])
    h = plan["hosts"]["h1"]
    inference = h["settings"]["inference"]
    assert inference["enabled"]
    assert inference["engine"] == "ollama"
    assert inference["model"] == "qwen2.5-14b-instruct"
    assert inference["quantization"] == "q8_0"
    assert inference["vram_need_mib"] <= 0.9 * RTX_4090["memory_total_mib"]
    assert inference["gpu_indexes"] == [0]
    assert _sum_limits(h) <= h["resources"]["usable_mb"]


def test_raspberry_pi_5_arm64_8_gib():
    plan = plan_fleet([host(vcpus=4, memory_mb=8052, architecture="aarch64", disk_kind="ssd")])
    h = plan["hosts"]["h1"]
    assert h["architecture"] == "aarch64"
    assert h["profile"] == "small"
    assert plan["fleet"]["vector_store"] == "pgvector"
    assert h["host_tuning"]["swap"]["policy"] == "swapfile"
    assert _sum_limits(h) <= h["resources"]["usable_mb"]


def test_fleet_with_separate_data_two_apps_and_8x80gb_gpu_host():
    hosts = [
        host("gw", 2, 3900, ["gateway"], address="10.0.0.2"),
        host("app1", 8, 32000, ["app"], address="10.0.1.11"),
        host("app2", 8, 32000, ["app"], address="10.0.1.12"),
        host("db", 16, 64000, ["database", "redis"], address="10.0.2.21", disk_kind="nvme"),
        host("vec", 8, 32000, ["vector_store"], address="10.0.2.31"),
        host("gpu", 64, 1031000, ["gpu_inference"], address="10.0.3.41",
             gpus=[dict(H100, index=i, uuid="GPU-%d" % i) for i in range(8)]),
    ]
    plan = plan_fleet(hosts, {"object_storage": True})
    fleet = plan["fleet"]
    assert fleet["vector_store"] == "weaviate"
    assert fleet["worker_beat_host"] == "app1"
    assert "worker_beat" in plan["hosts"]["app1"]["services"]
    assert "worker_beat" not in plan["hosts"]["app2"]["services"]
    assert fleet["gateway_upstreams"]["api"] == ["10.0.1.11:5001", "10.0.1.12:5001"]
    # What an upgrade takes out of the gateways while each app host changes: its own endpoints only.
    assert fleet["gateway_endpoints"] == {"app1": ["10.0.1.11:5001", "10.0.1.11:3000", "10.0.1.11:5002"],
                                          "app2": ["10.0.1.12:5001", "10.0.1.12:3000"]}
    assert fleet["data_access"]["database"] == ["10.0.1.11/32", "10.0.1.12/32"]
    pools = sum(fleet["app_connections"].values())
    assert fleet["postgres_max_connections"] >= pools + 15
    pg = plan["hosts"]["db"]["settings"]["postgres"]["server"]
    assert pg["max_connections"] == fleet["postgres_max_connections"]
    assert pg["random_page_cost"] == 1.1 and pg["effective_io_concurrency"] == 1000
    assert pg["autovacuum_vacuum_cost_limit"] >= 2000
    assert pg_kb(pg["shared_buffers"]) > 1024 * 1024
    inference = plan["hosts"]["gpu"]["settings"]["inference"]
    assert inference["engine"] == "vllm"
    assert inference["tensor_parallel_size"] == 8
    assert inference["model"] == "llama-3.1-405b-instruct"
    assert inference["quantization"] == "fp8"
    assert fleet["inference_endpoints"] == ["http://10.0.3.41:8000/v1"]
    for name, h in plan["hosts"].items():
        assert _sum_limits(h) <= h["resources"]["usable_mb"], name

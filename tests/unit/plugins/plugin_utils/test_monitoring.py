# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Alert rules and scrape targets from the plan (issue 21), proven with Prometheus's own promtool:
``promtool check rules`` on the generated file, and ``promtool test rules`` cases generated from a
computed plan, each alert fed series just above its planned threshold (it fires, with its labels)
and just below (it does not). Thresholds here are read from the plan and the options, never typed."""

from __future__ import annotations

import math
import pathlib
import shutil
import subprocess
from typing import Any, Dict, List, Mapping

import pytest
import yaml

from ansible.errors import AnsibleFilterError
from ansible_collections.difyops.dify.plugins.filter.monitoring import FilterModule
from ansible_collections.difyops.dify.plugins.plugin_utils import monitoring
from ansible_collections.difyops.dify.plugins.plugin_utils.monitoring import (
    DEFAULTS, MIB, alert_rules, checked_options, redis_check_single_keys, scrape_targets)
from monitoring_plans import CUSTOM, L4, single, split

EVAL = 16  # minutes: past every default pending_for (5m) and window (10m at most)
POINTS = EVAL + 4
FILTERS = FilterModule().filters()


PLANS = {"single": single(), "split": split()}


def promtool() -> str:
    found = shutil.which("promtool")
    assert found, ("promtool is missing: install Debian's `prometheus` package (apt-get install --no-install-recommends "
                   "prometheus), which ships /usr/bin/promtool; .ci/run installs it")
    return found


def rules_of(doc: Mapping[str, Any]) -> List[Dict[str, Any]]:
    return [rule for group in doc["groups"] for rule in group["rules"]]


def find(doc: Mapping[str, Any], alert: str, host: str, service: str = "") -> Dict[str, Any]:
    found = [r for r in rules_of(doc) if r["alert"] == alert and r["labels"]["host"] == host
             and r["labels"].get("service", "") == (service or r["labels"].get("service", ""))]
    assert len(found) == 1, (alert, host, service, found)
    return found[0]


def runs_on_host(plan: Mapping[str, Any], service: str) -> bool:
    return not plan["fleet"]["single_node"] and service in ("nginx", "db_postgres")


# --- structure -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(PLANS))
@pytest.mark.parametrize("options", [{}, CUSTOM], ids=["defaults", "custom"])
def test_every_planned_service_has_its_memory_rule_with_the_plans_limit(name, options):
    plan = PLANS[name]
    doc = alert_rules(plan, options)
    ratio = checked_options(options)["memory_ratio"]
    for host, host_plan in plan["hosts"].items():
        for service, planned in host_plan["services"].items():
            rule = find(doc, "DifyServiceMemoryHigh", host, service)
            assert rule["expr"].endswith(">= %s * %d" % (ratio, planned["memory_mb"] * MIB)), rule["expr"]
            assert 'host="%s"' % host in rule["expr"]
            assert "%d MiB" % planned["memory_mb"] in rule["annotations"]["summary"]
            assert service in rule["annotations"]["summary"] and host in rule["annotations"]["summary"]
            if runs_on_host(plan, service):
                assert "id=~" in rule["expr"] and "compose" not in rule["expr"]
            else:
                assert 'container_label_com_docker_compose_service="%s"' % service in rule["expr"]
                assert find(doc, "DifyServiceOOMKilled", host, service)["labels"]["severity"] == "critical"


@pytest.mark.parametrize("options", [{}, CUSTOM], ids=["defaults", "custom"])
def test_data_thresholds_follow_the_plan_and_the_options(options):
    plan = PLANS["split"]
    opts = checked_options(options)
    doc = alert_rules(plan, options)
    data = plan["hosts"]["data"]["settings"]
    assert find(doc, "DifyPostgresConnectionsHigh", "data")["expr"].endswith(
        ">= %s * %d" % (opts["postgres_connections_ratio"], data["postgres"]["server"]["max_connections"]))
    assert find(doc, "DifyRedisMemoryHigh", "data")["expr"].endswith(
        ">= %s * %d" % (opts["redis_memory_ratio"], data["redis"]["maxmemory_mb"] * MIB))
    for host, host_plan in plan["hosts"].items():
        assert find(doc, "DifySliceMemoryHigh", host)["expr"].endswith(
            ">= %s * %d" % (opts["slice_memory_ratio"], host_plan["host_tuning"]["slice"]["memory_high_mb"] * MIB))
    assert find(doc, "DifyGpuMemoryHigh", "gpu")["expr"].endswith(">= %s" % opts["gpu_memory_ratio"])
    assert find(doc, "DifyApiErrorRate", "gw")["expr"].endswith(">= %s" % opts["api_error_ratio"])
    assert find(doc, "DifyApiLatencyP99", "gw")["expr"].endswith(">= %s" % opts["api_latency_seconds"])


def test_each_alert_sits_where_its_component_is():
    doc = alert_rules(PLANS["split"])
    where = {}
    for rule in rules_of(doc):
        where.setdefault(rule["alert"], set()).add(rule["labels"]["host"])
    every = set(PLANS["split"]["hosts"])
    assert where["DifyHostOOMKill"] == where["DifySliceMemoryHigh"] == every
    assert where["DifyPostgresConnectionsHigh"] == where["DifyRedisMemoryHigh"] == where["DifyCeleryBacklogGrowing"] == {"data"}
    assert where["DifyApiErrorRate"] == where["DifyApiLatencyP99"] == {"gw"}
    assert where["DifyGpuMemoryHigh"] == {"gpu"}
    for rule in rules_of(doc):
        assert {"severity", "host"} <= set(rule["labels"]), rule
        assert rule["labels"]["host"] in rule["annotations"]["summary"] and "fix:" in rule["annotations"]["summary"]


def test_the_celery_queues_are_those_redis_exporter_is_told_to_publish():
    rule = find(alert_rules(PLANS["split"]), "DifyCeleryBacklogGrowing", "data")
    keys = redis_check_single_keys()
    assert keys.split(",", maxsplit=1)[0] == "db1=api_token" and len(keys.split(",")) == len(DEFAULTS["celery_queues"])
    for queue in DEFAULTS["celery_queues"]:
        assert "db1=%s" % queue in keys.split(",") and queue in rule["expr"]
    assert redis_check_single_keys({"celery_queues": ["a", "b"], "celery_broker_db": 3}) == "db3=a,db3=b"


def test_another_compose_project_is_selected():
    rule = find(alert_rules(PLANS["single"], {"compose_project": "dify-prod"}), "DifyServiceMemoryHigh", "one", "api")
    assert 'container_label_com_docker_compose_project="dify-prod"' in rule["expr"]


def test_the_nvml_collector_comes_with_node_and_adds_its_own_alerts():
    doc = alert_rules(PLANS["split"])
    gpu_alerts = {r["alert"] for r in rules_of(doc) if r["labels"]["host"] == "gpu" and "Gpu" in r["alert"]}
    assert gpu_alerts == {"DifyGpuMemoryHigh", "DifyGpuNvmlDown", "DifyGpuXidError"}
    assert 'difyops_gpu_nvml_up{host="gpu"}' in find(doc, "DifyGpuNvmlDown", "gpu")["expr"]
    assert "increase(difyops_gpu_xid_errors_total{host=\"gpu\"}[5m])" in find(doc, "DifyGpuXidError", "gpu")["expr"]
    assert scrape_targets(PLANS["split"])["gpu"] == []


def test_dcgm_exporter_is_a_job_of_its_own_read_under_the_same_names():
    default, dcgm = alert_rules(PLANS["split"]), alert_rules(PLANS["split"], {"gpu_exporter": "dcgm"})
    assert find(dcgm, "DifyGpuMemoryHigh", "gpu")["expr"] == find(default, "DifyGpuMemoryHigh", "gpu")["expr"]
    assert "DCGM_FI_DEV_FB_USED" in find(dcgm, "DifyGpuMemoryHigh", "gpu")["expr"]
    assert not {"DifyGpuNvmlDown", "DifyGpuXidError"} & {r["alert"] for r in rules_of(dcgm)}
    assert scrape_targets(PLANS["split"], {"gpu_exporter": "dcgm"})["gpu"][0]["targets"] == ["10.0.0.5:9400"]


def test_scrape_targets_cover_every_exporter_where_its_component_runs():
    targets = scrape_targets(PLANS["split"])
    by_kind = {kind: {c["labels"]["host"]: c["targets"] for c in configs} for kind, configs in targets.items()}
    assert set(by_kind["node"]) == set(PLANS["split"]["hosts"]) and targets["cadvisor"] == []
    assert by_kind["postgres"] == {"data": ["10.0.0.4:9187"]} and by_kind["redis"] == {"data": ["10.0.0.4:9121"]}
    assert by_kind["nginx"] == {"gw": ["10.0.0.1:9113"]} and by_kind["gateway_log"] == {"gw": ["10.0.0.1:3903"]}
    assert targets["gpu"] == []  # the NVML collector's metrics come with node
    assert by_kind["node"]["app2"] == ["[2001:db8::3]:9100"]
    assert targets["node"][3]["labels"] == {"host": "data", "role": "database,redis,vector_store"}


def test_cadvisor_is_a_job_of_its_own_on_every_host_when_chosen():
    targets = scrape_targets(PLANS["split"], {"container_exporter": "cadvisor"})
    assert [c["labels"]["host"] for c in targets["cadvisor"]] == list(PLANS["split"]["hosts"])
    assert targets["cadvisor"][0]["targets"] == ["10.0.0.1:8080"]


def test_each_host_is_told_its_exporters_listening_on_its_planned_address():
    plan = PLANS["split"]
    data = monitoring.host_exporters(plan, "data")
    assert set(data) == {"node", "postgres", "redis"}
    assert data["postgres"] == {"port": 9187, "address": "10.0.0.4", "listen": "10.0.0.4:9187", "login": "peer",
                                "database": "dify", "queries": monitoring.postgres_queries(plan, "data")}
    assert data["redis"]["redis_url"] == "redis://10.0.0.4:6379" and data["redis"]["listen"] == "10.0.0.4:9121"
    assert data["redis"]["check_single_keys"] == redis_check_single_keys()
    assert data["node"] == {"port": 9100, "address": "10.0.0.4", "listen": "10.0.0.4:9100", "containers": "textfile",
                            "gpu_collector": False}
    gateway = monitoring.host_exporters(plan, "gw")
    assert set(gateway) == {"node", "nginx", "gateway_log"}
    assert gateway["nginx"] == {"port": 9113, "address": "10.0.0.1", "listen": "10.0.0.1:9113"}
    assert monitoring.host_exporters(plan, "app2")["node"]["listen"] == "[2001:db8::3]:9100"
    assert monitoring.host_exporters(plan, "app2")["node"]["address"] == "2001:db8::3"
    gpu = monitoring.host_exporters(plan, "gpu")
    assert set(gpu) == {"node"} and gpu["node"]["gpu_collector"] is True
    dcgm = monitoring.host_exporters(plan, "gpu", {"gpu_exporter": "dcgm"})
    assert dcgm["gpu"] == {"port": 9400, "address": "10.0.0.5", "listen": "10.0.0.5:9400", "exporter": "dcgm"}
    assert dcgm["node"]["gpu_collector"] is False
    assert set(monitoring.host_exporters(plan, "app1", {"container_exporter": "cadvisor"})) == {"node", "cadvisor"}


def test_a_host_the_plan_lacks_or_an_unknown_container_exporter_is_refused():
    with pytest.raises(ValueError, match="nowhere is not a host of the plan"):
        monitoring.host_exporters(PLANS["split"], "nowhere")
    with pytest.raises(ValueError, match="options.container_exporter must be one of textfile, cadvisor"):
        monitoring.host_exporters(PLANS["split"], "gw", {"container_exporter": "podman"})


def test_ports_are_options():
    targets = scrape_targets(PLANS["split"], {"ports": {"node": 9101, "redis": 19121}})
    assert targets["node"][3]["targets"] == ["10.0.0.4:9101"] and targets["redis"][0]["targets"] == ["10.0.0.4:19121"]
    assert targets["postgres"][0]["targets"] == ["10.0.0.4:9187"]


def test_a_single_node_is_scraped_for_its_host_containers_data_services_and_gateway_log():
    # Its PostgreSQL and Redis are published on the host's loopback, its nginx copies its access log
    # to the host; its stub_status answers inside the container only.
    targets = scrape_targets(PLANS["single"])
    assert targets["node"][0]["targets"] == ["192.0.2.10:9100"]
    assert targets["postgres"][0]["targets"] == ["192.0.2.10:9187"] and targets["redis"][0]["targets"] == ["192.0.2.10:9121"]
    assert targets["gateway_log"][0]["targets"] == ["192.0.2.10:3903"]
    assert all(targets[kind] == [] for kind in ("nginx", "gpu", "cadvisor"))
    exporters = monitoring.host_exporters(PLANS["single"], "one")
    assert set(exporters) == {"node", "postgres", "redis", "gateway_log"}
    assert exporters["gateway_log"]["log"] == "/var/log/dify-gateway/access.log"
    assert monitoring.host_exporters(PLANS["split"], "gw")["gateway_log"]["log"] == "/var/log/nginx/access.log"
    # The exporters read the stack's ports on 127.0.0.1 (stack/compose.py), not the host's address.
    assert exporters["postgres"] == {"port": 9187, "address": "192.0.2.10", "listen": "192.0.2.10:9187",
                                     "database": "dify", "queries": monitoring.postgres_queries(PLANS["single"], "one"),
                                     "login": "password", "db_host": "127.0.0.1", "db_port": 5432, "db_admin": "dify"}
    assert exporters["redis"]["redis_url"] == "redis://127.0.0.1:6379"
    assert monitoring.host_exporters(PLANS["split"], "data")["postgres"]["login"] == "peer"
    assert monitoring.host_port("[2001:db8::1]", 1) == "[2001:db8::1]:1" == monitoring.host_port("2001:db8::1", 1)
    assert monitoring.host_port("db.example", 5) == "db.example:5"


@pytest.mark.parametrize("plan, words", [
    ([], "the plan must be a mapping"),
    ({"fleet": {}}, "the plan has no 'hosts' section"),
    ({"hosts": {"a": {}}}, "the plan has no 'fleet' section"),
    ({"hosts": {}, "fleet": {}}, "the plan has no hosts"),
    ({"hosts": {"a": {"settings": {}, "host_tuning": {"slice": {}}, "components": []}}, "fleet": {}},
     "plan.hosts.a has no 'services' section"),
    ({"hosts": {"a": {"services": {}, "settings": {}, "host_tuning": {}, "components": []}}, "fleet": {}},
     "plan.hosts.a.host_tuning has no 'slice' section"),
    ({"hosts": {"a": {"services": {"api": {}}, "settings": {}, "host_tuning": {"slice": {}}, "components": []}},
      "fleet": {}}, "plan.hosts.a.services.api.memory_mb must be a positive number"),
])
def test_a_plan_missing_a_section_is_refused_by_name(plan, words):
    for function in (alert_rules, scrape_targets):
        with pytest.raises(ValueError, match=words.replace("(", r"\(")):
            function(plan)


def test_a_data_host_without_its_settings_is_refused_by_name():
    plan = split()
    del plan["hosts"]["data"]["settings"]["redis"]
    with pytest.raises(ValueError, match="plan.hosts.data is a redis host without a 'settings.redis' section"):
        alert_rules(plan)


@pytest.mark.parametrize("options, words", [
    ({"memory_ratio": 1.5}, "options.memory_ratio must be a number above 0 and at most 1"),
    ({"memory_ratio": True}, "options.memory_ratio"),
    ({"pending_for": "5 minutes"}, "options.pending_for must be a Prometheus duration"),
    ({"ports": {"node": 0}}, "options.ports.node must be a port"),
    ({"ports": {"ftp": 21}}, "options.ports.ftp is no exporter kind"),
    ({"celery_queues": ['a"b']}, "options.celery_queues"),
    ({"gpu_exporter": "rocm"}, "options.gpu_exporter"),
    ({"gpu_exporter": "nvml"}, "options.gpu_exporter must be one of textfile, dcgm"),
    ({"compose_project": 'x"}'}, "options.compose_project must be a Compose project name"),
    ({"gateway_latency_metric": "a-b"}, "options.gateway_latency_metric must be a metric name"),
    ({"colour": "red"}, "unknown options: colour"),
    ("yes", "options must be a mapping"),
])
def test_bad_options_are_refused_by_name(options, words):
    with pytest.raises(ValueError, match=words):
        alert_rules(PLANS["single"], options)


def test_a_gpu_ratio_the_planned_vllm_share_always_reaches_is_refused():
    share = PLANS["split"]["hosts"]["gpu"]["settings"]["inference"]["gpu_memory_utilization"]
    with pytest.raises(ValueError, match="gpu_memory_utilization %s on gpu" % share):
        alert_rules(PLANS["split"], {"gpu_memory_ratio": share})


def test_the_filters_return_the_same_and_name_bad_input():
    assert FILTERS["dify_alert_rules"](PLANS["single"]) == alert_rules(PLANS["single"])
    assert FILTERS["dify_scrape_targets"](PLANS["single"], {"ports": {"node": 1}}) == scrape_targets(PLANS["single"], {"ports": {"node": 1}})
    with pytest.raises(AnsibleFilterError, match="dify_alert_rules: the plan has no 'hosts' section"):
        FILTERS["dify_alert_rules"]({"fleet": {}})
    with pytest.raises(AnsibleFilterError, match="dify_scrape_targets: unknown options: x"):
        FILTERS["dify_scrape_targets"](PLANS["single"], {"x": 1})


# --- promtool ------------------------------------------------------------------------------------


def write_rules(tmp_path, doc) -> str:
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False, width=100000), encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("name, options", [("single", {}), ("split", {}), ("split", {"gpu_exporter": "dcgm"})],
                         ids=["single", "split", "split-dcgm"])
def test_promtool_checks_the_generated_rules(tmp_path, name, options):
    path = write_rules(tmp_path, alert_rules(PLANS[name], options))
    done = subprocess.run([promtool(), "check", "rules", path], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: %d rules found" % len(rules_of(yaml.safe_load(pathlib.Path(path).read_text(encoding="utf-8")))) in done.stdout


def series(metric: str, labels: Mapping[str, str], values: str) -> Dict[str, str]:
    body = ", ".join('%s="%s"' % (k, v) for k, v in labels.items())
    return {"series": "%s{%s}" % (metric, body), "values": values}


def flat(value: float) -> str:
    return "%dx%d" % (round(value), POINTS)


def jump(before: int, after: int) -> str:
    """A counter that rises two minutes before the evaluation."""
    return "%dx%d %dx%d" % (before, EVAL - 3, after, POINTS - EVAL + 2)


class Cases:
    """promtool test groups for one plan: every alert fed series above its planned threshold (one
    group: each alert fires once per host, service or queue, with its labels) and below it (another
    group: nothing fires). Each alert instance reads series of its own, so they do not interfere."""

    def __init__(self, plan: Mapping[str, Any], options: Mapping[str, Any]):
        self.plan, self.opts = plan, checked_options(options)
        self.doc = alert_rules(plan, options)
        self.above: List[Dict[str, str]] = []
        self.below: List[Dict[str, str]] = []
        self.expected: Dict[str, List[Dict[str, Any]]] = {}

    def target(self, host: str, job: str) -> Dict[str, str]:
        address = self.plan["hosts"][host]["address"]
        return {"host": host, "job": job, "instance": monitoring.host_port(address, self.opts["ports"][job])}

    def add(self, rule: Mapping[str, Any], above: List[Dict[str, str]], below: List[Dict[str, str]],
            extra: Mapping[str, str] = ()) -> None:
        extra = dict(extra)
        labels = dict(rule["labels"], **extra)
        annotations = dict(rule["annotations"])
        for key, value in extra.items():
            annotations = {k: v.replace("{{ $labels.%s }}" % key, value) for k, v in annotations.items()}
        self.expected.setdefault(rule["alert"], []).append({"exp_labels": labels, "exp_annotations": annotations})
        self.above.extend(above)
        self.below.extend(below)

    def services(self, host: str) -> None:
        ratio = self.opts["memory_ratio"]
        for service, planned in self.plan["hosts"][host]["services"].items():
            limit = ratio * planned["memory_mb"] * MIB
            if runs_on_host(self.plan, service):
                unit = {"nginx": "/system.slice/nginx.service",
                        "db_postgres": "/system.slice/system-postgresql.slice/postgresql@17-main.service"}[service]
                labels = dict(self.target(host, "cadvisor"), id=unit)
            else:
                labels = dict(self.target(host, "cadvisor"), id="/dify.slice/docker-%s.scope" % service,
                              name="dify-%s-1" % service, container_label_com_docker_compose_project="dify",
                              container_label_com_docker_compose_service=service)
            metric = "container_memory_working_set_bytes"
            self.add(find(self.doc, "DifyServiceMemoryHigh", host, service),
                     [series(metric, labels, flat(limit + MIB))], [series(metric, labels, flat(limit - MIB))])
            if not runs_on_host(self.plan, service):
                metric = "container_oom_events_total"
                self.add(find(self.doc, "DifyServiceOOMKilled", host, service),
                         [series(metric, labels, jump(0, 1))], [series(metric, labels, flat(1))])

    def host(self, host: str) -> None:
        self.add(find(self.doc, "DifyHostOOMKill", host),
                 [series("node_vmstat_oom_kill", self.target(host, "node"), jump(3, 4))],
                 [series("node_vmstat_oom_kill", self.target(host, "node"), flat(3))])
        high = self.opts["slice_memory_ratio"] * self.plan["hosts"][host]["host_tuning"]["slice"]["memory_high_mb"] * MIB
        labels = dict(self.target(host, "cadvisor"), id="/dify.slice")
        self.add(find(self.doc, "DifySliceMemoryHigh", host),
                 [series("container_memory_working_set_bytes", labels, flat(high + MIB))],
                 [series("container_memory_working_set_bytes", labels, flat(high - MIB))])

    def postgres(self, host: str) -> None:
        limit = self.opts["postgres_connections_ratio"] * self.plan["hosts"][host]["settings"]["postgres"]["server"]["max_connections"]

        def connections(count: int) -> List[Dict[str, str]]:
            return [series("pg_stat_activity_count", dict(self.target(host, "postgres"), datname="dify", state=state), flat(n))
                    for state, n in (("active", count // 2), ("idle", count - count // 2))]
        self.add(find(self.doc, "DifyPostgresConnectionsHigh", host), connections(math.ceil(limit)),
                 connections(math.ceil(limit) - 1))

    def redis(self, host: str) -> None:
        target = self.target(host, "redis")
        limit = self.opts["redis_memory_ratio"] * self.plan["hosts"][host]["settings"]["redis"]["maxmemory_mb"] * MIB
        self.add(find(self.doc, "DifyRedisMemoryHigh", host), [series("redis_memory_used_bytes", target, flat(limit + MIB))],
                 [series("redis_memory_used_bytes", target, flat(limit - MIB))])
        self.add(find(self.doc, "DifyRedisEvictions", host), [series("redis_evicted_keys_total", target, jump(7, 9))],
                 [series("redis_evicted_keys_total", target, flat(7))])
        rule = find(self.doc, "DifyCeleryBacklogGrowing", host)
        db = "db%d" % self.opts["celery_broker_db"]
        for index, queue in enumerate(self.opts["celery_queues"]):
            labels = dict(target, db=db, key=queue)
            growing = series("redis_key_size", labels, "1+1x%d" % POINTS)
            # Below: a long queue that does not grow, or one that grows but was empty in the window.
            steady = series("redis_key_size", labels, flat(50))
            drained = series("redis_key_size", labels, "0x%d 1+1x%d" % (EVAL - 5, POINTS - EVAL + 5))
            self.add(rule, [growing], [drained if index % 2 else steady], {"key": queue})

    def gateway(self, host: str) -> None:
        target = self.target(host, "gateway_log")
        requests = self.opts["gateway_requests_metric"]
        total = 10000

        def traffic(errors: int) -> List[Dict[str, str]]:
            return [series(requests, dict(target, route="api", status="200"), "0+%dx%d" % (total - errors, POINTS)),
                    series(requests, dict(target, route="api", status="502"), "0+%dx%d" % (errors, POINTS)),
                    series(requests, dict(target, route="web", status="500"), "0+%dx%d" % (total, POINTS))]
        share = self.opts["api_error_ratio"] * total
        self.add(find(self.doc, "DifyApiErrorRate", host), traffic(math.ceil(share) + 1), traffic(math.floor(share) - 1))
        seconds = self.opts["api_latency_seconds"]
        bucket = self.opts["gateway_latency_metric"] + "_bucket"

        def latency(fast_per_mille: int) -> List[Dict[str, str]]:
            counts = ((seconds / 2, fast_per_mille), (seconds * 2, 1000), ("+Inf", 1000))
            return [series(bucket, dict(target, route="api", le=str(le)), "0+%dx%d" % (n, POINTS)) for le, n in counts]
        # 95 % within half the limit puts the quantile inside (limit/2, 2 limit]; 99.5 % puts it below limit/2.
        self.add(find(self.doc, "DifyApiLatencyP99", host), latency(950), latency(995))

    def gpu(self, host: str, total_mib: int) -> None:
        ratio = self.opts["gpu_memory_ratio"]

        def memory(used: int) -> List[Dict[str, str]]:
            labels = dict(self.target(host, "gpu"), gpu="0", UUID="GPU-l4", modelName="NVIDIA L4")
            return [series("DCGM_FI_DEV_FB_USED", labels, flat(used)), series("DCGM_FI_DEV_FB_FREE", labels, flat(total_mib - used))]
        self.add(find(self.doc, "DifyGpuMemoryHigh", host), memory(math.ceil(ratio * total_mib)), memory(math.floor(ratio * total_mib) - 1))
        if self.opts["gpu_exporter"] != "textfile":
            return
        node = self.target(host, "node")
        error = {"error": "NVMLError_DriverNotLoaded"}
        self.add(find(self.doc, "DifyGpuNvmlDown", host), [series("difyops_gpu_nvml_up", dict(node, **error), flat(0))],
                 [series("difyops_gpu_nvml_up", node, flat(1))], error)
        gpu = {"gpu": "0", "UUID": "GPU-l4"}
        counter = dict(node, modelName="NVIDIA L4", **gpu)
        self.add(find(self.doc, "DifyGpuXidError", host), [series("difyops_gpu_xid_errors_total", counter, jump(0, 1))],
                 [series("difyops_gpu_xid_errors_total", counter, flat(1))], gpu)

    def groups(self) -> List[Dict[str, Any]]:
        """The two promtool test groups."""
        above = [{"eval_time": "%dm" % EVAL, "alertname": alert, "exp_alerts": alerts} for alert, alerts in self.expected.items()]
        below = [{"eval_time": "%dm" % EVAL, "alertname": alert, "exp_alerts": []} for alert in self.expected]
        return [{"name": "above the plan's thresholds", "interval": "1m", "input_series": self.above, "alert_rule_test": above},
                {"name": "below the plan's thresholds", "interval": "1m", "input_series": self.below, "alert_rule_test": below}]

    def build(self) -> List[Dict[str, Any]]:
        # The hosts that run each exporter are checked on their own below; a rule per exporter here.
        exporters = monitoring.exporter_hosts(self.plan)
        for name in self.plan["hosts"]:
            self.services(name)
            self.host(name)
            if name in exporters["postgres"]:
                self.postgres(name)
            if name in exporters["redis"]:
                self.redis(name)
            if name in exporters["gateway_log"]:
                self.gateway(name)
            if name in monitoring.gpu_hosts(self.plan):
                self.gpu(name, L4["memory_total_mib"])
        return self.groups()


@pytest.mark.parametrize("name, options", [("single", {}), ("split", {}), ("split", CUSTOM), ("split", {"gpu_exporter": "dcgm"})],
                         ids=["single", "split", "split-custom", "split-dcgm"])
def test_promtool_unit_tests_generated_from_the_plan_fire_above_and_stay_quiet_below(tmp_path, name, options):
    cases = Cases(PLANS[name], options)
    tests = cases.build()
    # Every rule of the plan is exercised: one expected alert per rule, one per queue for the Celery rule.
    rules = rules_of(cases.doc)
    celery_rules = [r for r in rules if r["alert"] == "DifyCeleryBacklogGrowing"]
    assert sum(len(alerts) for alerts in cases.expected.values()) == \
        len(rules) + (len(cases.opts["celery_queues"]) - 1) * len(celery_rules)
    write_rules(tmp_path, cases.doc)
    test_file = tmp_path / "tests.yml"
    test_file.write_text(yaml.safe_dump({"rule_files": ["rules.yml"], "evaluation_interval": "1m", "tests": tests},
                                        sort_keys=False, width=100000), encoding="utf-8")
    done = subprocess.run([promtool(), "test", "rules", str(test_file)], capture_output=True, text=True, timeout=120,
                          cwd=str(tmp_path), check=False)
    assert done.returncode == 0, (done.stdout + done.stderr)[-6000:]
    assert "SUCCESS" in done.stdout


def test_a_single_node_has_one_group_with_the_memory_alerts_of_every_container():
    doc = alert_rules(PLANS["single"])
    assert [g["name"] for g in doc["groups"]] == ["difyops-dify-one"]
    assert {r["alert"] for r in rules_of(doc)} == {
        "DifyServiceMemoryHigh", "DifyServiceOOMKilled", "DifyHostOOMKill", "DifySliceMemoryHigh",
        "DifyPostgresConnectionsHigh", "DifyRedisMemoryHigh", "DifyRedisEvictions", "DifyCeleryBacklogGrowing",
        "DifyApiErrorRate", "DifyApiLatencyP99"}
    settings = PLANS["single"]["hosts"]["one"]["settings"]
    assert find(doc, "DifyPostgresConnectionsHigh", "one")["expr"].endswith(
        ">= 0.8 * %d" % settings["postgres"]["server"]["max_connections"])
    assert find(doc, "DifyRedisMemoryHigh", "one")["expr"].endswith(">= 0.9 * %d" % (settings["redis"]["maxmemory_mb"] * MIB))
    services = {r["labels"]["service"] for r in rules_of(doc) if r["alert"] == "DifyServiceMemoryHigh"}
    assert {"db_postgres", "redis", "nginx", "api"} <= services

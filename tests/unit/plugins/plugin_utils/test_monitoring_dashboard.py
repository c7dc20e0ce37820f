# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Grafana dashboard from the plan (issue 21): one row per host, every query one of the alert
rules' expressions over the host's own series, every threshold line a number read here from the plan
and the options (never typed), a sound layout, and PromQL that ``promtool check rules`` accepts."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from typing import Any, Dict, List, Mapping, Set, Tuple

import pytest
import yaml

from ansible.errors import AnsibleFilterError
from ansible_collections.difyops.dify.plugins.filter.monitoring import FilterModule
from ansible_collections.difyops.dify.plugins.plugin_utils import monitoring
from ansible_collections.difyops.dify.plugins.plugin_utils.monitoring import MIB, alert_rules, checked_options
from ansible_collections.difyops.dify.plugins.plugin_utils.monitoring_dashboard import grafana_dashboard
from monitoring_plans import CUSTOM as BASE_CUSTOM, single, split

FILTERS = FilterModule().filters()
CUSTOM = dict(BASE_CUSTOM, api_latency_quantile=0.95)
# Panels that graph what no alert reads: GPU utilisation, the hot tables' dead tuples and autovacuum age.
NOT_ALERTED = {"DCGM_FI_DEV_GPU_UTIL", "dify_hot_tables_n_dead_tup", "dify_hot_tables_last_autovacuum"}
METRIC = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{")
HOST_LABEL = re.compile(r'\bhost(=~|!=|!~|=)"([^"]*)"')
SELECTOR = re.compile(r"\{[^{}]*\}")
DIVISOR = re.compile(r"^(.*) / ([0-9]+)$")


PLANS = {"single": single(), "split": split()}
CASES = [("single", {}), ("split", {}), ("split", CUSTOM), ("split", {"gpu_exporter": "dcgm"})]
CASE_IDS = ["single", "split", "split-custom", "split-dcgm"]


def rows(dashboard: Mapping[str, Any]) -> List[Tuple[Dict[str, Any], List[Dict[str, Any]]]]:
    """Each row with the panels that follow it (an expanded row owns them)."""
    found: List[Tuple[Dict[str, Any], List[Dict[str, Any]]]] = []
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            found.append((panel, []))
        else:
            assert found, "a panel before the first row: %r" % panel["title"]
            found[-1][1].append(panel)
    return found


def by_host(plan: Mapping[str, Any], dashboard: Mapping[str, Any]) -> Dict[str, List[Dict[str, Any]]]:
    return {host: panels for host, (_row, panels) in zip(plan["hosts"], rows(dashboard))}


def titled(panels: List[Dict[str, Any]], title: str) -> Dict[str, Any]:
    found = [p for p in panels if p["title"] == title]
    assert len(found) == 1, (title, [p["title"] for p in panels])
    return found[0]


def steps(panel: Mapping[str, Any]) -> List[float]:
    """The threshold values drawn (the base step has none)."""
    values = [s["value"] for s in panel["fieldConfig"]["defaults"]["thresholds"]["steps"]]
    assert values[0] is None
    return values[1:]


def divided(panel: Mapping[str, Any]) -> Dict[str, Tuple[str, int]]:
    """Legend to (numerator, divisor) of a ratio panel's queries."""
    queries = {}
    for target in panel["targets"]:
        match = DIVISOR.match(target["expr"])
        assert match, target["expr"]
        queries[target["legendFormat"]] = (match.group(1), int(match.group(2)))
    return queries


def expressions(dashboard: Mapping[str, Any]) -> List[str]:
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def rules_of(doc: Mapping[str, Any]) -> List[Dict[str, Any]]:
    return [rule for group in doc["groups"] for rule in group["rules"]]


def planned(plan: Mapping[str, Any], host: str) -> List[str]:
    services = plan["hosts"][host]["services"]
    inference = plan["hosts"][host]["settings"].get("inference") or {}
    return [s for s in services if s != "inference" or inference.get("enabled", True)]


# --- structure -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(PLANS))
def test_one_expanded_row_per_host_in_the_plans_order(name):
    plan = PLANS[name]
    found = rows(grafana_dashboard(plan))
    assert [r["title"] for r, _panels in found] == ["%s (%s)" % (h, ", ".join(p["components"])) for h, p in plan["hosts"].items()]
    for row, panels in found:
        assert row["collapsed"] is False and row["panels"] == [] and row["gridPos"]["w"] == 24
        assert panels and all(p["type"] == "timeseries" for p in panels)


def test_each_row_has_the_panels_of_its_components():
    titles = {h: [p["title"] for p in ps] for h, ps in by_host(PLANS["split"], grafana_dashboard(PLANS["split"])).items()}
    every = ["Service memory / planned limit", "dify.slice memory / MemoryHigh"]
    gateway = ["Requests by route and status", "API 5xx share", "API latency p99"]
    postgres = ["Postgres connections", "Dead tuples, hot tables", "Autovacuum age, hot tables"]
    assert titles == {
        "gw": every + gateway, "app1": every, "app2": every,
        "data": every + postgres + ["Redis memory / maxmemory", "Celery queues"],
        "gpu": every + ["GPU memory used", "GPU utilisation"]}
    # A single node's PostgreSQL and Redis are read on its loopback, its gateway's log on the host.
    assert [p["title"] for p in grafana_dashboard(PLANS["single"])["panels"][1:]] == every + postgres + [
        "Redis memory / maxmemory", "Celery queues"] + gateway


def test_the_dashboard_model():
    dashboard = grafana_dashboard(PLANS["single"])
    assert (dashboard["uid"], dashboard["title"], dashboard["schemaVersion"]) == ("difyops-dify", "Dify fleet (difyops)", 39)
    assert dashboard["time"] == {"from": "now-6h", "to": "now"} and dashboard["refresh"] == "30s"
    variables = dashboard["templating"]["list"]
    assert [(v["name"], v["type"], v["query"]) for v in variables] == [("datasource", "datasource", "prometheus")]
    for panel in dashboard["panels"][1:]:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert [t["refId"] for t in panel["targets"]] == [chr(ord("A") + i) for i in range(len(panel["targets"]))]
        for target in panel["targets"]:
            assert target["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        if steps(panel):
            assert panel["fieldConfig"]["defaults"]["thresholds"]["mode"] == "absolute"
            assert panel["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"]["mode"] == "line"


@pytest.mark.parametrize("name, options", CASES, ids=CASE_IDS)
def test_every_expression_reads_only_its_rows_host(name, options):
    plan = PLANS[name]
    for host, panels in by_host(plan, grafana_dashboard(plan, options)).items():
        for panel in panels:
            for target in panel["targets"]:
                selectors = SELECTOR.findall(target["expr"].replace("${1}", ""))
                assert selectors, target["expr"]
                for selector in selectors:
                    assert HOST_LABEL.findall(selector) == [("=", host)], (host, target["expr"])


@pytest.mark.parametrize("name, options", CASES, ids=CASE_IDS)
def test_panels_are_laid_out_without_overlap_and_with_unique_ids(name, options):
    panels = grafana_dashboard(PLANS[name], options)["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)) and all(isinstance(i, int) and i > 0 for i in ids)
    cells: Set[Tuple[int, int]] = set()
    for panel in panels:
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["w"] > 0 and pos["h"] > 0 and pos["x"] + pos["w"] <= 24, panel["title"]
        area = {(x, y) for x in range(pos["x"], pos["x"] + pos["w"]) for y in range(pos["y"], pos["y"] + pos["h"])}
        assert not area & cells, "%s overlaps" % panel["title"]
        cells |= area
    tops = [p["gridPos"]["y"] for p in panels]
    assert tops == sorted(tops), "panels must be listed top to bottom"


@pytest.mark.parametrize("name, options", CASES, ids=CASE_IDS)
def test_the_same_plan_gives_the_same_json(name, options):
    first = json.dumps(grafana_dashboard(PLANS[name], options), sort_keys=False)
    assert first == json.dumps(grafana_dashboard(PLANS[name], options), sort_keys=False)
    assert first == json.dumps(grafana_dashboard(single() if name == "single" else split(), options), sort_keys=False)


# --- thresholds and queries from the plan --------------------------------------------------------


@pytest.mark.parametrize("options", [{}, CUSTOM], ids=["defaults", "custom"])
@pytest.mark.parametrize("name", sorted(PLANS))
def test_memory_thresholds_are_the_plans_limits(name, options):
    plan = PLANS[name]
    opts = checked_options(options)
    for host, panels in by_host(plan, grafana_dashboard(plan, options)).items():
        services = titled(panels, "Service memory / planned limit")
        assert steps(services) == [opts["memory_ratio"], 1]
        assert services["fieldConfig"]["defaults"]["unit"] == "percentunit"
        queries = divided(services)
        assert list(queries) == planned(plan, host)
        for service, (_expr, divisor) in queries.items():
            assert divisor == plan["hosts"][host]["services"][service]["memory_mb"] * MIB
        slice_panel = titled(panels, "dify.slice memory / MemoryHigh")
        assert steps(slice_panel) == [opts["slice_memory_ratio"], 1]
        assert [d for _expr, d in divided(slice_panel).values()] == [plan["hosts"][host]["host_tuning"]["slice"]["memory_high_mb"] * MIB]


@pytest.mark.parametrize("options", [{}, CUSTOM], ids=["defaults", "custom"])
def test_data_gateway_and_gpu_thresholds_are_the_plans_and_the_options(options):
    plan = PLANS["split"]
    opts = checked_options(options)
    panels = by_host(plan, grafana_dashboard(plan, options))
    data = plan["hosts"]["data"]["settings"]
    maximum = data["postgres"]["server"]["max_connections"]
    assert steps(titled(panels["data"], "Postgres connections")) == [opts["postgres_connections_ratio"] * maximum, maximum]
    redis = titled(panels["data"], "Redis memory / maxmemory")
    assert steps(redis) == [opts["redis_memory_ratio"], 1]
    assert [d for _expr, d in divided(redis).values()] == [data["redis"]["maxmemory_mb"] * MIB]
    assert steps(titled(panels["gw"], "API 5xx share")) == [opts["api_error_ratio"]]
    latency = titled(panels["gw"], "API latency p%g" % (opts["api_latency_quantile"] * 100))
    assert steps(latency) == [opts["api_latency_seconds"]]
    assert latency["targets"][0]["expr"].startswith("histogram_quantile(%s, " % opts["api_latency_quantile"])
    share = plan["hosts"]["gpu"]["settings"]["inference"]["gpu_memory_utilization"]
    assert steps(titled(panels["gpu"], "GPU memory used")) == sorted([share, opts["gpu_memory_ratio"]])


def test_the_celery_panel_shows_every_queue_of_the_broker_database():
    options = {"celery_queues": ["alpha", "beta"], "celery_broker_db": 3}
    panel = titled(by_host(PLANS["split"], grafana_dashboard(PLANS["split"], options))["data"], "Celery queues")
    [target] = panel["targets"]
    assert target["legendFormat"] == "{{key}}"
    assert 'redis_key_size{host="data", db="db3", key=~"alpha|beta"}' in target["expr"]


def test_the_gateway_metrics_names_are_the_options():
    options = {"gateway_requests_metric": "site_requests_total", "gateway_latency_metric": "site_seconds", "rate_window": "2m"}
    panels = by_host(PLANS["split"], grafana_dashboard(PLANS["split"], options))["gw"]
    requests = titled(panels, "Requests by route and status")["targets"][0]
    assert requests["expr"].startswith("sum by (host, route, status_class) (label_replace(rate(site_requests_total{")
    assert "[2m]" in requests["expr"] and requests["legendFormat"] == "{{route}} {{status_class}}"
    assert "site_seconds_bucket{" in titled(panels, "API latency p99")["targets"][0]["expr"]


@pytest.mark.parametrize("name, options", CASES, ids=CASE_IDS)
def test_each_alerts_expression_is_graphed_in_its_hosts_row(name, options):
    """The alert's left side is a panel's query (or a ratio panel's numerator): the line is crossed
    where the alert fires."""
    plan = PLANS[name]
    graphed = {host: set() for host in plan["hosts"]}
    for host, panels in by_host(plan, grafana_dashboard(plan, options)).items():
        for panel in panels:
            for target in panel["targets"]:
                match = DIVISOR.match(target["expr"])
                graphed[host].add(match.group(1) if match else target["expr"])
    levels = {"DifyServiceMemoryHigh", "DifySliceMemoryHigh", "DifyPostgresConnectionsHigh", "DifyRedisMemoryHigh",
              "DifyApiErrorRate", "DifyApiLatencyP99", "DifyGpuMemoryHigh"}
    checked = 0
    for rule in rules_of(alert_rules(plan, options)):
        if rule["alert"] in levels:
            assert rule["expr"].rsplit(" >= ", 1)[0] in graphed[rule["labels"]["host"]], rule
            checked += 1
    assert checked >= len(plan["hosts"]) * 2


@pytest.mark.parametrize("name, options", CASES, ids=CASE_IDS)
def test_every_metric_graphed_is_one_the_alert_rules_read(name, options):
    used = {m for expr in expressions(grafana_dashboard(PLANS[name], options)) for m in METRIC.findall(expr)}
    alerted = {m for rule in rules_of(alert_rules(PLANS[name], options)) for m in METRIC.findall(rule["expr"])}
    assert used - alerted <= NOT_ALERTED, used - alerted
    gpu = "gpu" in PLANS[name]["hosts"]
    assert (used - alerted) == NOT_ALERTED - (set() if gpu else {"DCGM_FI_DEV_GPU_UTIL"})


def test_the_hot_tables_graphed_are_the_ones_postgres_exporter_is_told_to_read():
    plan = PLANS["split"]
    panels = by_host(plan, grafana_dashboard(plan))["data"]
    query = monitoring.host_exporters(plan, "data")["postgres"]["queries"]["dify_hot_tables"]
    tables = sorted(plan["hosts"]["data"]["settings"]["postgres"]["hot_tables"])
    assert len(tables) >= 3 and query["query"].endswith("WHERE relname IN (%s)" % ", ".join("'%s'" % t for t in tables))
    columns = {name: spec["usage"] for metric in query["metrics"] for name, spec in metric.items()}
    for title, column in (("Dead tuples, hot tables", "n_dead_tup"), ("Autovacuum age, hot tables", "last_autovacuum")):
        expr = titled(panels, title)["targets"][0]["expr"]
        assert "dify_hot_tables_%s{host=\"data\"}" % column in expr and columns[column] == "GAUGE", expr
    assert columns["relname"] == "LABEL"


@pytest.mark.parametrize("gpu_exporter", ["textfile", "dcgm"])
def test_either_gpu_exporter_is_graphed_under_dcgm_names(gpu_exporter):
    panels = by_host(PLANS["split"], grafana_dashboard(PLANS["split"], {"gpu_exporter": gpu_exporter}))["gpu"]
    assert "DCGM_FI_DEV_FB_USED" in titled(panels, "GPU memory used")["targets"][0]["expr"]
    utilisation = titled(panels, "GPU utilisation")
    assert utilisation["targets"][0]["expr"] == 'max by (host, gpu) (DCGM_FI_DEV_GPU_UTIL{host="gpu"})'
    assert utilisation["fieldConfig"]["defaults"]["unit"] == "percent"


# --- refusals and the filter ---------------------------------------------------------------------


@pytest.mark.parametrize("plan, words", [
    ([], "the plan must be a mapping"),
    ({"fleet": {}}, "the plan has no 'hosts' section"),
    ({"hosts": {"a": {}}}, "the plan has no 'fleet' section"),
    ({"hosts": {"a": {"settings": {}, "host_tuning": {"slice": {}}, "components": []}}, "fleet": {}},
     "plan.hosts.a has no 'services' section"),
    ({"hosts": {"a": {"services": {}, "settings": {}, "host_tuning": {}, "components": []}}, "fleet": {}},
     "plan.hosts.a.host_tuning has no 'slice' section"),
    ({"hosts": {"a": {"services": {}, "settings": {}, "host_tuning": {"slice": {}}, "components": []}}, "fleet": {}},
     "plan.hosts.a.host_tuning.slice.memory_high_mb must be a positive number"),
])
def test_a_plan_missing_a_section_is_refused_by_name(plan, words):
    with pytest.raises(ValueError, match=re.escape(words)):
        grafana_dashboard(plan)


@pytest.mark.parametrize("section, words", [
    ("redis", "plan.hosts.data is a redis host without a 'settings.redis' section"),
    ("postgres", "plan.hosts.data is a database host without a 'settings.postgres.server' section"),
])
def test_a_data_host_without_its_settings_is_refused_by_name(section, words):
    plan = split()
    del plan["hosts"]["data"]["settings"][section]
    with pytest.raises(ValueError, match=re.escape(words)):
        grafana_dashboard(plan)


@pytest.mark.parametrize("options, words", [
    ({"memory_ratio": 1.5}, "options.memory_ratio must be a number above 0 and at most 1"),
    ({"rate_window": "5 minutes"}, "options.rate_window must be a Prometheus duration"),
    ({"gpu_exporter": "rocm"}, "options.gpu_exporter"),
    ({"colour": "red"}, "unknown options: colour"),
    ("yes", "options must be a mapping"),
])
def test_bad_options_are_refused_by_name(options, words):
    with pytest.raises(ValueError, match=re.escape(words)):
        grafana_dashboard(PLANS["single"], options)


def test_a_gpu_ratio_the_planned_vllm_share_always_reaches_is_refused_as_by_the_rules():
    share = PLANS["split"]["hosts"]["gpu"]["settings"]["inference"]["gpu_memory_utilization"]
    with pytest.raises(ValueError, match="gpu_memory_utilization %s on gpu" % share):
        grafana_dashboard(PLANS["split"], {"gpu_memory_ratio": share})


def test_the_filter_returns_the_same_and_names_bad_input():
    assert FILTERS["dify_grafana_dashboard"](PLANS["split"], CUSTOM) == grafana_dashboard(PLANS["split"], CUSTOM)
    assert FILTERS["dify_grafana_dashboard"](PLANS["single"]) == grafana_dashboard(PLANS["single"])
    with pytest.raises(AnsibleFilterError, match="dify_grafana_dashboard: the plan has no 'hosts' section"):
        FILTERS["dify_grafana_dashboard"]({"fleet": {}})
    with pytest.raises(AnsibleFilterError, match="dify_grafana_dashboard: unknown options: x"):
        FILTERS["dify_grafana_dashboard"](PLANS["single"], {"x": 1})


# --- promtool ------------------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("promtool") is None,
                    reason="promtool is missing: Debian's `prometheus` package ships it; .ci/run installs it")
@pytest.mark.parametrize("name, options", CASES, ids=CASE_IDS)
def test_promtool_parses_every_expression(tmp_path, name, options):
    distinct = sorted(set(expressions(grafana_dashboard(PLANS[name], options))))
    rules = [{"record": "difyops:dashboard_query_%d" % index, "expr": expr} for index, expr in enumerate(distinct)]
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, sort_keys=False, width=100000),
                    encoding="utf-8")
    done = subprocess.run([str(shutil.which("promtool")), "check", "rules", str(path)], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: %d rules found" % len(rules) in done.stdout

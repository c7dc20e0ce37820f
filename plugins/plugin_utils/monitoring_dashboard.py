# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A Grafana dashboard computed from the fleet plan (controller-only, pure).

One row per host, in the plan's order, titled with the host and its components. Each row's panels
read the expressions of the alert rules (``monitoring.py``: the same metric names, selectors and
options) and draw the plan's numbers as threshold lines, so that a graph crosses its line exactly
where the alert fires:

- every host: each planned service's working set over its planned ``memory_mb`` (one query per
  service, lines at ``memory_ratio`` and 1), and the ``dify.slice`` working set over its planned
  ``MemoryHigh`` (lines at ``slice_memory_ratio`` and 1).
- database hosts: Postgres client connections (lines at ``postgres_connections_ratio`` x and 1 x the
  planned ``max_connections``), and the dead tuples and autovacuum age of Dify's hot tables (the
  plan's ``settings.postgres.hot_tables``; not alerted on).
- redis hosts: Redis memory over the planned ``maxmemory`` (lines at ``redis_memory_ratio`` and 1) and
  the length of each Celery queue of the broker database.
- gateway hosts: requests per second by route and status class, the api routes' 5xx share (line at
  ``api_error_ratio``) and their ``api_latency_quantile`` latency (line at ``api_latency_seconds``).
- GPU hosts: the fullest GPU's memory in use (lines at the plan's ``gpu_memory_utilization`` and at
  ``gpu_memory_ratio``) and each GPU's utilisation (not alerted on).

Panels get ids in layout order and a 24-column grid: two 12-wide panels a line under each row.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from ansible_collections.difyops.dify.plugins.plugin_utils import monitoring
from ansible_collections.difyops.dify.plugins.plugin_utils.monitoring import MIB

UID = "difyops-dify"
TITLE = "Dify fleet (difyops)"
SCHEMA_VERSION = 39
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
GRID_WIDTH = 24
PANEL_WIDTH = 12
PANEL_HEIGHT = 8
ROW_HEIGHT = 1

# GPU utilisation (percent) under dcgm-exporter's name, which the role's NVML collector writes too.
GPU_UTILISATION = "DCGM_FI_DEV_GPU_UTIL"

Step = Tuple[float, str]  # a threshold: value and colour


# --- panel parts ---------------------------------------------------------------------------------


def ref_id(index: int) -> str:
    """Grafana's query letters: A..Z, then AA, AB, ..."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return letters


def target(index: int, expr: str, legend: str) -> Dict[str, Any]:
    """One Prometheus query of a panel."""
    return {"refId": ref_id(index), "datasource": dict(DATASOURCE), "expr": expr, "legendFormat": legend, "range": True}


def thresholds(steps: Sequence[Step]) -> Dict[str, Any]:
    """Absolute thresholds: green below the first step, then each step's colour from its value up."""
    ordered = sorted(steps, key=lambda step: step[0])
    return {"mode": "absolute",
            "steps": [{"color": "green", "value": None}] + [{"color": colour, "value": value} for value, colour in ordered]}


def panel(title: str, description: str, unit: str, queries: Sequence[Tuple[str, str]],
          steps: Sequence[Step] = ()) -> Dict[str, Any]:
    """A timeseries panel (without id and gridPos, which the layout gives) of (expr, legend) queries,
    the steps drawn as lines."""
    custom: Dict[str, Any] = {"thresholdsStyle": {"mode": "line" if steps else "off"}}
    return {
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": dict(DATASOURCE),
        "targets": [target(index, expr, legend) for index, (expr, legend) in enumerate(queries)],
        "fieldConfig": {"defaults": {"unit": unit, "min": 0, "thresholds": thresholds(steps), "custom": custom},
                        "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                    "tooltip": {"mode": "multi", "sort": "desc"}},
    }


def _limit_steps(ratio: float) -> List[Step]:
    return [(ratio, "orange"), (1, "red")]


# --- panels of every host ------------------------------------------------------------------------


def service_memory_panel(plan: Mapping[str, Any], host: str, opts: Mapping[str, Any]) -> Dict[str, Any]:
    """Each planned service's working set over its planned memory limit (DifyServiceMemoryHigh)."""
    services = plan["hosts"][host]["services"]
    queries = [("%s / %d" % (monitoring.service_working_set(plan, host, service, opts), services[service]["memory_mb"] * MIB), service)
               for service in monitoring.planned_services(plan, host)]
    return panel("Service memory / planned limit", "cAdvisor working set of each planned service over "
                 "plan.hosts.%s.services.<service>.memory_mb; DifyServiceMemoryHigh fires at %s." % (host, opts["memory_ratio"]),
                 "percentunit", queries, _limit_steps(opts["memory_ratio"]))


def slice_panel(plan: Mapping[str, Any], host: str, opts: Mapping[str, Any]) -> Dict[str, Any]:
    """The stack's slice working set over its planned MemoryHigh (DifySliceMemoryHigh)."""
    high = monitoring.planned_memory_high_mb(plan, host)
    name = plan["hosts"][host]["host_tuning"]["slice"].get("name", "dify.slice")
    return panel("%s memory / MemoryHigh" % name, "cAdvisor working set of %s over its planned MemoryHigh %d MiB "
                 "(plan.hosts.%s.host_tuning.slice.memory_high_mb); DifySliceMemoryHigh fires at %s."
                 % (opts["slice_cgroup"], high, host, opts["slice_memory_ratio"]),
                 "percentunit", [("%s / %d" % (monitoring.slice_working_set(host, opts), high * MIB), name)],
                 _limit_steps(opts["slice_memory_ratio"]))


# --- panels of the data hosts --------------------------------------------------------------------


def postgres_panel(plan: Mapping[str, Any], host: str, opts: Mapping[str, Any]) -> Dict[str, Any]:
    """Postgres client connections against the planned max_connections (DifyPostgresConnectionsHigh)."""
    maximum = monitoring.planned_max_connections(plan, host)
    ratio = opts["postgres_connections_ratio"]
    return panel("Postgres connections", "pg_stat_activity_count summed; lines at %s x and 1 x the planned max_connections %d "
                 "(plan.hosts.%s.settings.postgres.server.max_connections)." % (ratio, maximum, host),
                 "short", [(monitoring.postgres_connections(host), "connections")],
                 [(ratio * maximum, "orange"), (maximum, "red")])


def dead_tuples_panel(host: str) -> Dict[str, Any]:
    """Dead tuples of each of Dify's hot tables (not alerted on)."""
    return panel("Dead tuples, hot tables", "dify_hot_tables_n_dead_tup, postgres_exporter's query over the tables the plan "
                 "tunes for autovacuum (plan.hosts.%s.settings.postgres.hot_tables); not alerted on." % host, "short",
                 [("max by (host, relname) (dify_hot_tables_n_dead_tup%s)" % monitoring._selector(host=host), "{{relname}}")])


def autovacuum_age_panel(host: str) -> Dict[str, Any]:
    """How long ago autovacuum last ran on each hot table (not alerted on)."""
    return panel("Autovacuum age, hot tables", "Seconds since dify_hot_tables_last_autovacuum of each hot table (tables "
                 "autovacuum never ran on are left out); not alerted on.", "s",
                 [("time() - max by (host, relname) (dify_hot_tables_last_autovacuum%s > 0)" % monitoring._selector(host=host),
                   "{{relname}}")])


def redis_memory_panel(plan: Mapping[str, Any], host: str, opts: Mapping[str, Any]) -> Dict[str, Any]:
    """Redis memory over the planned maxmemory (DifyRedisMemoryHigh)."""
    maxmemory_mb = monitoring.planned_maxmemory_mb(plan, host)
    return panel("Redis memory / maxmemory", "redis_memory_used_bytes over the planned maxmemory %d MiB "
                 "(plan.hosts.%s.settings.redis.maxmemory_mb); DifyRedisMemoryHigh fires at %s."
                 % (maxmemory_mb, host, opts["redis_memory_ratio"]),
                 "percentunit", [("%s / %d" % (monitoring.redis_memory_used(host), maxmemory_mb * MIB), "redis")],
                 _limit_steps(opts["redis_memory_ratio"]))


def celery_panel(host: str, opts: Mapping[str, Any]) -> Dict[str, Any]:
    """The length of each Celery queue (DifyCeleryBacklogGrowing reads the same series)."""
    return panel("Celery queues", "redis_key_size of each Celery queue in Redis db%d (redis_exporter --check-single-keys); "
                 "DifyCeleryBacklogGrowing fires when a queue never drains and grows over %s."
                 % (opts["celery_broker_db"], opts["celery_backlog_window"]),
                 "short", [("max by (host, key) (redis_key_size%s)" % monitoring.celery_queue_selector(host, opts), "{{key}}")])


# --- panels of the gateway and GPU hosts ---------------------------------------------------------


def gateway_requests_panel(host: str, opts: Mapping[str, Any]) -> Dict[str, Any]:
    """Requests per second by route and status class (1xx..5xx) at the gateway."""
    expr = ('sum by (host, route, status_class) (label_replace(rate(%s%s[%s]), "status_class", "${1}xx", "status", "([0-9])..")'
            ')' % (opts["gateway_requests_metric"], monitoring._selector(host=host), opts["rate_window"]))
    return panel("Requests by route and status", "rate of %s over %s, by route (the plan's fleet.gateway_routes) and status class."
                 % (opts["gateway_requests_metric"], opts["rate_window"]), "reqps", [(expr, "{{route}} {{status_class}}")])


def api_errors_panel(host: str, opts: Mapping[str, Any]) -> Dict[str, Any]:
    """The api routes' 5xx share (DifyApiErrorRate)."""
    return panel("API 5xx share", "5xx answers over all requests of the api routes; DifyApiErrorRate fires at %s."
                 % opts["api_error_ratio"], "percentunit", [(monitoring.api_error_share(host, opts), "api 5xx")],
                 [(opts["api_error_ratio"], "red")])


def api_latency_panel(host: str, opts: Mapping[str, Any]) -> Dict[str, Any]:
    """The api routes' latency quantile (DifyApiLatencyP99)."""
    quantile = opts["api_latency_quantile"]
    return panel("API latency p%g" % round(quantile * 100, 4), "histogram_quantile(%s) of %s_bucket{route=\"api\"}; "
                 "DifyApiLatencyP99 fires at %gs." % (quantile, opts["gateway_latency_metric"], opts["api_latency_seconds"]),
                 "s", [(monitoring.api_latency(host, opts), "api p%g" % round(quantile * 100, 4))],
                 [(opts["api_latency_seconds"], "red")])


def gpu_memory_panel(plan: Mapping[str, Any], host: str, opts: Mapping[str, Any]) -> Dict[str, Any]:
    """The fullest GPU's memory in use (DifyGpuMemoryHigh), with the share the plan gives vLLM."""
    share = monitoring.planned_gpu_share(plan, host, opts)
    steps: List[Step] = [(opts["gpu_memory_ratio"], "red")]
    if isinstance(share, (int, float)):
        steps.append((share, "blue"))
    return panel("GPU memory used", "The fullest GPU's memory in use over its total (%s exporter); the plan's "
                 "gpu_memory_utilization %s is held by the inference engine by design; DifyGpuMemoryHigh fires at %s."
                 % (opts["gpu_exporter"], share if share is not None else "?", opts["gpu_memory_ratio"]),
                 "percentunit", [(monitoring.gpu_memory_used(host), "fullest GPU")], steps)


def gpu_utilisation_panel(host: str, opts: Mapping[str, Any]) -> Dict[str, Any]:
    """Each GPU's utilisation (not alerted on)."""
    return panel("GPU utilisation", "%s of each GPU (%s exporter); not alerted on." % (GPU_UTILISATION, opts["gpu_exporter"]),
                 "percent", [("max by (host, gpu) (%s%s)" % (GPU_UTILISATION, monitoring._selector(host=host)), "GPU {{gpu}}")])


# --- rows and layout -----------------------------------------------------------------------------


def host_panels(plan: Mapping[str, Any], host: str, opts: Mapping[str, Any]) -> List[Dict[str, Any]]:
    """The panels of one host's row, in a fixed order."""
    roles = monitoring.exporter_hosts(plan)
    panels = [service_memory_panel(plan, host, opts), slice_panel(plan, host, opts)]
    if host in roles["postgres"]:
        panels.extend([postgres_panel(plan, host, opts), dead_tuples_panel(host), autovacuum_age_panel(host)])
    if host in roles["redis"]:
        panels.extend([redis_memory_panel(plan, host, opts), celery_panel(host, opts)])
    if host in roles["gateway_log"]:
        panels.extend([gateway_requests_panel(host, opts), api_errors_panel(host, opts), api_latency_panel(host, opts)])
    if host in monitoring.gpu_hosts(plan):
        panels.extend([gpu_memory_panel(plan, host, opts), gpu_utilisation_panel(host, opts)])
    return panels


def row_title(plan: Mapping[str, Any], host: str) -> str:
    """The host and its components: ``data (database, redis, vector_store)``."""
    return "%s (%s)" % (host, ", ".join(plan["hosts"][host]["components"]))


def row(title: str, panel_id: int, y: int) -> Dict[str, Any]:
    """An expanded row; the panels after it in the dashboard's list belong to it."""
    return {"type": "row", "id": panel_id, "title": title, "collapsed": False, "panels": [],
            "gridPos": {"h": ROW_HEIGHT, "w": GRID_WIDTH, "x": 0, "y": y}}


def layout(rows: Sequence[Tuple[str, Sequence[Dict[str, Any]]]]) -> List[Dict[str, Any]]:
    """The dashboard's flat panel list: each row, then its panels two to a line; ids from 1 in order."""
    placed: List[Dict[str, Any]] = []
    y = 0
    for title, panels in rows:
        placed.append(row(title, len(placed) + 1, y))
        y += ROW_HEIGHT
        per_line = GRID_WIDTH // PANEL_WIDTH
        for index, body in enumerate(panels):
            line, column = divmod(index, per_line)
            gridpos = {"h": PANEL_HEIGHT, "w": PANEL_WIDTH, "x": column * PANEL_WIDTH, "y": y + line * PANEL_HEIGHT}
            placed.append(dict(body, id=len(placed) + 1, gridPos=gridpos))
        y += -(-len(panels) // per_line) * PANEL_HEIGHT
    return placed


def datasource_variable() -> Dict[str, Any]:
    """The ``datasource`` template variable every query reads (any Prometheus data source)."""
    return {"name": "datasource", "label": "Prometheus", "type": "datasource", "query": "prometheus",
            "current": {}, "hide": 0, "options": [], "refresh": 1, "regex": ""}


def grafana_dashboard(plan: Any, options: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """A Grafana dashboard JSON model of the fleet: one row per host (the plan's order), its panels'
    queries those of the alert rules and its threshold lines the plan's numbers."""
    plan = monitoring.checked_plan(plan)
    opts = monitoring.checked_options(options)
    rows = [(row_title(plan, host), host_panels(plan, host, opts)) for host in plan["hosts"]]
    return {
        "uid": UID,
        "title": TITLE,
        "description": "Generated by difyops.dify from the fleet plan (dify_grafana_dashboard); edit the plan, not this.",
        "tags": ["difyops", "dify"],
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "editable": True,
        "graphTooltip": 1,
        "timezone": "browser",
        "time": {"from": "now-6h", "to": "now"},
        "refresh": "30s",
        "templating": {"list": [datasource_variable()]},
        "annotations": {"list": []},
        "panels": layout(rows),
    }


__all__ = ("grafana_dashboard", "UID", "TITLE")

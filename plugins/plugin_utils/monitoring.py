# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Prometheus scrape targets and alert rules computed from the fleet plan (controller-only, pure).

Every threshold is a number from the plan (a container's memory limit, Postgres max_connections,
Redis maxmemory, the dify.slice MemoryHigh) times a ratio from ``options``; nothing is typed into a
template. The exporters are those a Debian 13 host can install, or the upstream image where Debian
packages none:

- ``node`` (9100, every host): node_exporter, package ``prometheus-node-exporter``.
- container metrics (every host), by ``container_exporter``:

  - ``textfile`` (the default): the collection's cgroup collector (``roles/monitoring/files/
    difyops_cgroup_metrics.py``) writes cAdvisor's metric names and labels for the stack's slice,
    its Docker containers and the host's own units into node_exporter's textfile directory: they
    are scraped with the ``node`` job and need no image (Debian 13 packages no cAdvisor).
  - ``cadvisor``: cAdvisor (8080), the upstream image, scraped as a job of its own.
- ``postgres`` (9187, hosts with ``database``): postgres_exporter, ``prometheus-postgres-exporter``.
- ``redis`` (9121, hosts with ``redis``): redis_exporter, ``prometheus-redis-exporter``, run with
  ``--check-single-keys`` = :func:`redis_check_single_keys`.
- ``nginx`` (9113, gateway hosts of a split fleet): nginx-prometheus-exporter over stub_status,
  ``prometheus-nginx-exporter``.
- ``gateway_log`` (3903, gateway hosts): mtail over the gateway's access log, package ``mtail``
  (a split fleet's nginx logs to ``/var/log/nginx/access.log``, a single node's to
  ``GATEWAY_LOG_DIR/access.log`` on the host).
- GPU metrics (hosts with ``gpu_inference``), by ``gpu_exporter``:

  - ``textfile`` (the default): the collection's NVML collector (``roles/monitoring/files/
    difyops_gpu_metrics.py``, over Debian's ``python3-pynvml``) writes dcgm-exporter's metric names
    and labels into node_exporter's textfile directory, scraped with the ``node`` job; it adds
    ``difyops_gpu_nvml_up`` and the counter ``difyops_gpu_xid_errors_total``.
  - ``dcgm``: NVIDIA's dcgm-exporter (9400; NVIDIA's image, Debian has no package), which the site
    runs, scraped as the ``gpu`` job.

Every target carries the labels ``host`` (inventory name) and ``role`` (the host's components,
comma-joined); the rules select on ``host``. The expressions and planned numbers the rules compare are
built by the functions under "expressions and planned numbers", which ``monitoring_dashboard.py``
graphs too.

What each alert reads (metric names as the exporters publish them):

- ``DifyServiceMemoryHigh`` (one per planned service per host): the container metrics
  ``container_memory_working_set_bytes`` of the Compose service (``container_label_com_docker_compose_service``
  and ``..._project``), or of the systemd unit's cgroup (``id``) for the services a split fleet runs on
  the host itself (nginx, db_postgres); threshold ``memory_ratio`` x the plan's ``memory_mb``.
- ``DifyServiceOOMKilled`` (one per planned container): cAdvisor ``container_oom_events_total``
  (cAdvisor reads OOM events from ``/dev/kmsg``, which its container must be given).
- ``DifyHostOOMKill`` (one per host): node_exporter ``node_vmstat_oom_kill`` (in the vmstat
  collector's default field list), any kernel OOM kill, whatever cAdvisor saw.
- ``DifyPostgresConnectionsHigh``: postgres_exporter ``pg_stat_activity_count`` (summed over
  ``datname`` and ``state``) against ``postgres_connections_ratio`` x the planned ``max_connections``.
- ``DifyRedisMemoryHigh``: redis_exporter ``redis_memory_used_bytes`` against ``redis_memory_ratio`` x
  the planned ``maxmemory_mb``.
- ``DifyRedisEvictions``: redis_exporter ``redis_evicted_keys_total``; any increase. The plan's
  ``volatile-lru`` policy only evicts keys with a TTL, never Celery's queues, so an eviction means
  Redis is at maxmemory and cache entries go.
- ``DifyCeleryBacklogGrowing``: redis_exporter ``redis_key_size{db="db<N>",key="<queue>"}`` (the
  length of each Celery queue list); the exporter must run with
  ``--check-single-keys`` = :func:`redis_check_single_keys`.
- ``DifyApiErrorRate`` and ``DifyApiLatencyP99``: nginx's stub_status has neither status codes nor
  latency, so these read the counter ``dify_gateway_requests_total{route,status}`` and the histogram
  ``dify_gateway_request_duration_seconds_bucket{route,le}`` that an mtail program over the gateway's
  access log exports (``route`` is the plan's ``fleet.gateway_routes`` key: api, web or
  plugin_daemon). Both names are options, for a site that exports them otherwise.
- ``DifyGpuMemoryHigh``: ``DCGM_FI_DEV_FB_USED / (DCGM_FI_DEV_FB_USED + DCGM_FI_DEV_FB_FREE)`` (MiB),
  from either GPU exporter.
- ``DifyGpuNvmlDown`` and ``DifyGpuXidError`` (``gpu_exporter: textfile``): the collector's
  ``difyops_gpu_nvml_up`` at 0 (its ``error`` label names NVML's error), and any increase of
  ``difyops_gpu_xid_errors_total`` (an XID error NVML reported for a GPU).
- ``DifySliceMemoryHigh``: cAdvisor ``container_memory_working_set_bytes{id="/dify.slice"}`` against
  ``slice_memory_ratio`` x the plan's ``host_tuning.slice.memory_high_mb``.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any, Dict, List, Mapping, Optional

from ansible_collections.difyops.dify.plugins.plugin_utils.sizing.fleet import PORTS
from ansible_collections.difyops.dify.plugins.plugin_utils.stack.compose import DATABASES, DB_USER, GATEWAY_LOG_DIR, HOST_SERVICES_WHEN_SPLIT

# Where a split fleet's gateway, Debian's nginx on the host, writes its access log.
HOST_GATEWAY_LOG = "/var/log/nginx/access.log"

MIB = 1024 * 1024

# Celery queues of Dify's worker (api/docker/entrypoint.sh, SELF_HOSTED edition, when CELERY_QUEUES
# is unset); the broker is Redis database 1 (CELERY_BROKER_URL redis://.../1, Dify's .env.example).
DIFY_CELERY_QUEUES = (
    "api_token", "dataset", "priority_dataset", "priority_pipeline", "pipeline", "mail", "ops_trace",
    "app_deletion", "plugin", "workflow_storage", "conversation", "workflow", "schedule_poller",
    "schedule_executor", "triggered_workflow_dispatcher", "trigger_refresh_executor", "retention",
    "workflow_based_app_execution",
)

DEFAULT_PORTS: Dict[str, int] = {
    "node": 9100, "cadvisor": 8080, "postgres": 9187, "redis": 9121, "nginx": 9113, "gateway_log": 3903,
    "gpu": 9400,
}

# Systemd units of the services a split fleet runs on the host itself (Debian's nginx and
# postgresql@<version>-<cluster>), as cAdvisor names their cgroups (``id`` label, a regex).
DEFAULT_HOST_SERVICE_CGROUPS: Dict[str, str] = {
    "nginx": "/system.slice/nginx.service",
    "db_postgres": "/system.slice/system-postgresql.slice/postgresql@.+[.]service",
}

DEFAULTS: Dict[str, Any] = {
    "ports": {},
    "memory_ratio": 0.9,
    "postgres_connections_ratio": 0.8,
    "redis_memory_ratio": 0.9,
    "gpu_memory_ratio": 0.95,
    "slice_memory_ratio": 0.98,
    "api_error_ratio": 0.05,
    "api_latency_quantile": 0.99,
    "api_latency_seconds": 10.0,
    "pending_for": "5m",
    "rate_window": "5m",
    "celery_backlog_window": "10m",
    "celery_queues": list(DIFY_CELERY_QUEUES),
    "celery_broker_db": 1,
    "compose_project": "dify",
    "host_service_cgroups": {},
    "slice_cgroup": "/dify.slice",
    "gpu_exporter": "textfile",
    "container_exporter": "textfile",
    "gateway_requests_metric": "dify_gateway_requests_total",
    "gateway_latency_metric": "dify_gateway_request_duration_seconds",
}
RATIOS = ("memory_ratio", "postgres_connections_ratio", "redis_memory_ratio", "gpu_memory_ratio",
          "slice_memory_ratio", "api_error_ratio", "api_latency_quantile")
DURATIONS = ("pending_for", "rate_window", "celery_backlog_window")
METRIC_NAMES = ("gateway_requests_metric", "gateway_latency_metric")
GPU_EXPORTERS = ("textfile", "dcgm")
CONTAINER_EXPORTERS = ("textfile", "cadvisor")

_DURATION = re.compile(r"^[0-9]+(ms|s|m|h|d|w|y)$")
_QUEUE = re.compile(r"^[A-Za-z0-9_:-]+$")
_METRIC = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_PROJECT = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_TABLE = re.compile(r"^[a-z_][a-z0-9_]*$")
_FIX_MEMORY = ("find what grows ({look}); if the load is legitimate raise "
               "dify_sizing_overrides.services.{service}.memory_mb on {host} or give the host more memory, "
               "then re-run the plan and the stack playbook")


# --- input checks ----------------------------------------------------------------------------


def _mapping(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError("%s must be a mapping, got %s" % (what, type(value).__name__))
    return value


def _section(parent: Mapping[str, Any], key: str, what: str) -> Mapping[str, Any]:
    if key not in parent:
        raise ValueError("%s has no '%s' section" % (what, key))
    return _mapping(parent[key], "%s.%s" % (what, key))


def _number(parent: Mapping[str, Any], key: str, what: str) -> float:
    value = parent.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ValueError("%s.%s must be a positive number, got %r" % (what, key, value))
    return value


def checked_plan(plan: Any) -> Mapping[str, Any]:
    """The plan, if it has every section the rules and targets read; otherwise a ValueError that
    names the first missing section (plan.hosts.<host>.services, ...)."""
    plan = _mapping(plan, "the plan")
    hosts = _section(plan, "hosts", "the plan")
    _section(plan, "fleet", "the plan")
    if not hosts:
        raise ValueError("the plan has no hosts")
    for name, host in hosts.items():
        what = "plan.hosts.%s" % name
        host = _mapping(host, what)
        for key in ("services", "settings", "host_tuning"):
            _section(host, key, what)
        _section(host["host_tuning"], "slice", what + ".host_tuning")
        if not isinstance(host.get("components"), (list, tuple)):
            raise ValueError("%s has no 'components' list" % what)
        for service, planned in host["services"].items():
            _number(_mapping(planned, "%s.services.%s" % (what, service)), "memory_mb", "%s.services.%s" % (what, service))
    return plan


def _ratio(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise ValueError("options.%s must be a number above 0 and at most 1, got %r" % (key, value))
    return float(value)


def _ports(given: Any) -> Dict[str, int]:
    ports = dict(DEFAULT_PORTS)
    for kind, port in _mapping(given, "options.ports").items():
        if kind not in DEFAULT_PORTS:
            raise ValueError("options.ports.%s is no exporter kind (one of %s)" % (kind, ", ".join(sorted(DEFAULT_PORTS))))
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise ValueError("options.ports.%s must be a port from 1 to 65535, got %r" % (kind, port))
        ports[kind] = port
    return ports


def checked_options(options: Any = None) -> Dict[str, Any]:
    """The options over DEFAULTS, each checked (ratios in (0, 1], durations like ``5m``, ports,
    queue and metric names); unknown keys are refused."""
    given = dict(_mapping(options if options is not None else {}, "options"))
    unknown = sorted(set(given) - set(DEFAULTS))
    if unknown:
        raise ValueError("unknown options: %s (known: %s)" % (", ".join(unknown), ", ".join(sorted(DEFAULTS))))
    opts = dict(DEFAULTS, **given)
    for key in RATIOS:
        opts[key] = _ratio(opts[key], key)
    for key in DURATIONS:
        if not isinstance(opts[key], str) or not _DURATION.match(opts[key]):
            raise ValueError("options.%s must be a Prometheus duration such as 5m, got %r" % (key, opts[key]))
    for key in METRIC_NAMES:
        if not isinstance(opts[key], str) or not _METRIC.match(opts[key]):
            raise ValueError("options.%s must be a metric name of [a-zA-Z0-9_:], got %r" % (key, opts[key]))
    if not isinstance(opts["compose_project"], str) or not _PROJECT.match(opts["compose_project"]):
        raise ValueError("options.compose_project must be a Compose project name, got %r" % (opts["compose_project"],))
    if isinstance(opts["api_latency_seconds"], bool) or not isinstance(opts["api_latency_seconds"], (int, float)) \
            or opts["api_latency_seconds"] <= 0:
        raise ValueError("options.api_latency_seconds must be a positive number, got %r" % (opts["api_latency_seconds"],))
    queues = opts["celery_queues"]
    if not isinstance(queues, (list, tuple)) or not queues or not all(isinstance(q, str) and _QUEUE.match(q) for q in queues):
        raise ValueError("options.celery_queues must be a non-empty list of queue names of [A-Za-z0-9_:-], got %r" % (queues,))
    db = opts["celery_broker_db"]
    if isinstance(db, bool) or not isinstance(db, int) or not 0 <= db <= 15:
        raise ValueError("options.celery_broker_db must be a Redis database number from 0 to 15, got %r" % (db,))
    if opts["gpu_exporter"] not in GPU_EXPORTERS:
        raise ValueError("options.gpu_exporter must be one of %s, got %r" % (", ".join(GPU_EXPORTERS), opts["gpu_exporter"]))
    if opts["container_exporter"] not in CONTAINER_EXPORTERS:
        raise ValueError("options.container_exporter must be one of %s, got %r"
                         % (", ".join(CONTAINER_EXPORTERS), opts["container_exporter"]))
    cgroups = dict(DEFAULT_HOST_SERVICE_CGROUPS)
    cgroups.update({str(k): str(v) for k, v in _mapping(opts["host_service_cgroups"], "options.host_service_cgroups").items()})
    opts["host_service_cgroups"] = cgroups
    if not isinstance(opts["slice_cgroup"], str) or not opts["slice_cgroup"].startswith("/"):
        raise ValueError("options.slice_cgroup must be a cgroup path such as /dify.slice, got %r" % (opts["slice_cgroup"],))
    opts["ports"] = _ports(opts["ports"])
    return opts


# --- scrape targets ----------------------------------------------------------------------------


def host_port(address: str, port: int) -> str:
    """``address:port``, with an IPv6 address in brackets (given with or without them)."""
    bare = address[1:-1] if address.startswith("[") and address.endswith("]") else address
    try:
        if ipaddress.ip_address(bare).version == 6:
            return "[%s]:%d" % (bare, port)
    except ValueError:
        pass
    return "%s:%d" % (bare, port)


def _has(host: Mapping[str, Any], component: str) -> bool:
    return component in host["components"]


def gpu_hosts(plan: Mapping[str, Any]) -> List[str]:
    """The hosts with ``gpu_inference``, whose GPUs are watched, in the plan's order."""
    return [name for name, host in plan["hosts"].items() if _has(host, "gpu_inference")]


def exporter_hosts(plan: Mapping[str, Any], container_exporter: str = "textfile",
                   gpu_exporter: str = "textfile") -> Dict[str, List[str]]:
    """The hosts each exporter kind runs on, by name, in the plan's order. With the ``textfile``
    container and GPU exporters those metrics come with ``node``, and ``cadvisor`` and ``gpu`` have
    no host.

    A single node runs PostgreSQL, Redis and nginx inside the stack. Its PostgreSQL and Redis are
    published on the host's loopback (stack/compose.py), where the host's exporters read them, and
    its nginx writes a copy of its access log to the host (``GATEWAY_LOG_DIR``) for mtail. Its
    stub_status answers inside the container only, so ``nginx`` has no host there (nothing but the
    dashboard's connection counts would read it)."""
    hosts = plan["hosts"]
    every = list(hosts)
    gateways = [n for n in every if _has(hosts[n], "gateway")]
    return {
        "node": every,
        "cadvisor": every if container_exporter == "cadvisor" else [],
        "postgres": [n for n in every if _has(hosts[n], "database")],
        "redis": [n for n in every if _has(hosts[n], "redis")],
        "nginx": [] if _single_node(plan) else gateways,
        "gateway_log": gateways,
        "gpu": gpu_hosts(plan) if gpu_exporter == "dcgm" else [],
    }


def _static_config(name: str, host: Mapping[str, Any], port: int) -> Dict[str, Any]:
    # A host planned without an address (a single node) is scraped by its inventory name.
    address = str(host.get("address") or name)
    return {"targets": [host_port(address, port)], "labels": {"host": name, "role": ",".join(host["components"])}}


def hot_tables(plan: Mapping[str, Any], host: str) -> List[str]:
    """Dify's hot tables on a database host: those the plan tunes for autovacuum, sorted."""
    return sorted((plan["hosts"][host]["settings"].get("postgres") or {}).get("hot_tables") or {})


def postgres_queries(plan: Mapping[str, Any], host: str) -> Dict[str, Any]:
    """postgres_exporter's extra queries (``--extend.query-path``): the dead and live rows and the last
    autovacuum (Unix time, 0 when never) of each hot table, as ``dify_hot_tables_*{datname, schemaname,
    relname}``. Named apart from the exporter's own pg_stat_user_tables collector (newer releases),
    so that the two never collide; pg_monitor may read the statistics."""
    names = ", ".join("'%s'" % table for table in hot_tables(plan, host) if _TABLE.match(table))
    query = ("SELECT current_database() AS datname, schemaname, relname, n_dead_tup, n_live_tup, "
             "COALESCE(EXTRACT(EPOCH FROM last_autovacuum), 0) AS last_autovacuum, autovacuum_count "
             "FROM pg_stat_user_tables WHERE relname IN (%s)" % (names or "NULL"))
    metrics = [
        {"datname": {"usage": "LABEL", "description": "The database"}},
        {"schemaname": {"usage": "LABEL", "description": "The table's schema"}},
        {"relname": {"usage": "LABEL", "description": "The table"}},
        {"n_dead_tup": {"usage": "GAUGE", "description": "Estimated dead rows of the table"}},
        {"n_live_tup": {"usage": "GAUGE", "description": "Estimated live rows of the table"}},
        {"last_autovacuum": {"usage": "GAUGE", "description": "When autovacuum last vacuumed the table (Unix time; 0: never)"}},
        {"autovacuum_count": {"usage": "COUNTER", "description": "Times autovacuum vacuumed the table"}},
    ]
    return {"dify_hot_tables": {"query": query, "metrics": metrics}}


def redis_check_single_keys(options: Optional[Mapping[str, Any]] = None) -> str:
    """redis_exporter's ``--check-single-keys`` value that publishes every Celery queue's length."""
    opts = checked_options(options)
    return ",".join("db%d=%s" % (opts["celery_broker_db"], queue) for queue in opts["celery_queues"])


def scrape_targets(plan: Any, options: Optional[Mapping[str, Any]] = None) -> Dict[str, List[Dict[str, Any]]]:
    """Per exporter kind (node, cadvisor, postgres, redis, nginx, gateway_log, gpu), a list of
    Prometheus static configs: one per host, ``{"targets": ["address:port"], "labels": {"host",
    "role"}}``. A kind with no host has an empty list."""
    plan = checked_plan(plan)
    opts = checked_options(options)
    hosts = plan["hosts"]
    return {kind: [_static_config(name, hosts[name], opts["ports"][kind]) for name in names]
            for kind, names in exporter_hosts(plan, opts["container_exporter"], opts["gpu_exporter"]).items()}


def _listen(host: Mapping[str, Any], port: int) -> Dict[str, Any]:
    # A host planned without an address (a single node) has its exporters listen on every address.
    address = str(host.get("address") or "").strip("[]")
    return {"port": port, "address": address, "listen": host_port(address, port) if address else ":%d" % port}


def host_exporters(plan: Any, host: str, options: Optional[Mapping[str, Any]] = None,
                   redis_port: int = PORTS["redis"], postgres_port: int = PORTS["db_postgres"]) -> Dict[str, Dict[str, Any]]:
    """What the monitoring role installs on one host: per exporter kind the host runs, its port,
    address and ``listen`` (``address:port``; the host's planned address, so that only its network
    sees it, or every address, ``:port``, for a host planned without one), plus what the
    kind needs:

    - postgres: the database it reads (``database``, Dify's), its extra queries (``queries``,
      :func:`postgres_queries`) and how it logs in (``login``: ``peer`` over the socket of the
      host's own PostgreSQL, or ``password`` over TCP to a single node's stack, published on
      127.0.0.1 ``postgres_port``: ``db_host``, ``db_port``, and ``db_admin``, the stack's
      superuser, who creates the exporter's login);
    - redis: the Redis URL (``redis_url``; a single node's Redis on 127.0.0.1) and
      ``--check-single-keys``;
    - gateway_log: the access log mtail reads (``log``);
    - node: how the containers are collected (``containers``) and whether the role's NVML
      collector runs there (``gpu_collector``).

    (nginx's stub_status is the gateway role's: ``nginx_gateway_status_port``.)"""
    plan = checked_plan(plan)
    opts = checked_options(options)
    if host not in plan["hosts"]:
        raise ValueError("%s is not a host of the plan (plan.hosts has %s)" % (host, ", ".join(plan["hosts"])))
    host_plan = plan["hosts"][host]
    exporters: Dict[str, Dict[str, Any]] = {}
    for kind, names in exporter_hosts(plan, opts["container_exporter"], opts["gpu_exporter"]).items():
        if host in names:
            exporters[kind] = _listen(host_plan, opts["ports"][kind])
    single = _single_node(plan)
    if "postgres" in exporters:
        # Dify's database, whose hot tables' statistics the exporter reads there (postgres_queries).
        exporters["postgres"]["database"] = DATABASES[0]
        exporters["postgres"]["queries"] = postgres_queries(plan, host)
        exporters["postgres"].update({"login": "password", "db_host": "127.0.0.1", "db_port": postgres_port, "db_admin": DB_USER}
                                     if single else {"login": "peer"})
    if "gateway_log" in exporters:
        exporters["gateway_log"]["log"] = GATEWAY_LOG_DIR + "/access.log" if single else HOST_GATEWAY_LOG
    if "redis" in exporters:
        address = "127.0.0.1" if single else host_plan.get("address") or "127.0.0.1"
        exporters["redis"].update(redis_url="redis://%s" % host_port(str(address), redis_port),
                                  check_single_keys=redis_check_single_keys(opts))
    if "gpu" in exporters:
        exporters["gpu"]["exporter"] = opts["gpu_exporter"]
    exporters["node"]["containers"] = opts["container_exporter"]
    exporters["node"]["gpu_collector"] = opts["gpu_exporter"] == "textfile" and host in gpu_hosts(plan)
    return exporters


# --- alert rules --------------------------------------------------------------------------------


def _selector(**labels: str) -> str:
    parts = []
    for key, value in labels.items():
        op, key = ("=~", key[:-len("__re")]) if key.endswith("__re") else ("=", key)
        parts.append('%s%s"%s"' % (key, op, value.replace("\\", "\\\\").replace('"', '\\"')))
    return "{%s}" % ", ".join(parts)


def _rule(alert: str, expr: str, severity: str, host: str, summary: str, description: str,
          pending: Optional[str] = None, service: Optional[str] = None) -> Dict[str, Any]:
    labels = {"severity": severity, "host": host}
    if service:
        labels["service"] = service
    rule: Dict[str, Any] = {"alert": alert, "expr": expr}
    if pending:
        rule["for"] = pending
    rule["labels"] = labels
    rule["annotations"] = {"summary": summary, "description": description}
    return rule


def _percent(ratio: float) -> str:
    return "%g %%" % round(ratio * 100, 4)


def _single_node(plan: Mapping[str, Any]) -> bool:
    return bool(plan["fleet"].get("single_node", len(plan["hosts"]) == 1))


def runs_on_host(plan: Mapping[str, Any], service: str) -> bool:
    """Whether the service runs outside Compose, as a systemd unit of the host (split fleets)."""
    return not _single_node(plan) and service in HOST_SERVICES_WHEN_SPLIT


def planned_services(plan: Mapping[str, Any], host: str) -> List[str]:
    """The host's planned services that run: all but an inference service the plan left disabled."""
    host_plan = plan["hosts"][host]
    inference = host_plan["settings"].get("inference") or {}
    return [s for s in host_plan["services"] if s != "inference" or inference.get("enabled", True)]


def service_memory_selector(plan: Mapping[str, Any], host: str, service: str, opts: Mapping[str, Any]) -> str:
    """The cAdvisor selector of one planned service: its Compose container, or its systemd unit's
    cgroup where a split fleet runs it on the host itself."""
    if runs_on_host(plan, service):
        return _selector(host=host, id__re=opts["host_service_cgroups"][service])
    return _selector(host=host, container_label_com_docker_compose_project=opts["compose_project"],
                     container_label_com_docker_compose_service=service)


# --- expressions and planned numbers (shared by the rules and the dashboard) -----------------------


def service_working_set(plan: Mapping[str, Any], host: str, service: str, opts: Mapping[str, Any]) -> str:
    """cAdvisor's working set of one planned service, in bytes (DifyServiceMemoryHigh's left side)."""
    return "max by (host) (container_memory_working_set_bytes%s)" % service_memory_selector(plan, host, service, opts)


def slice_working_set(host: str, opts: Mapping[str, Any]) -> str:
    """cAdvisor's working set of the stack's slice, in bytes (DifySliceMemoryHigh's left side)."""
    return "max by (host) (container_memory_working_set_bytes%s)" % _selector(host=host, id=opts["slice_cgroup"])


def postgres_connections(host: str) -> str:
    """Postgres client connections, summed over databases and states."""
    return "sum by (host) (pg_stat_activity_count%s)" % _selector(host=host)


def redis_memory_used(host: str) -> str:
    """Redis's used memory, in bytes."""
    return "max by (host) (redis_memory_used_bytes%s)" % _selector(host=host)


def celery_queue_selector(host: str, opts: Mapping[str, Any]) -> str:
    """redis_exporter's selector of the Celery queue lengths (``redis_key_size``)."""
    return _selector(host=host, db="db%d" % opts["celery_broker_db"], key__re="|".join(opts["celery_queues"]))


def api_error_share(host: str, opts: Mapping[str, Any]) -> str:
    """The api routes' share of 5xx answers at the gateway, over ``rate_window``."""
    requests, window = opts["gateway_requests_metric"], opts["rate_window"]
    return "sum by (host) (rate(%s%s[%s])) / sum by (host) (rate(%s%s[%s]))" % (
        requests, _selector(host=host, route="api", status__re="5.."), window, requests, _selector(host=host, route="api"), window)


def api_latency(host: str, opts: Mapping[str, Any]) -> str:
    """The api routes' ``api_latency_quantile`` latency at the gateway, in seconds."""
    return "histogram_quantile(%s, sum by (host, le) (rate(%s_bucket%s[%s])))" % (
        opts["api_latency_quantile"], opts["gateway_latency_metric"], _selector(host=host, route="api"), opts["rate_window"])


def gpu_memory_used(host: str) -> str:
    """The fullest GPU's memory in use over its total (dcgm-exporter's names, which the role's
    collector writes too)."""
    sel = _selector(host=host)
    return "max by (host) (DCGM_FI_DEV_FB_USED%s / (DCGM_FI_DEV_FB_USED%s + DCGM_FI_DEV_FB_FREE%s))" % (sel, sel, sel)


def gpu_xid_errors(host: str, opts: Mapping[str, Any]) -> str:
    """XID errors per GPU over ``rate_window``, from the role's collector's counter."""
    return "sum by (host, gpu, UUID) (increase(difyops_gpu_xid_errors_total%s[%s]))" % (_selector(host=host), opts["rate_window"])


def planned_max_connections(plan: Mapping[str, Any], host: str) -> int:
    """The database host's planned Postgres ``max_connections``."""
    postgres = plan["hosts"][host]["settings"].get("postgres")
    if not isinstance(postgres, Mapping) or not isinstance(postgres.get("server"), Mapping):
        raise ValueError("plan.hosts.%s is a database host without a 'settings.postgres.server' section" % host)
    return int(_number(postgres["server"], "max_connections", "plan.hosts.%s.settings.postgres.server" % host))


def planned_redis(plan: Mapping[str, Any], host: str) -> Mapping[str, Any]:
    """The redis host's planned Redis settings."""
    redis = plan["hosts"][host]["settings"].get("redis")
    if not isinstance(redis, Mapping):
        raise ValueError("plan.hosts.%s is a redis host without a 'settings.redis' section" % host)
    return redis


def planned_maxmemory_mb(plan: Mapping[str, Any], host: str) -> int:
    """The redis host's planned ``maxmemory``, in MiB."""
    return int(_number(planned_redis(plan, host), "maxmemory_mb", "plan.hosts.%s.settings.redis" % host))


def planned_memory_high_mb(plan: Mapping[str, Any], host: str) -> int:
    """The host's planned ``MemoryHigh`` of the stack's slice, in MiB."""
    return int(_number(plan["hosts"][host]["host_tuning"]["slice"], "memory_high_mb", "plan.hosts.%s.host_tuning.slice" % host))


def planned_gpu_share(plan: Mapping[str, Any], host: str, opts: Mapping[str, Any]) -> Optional[float]:
    """The share of each GPU the plan gives the inference engine (vLLM's ``gpu_memory_utilization``), if
    planned; refused when ``gpu_memory_ratio`` is at or below it (the alert would always fire)."""
    inference = plan["hosts"][host]["settings"].get("inference") or {}
    ratio = opts["gpu_memory_ratio"]
    share = inference.get("gpu_memory_utilization")
    if isinstance(share, (int, float)) and share >= ratio:
        raise ValueError("options.gpu_memory_ratio %s is at or below the plan's gpu_memory_utilization %s on %s: the "
                         "alert would always fire" % (ratio, share, host))
    return share


# --- alert rules of each kind ------------------------------------------------------------------


def memory_rules(plan: Mapping[str, Any], host: str, opts: Mapping[str, Any]) -> List[Dict[str, Any]]:
    """Per planned service: working set at ``memory_ratio`` of the plan's memory_mb, and (for
    containers) any OOM kill."""
    rules = []
    ratio = opts["memory_ratio"]
    for service in planned_services(plan, host):
        limit_mb = plan["hosts"][host]["services"][service]["memory_mb"]
        selector = service_memory_selector(plan, host, service, opts)
        look = "systemd-cgtop, the unit's journal" if runs_on_host(plan, service) else "docker stats, docker logs"
        fix = _FIX_MEMORY.format(service=service, host=host, look=look)
        rules.append(_rule(
            "DifyServiceMemoryHigh",
            "%s >= %s * %d" % (service_working_set(plan, host, service, opts), ratio, limit_mb * MIB),
            "warning", host,
            "%s on %s uses %s or more of its planned %d MiB memory limit; fix: %s."
            % (service, host, _percent(ratio), limit_mb, fix),
            "The plan gives %s on %s %d MiB (plan.hosts.%s.services.%s.memory_mb); past it the kernel kills it."
            % (service, host, limit_mb, host, service),
            opts["pending_for"], service))
        if runs_on_host(plan, service):
            continue  # a host unit: its OOM kills count in DifyHostOOMKill
        rules.append(_rule(
            "DifyServiceOOMKilled",
            "max by (host) (increase(container_oom_events_total%s[%s])) > 0" % (selector, opts["rate_window"]),
            "critical", host,
            "%s on %s was OOM-killed at its planned %d MiB memory limit; fix: %s." % (service, host, limit_mb, fix),
            "cAdvisor counted an OOM kill in the %s container within %s." % (service, opts["rate_window"]),
            None, service))
    return rules


def host_oom_rule(plan: Mapping[str, Any], host: str, opts: Mapping[str, Any]) -> Dict[str, Any]:
    """Any kernel OOM kill on the host (node_exporter), whatever process it hit."""
    mb = plan["hosts"][host]["host_tuning"]["slice"].get("memory_max_mb")
    return _rule(
        "DifyHostOOMKill",
        "max by (host) (increase(node_vmstat_oom_kill%s[%s])) > 0" % (_selector(host=host), opts["rate_window"]),
        "critical", host,
        "The kernel OOM-killed a process on %s (dify.slice MemoryMax %s MiB); fix: find the victim in the "
        "kernel log (journalctl -k), then raise that service's planned memory or the host's." % (host, mb),
        "node_vmstat_oom_kill rose within %s." % opts["rate_window"])


def postgres_rule(plan: Mapping[str, Any], host: str, opts: Mapping[str, Any]) -> Dict[str, Any]:
    """Client connections at ``postgres_connections_ratio`` of the planned max_connections."""
    maximum = planned_max_connections(plan, host)
    ratio = opts["postgres_connections_ratio"]
    pooler = plan["fleet"].get("postgres_pooler", "none")
    return _rule(
        "DifyPostgresConnectionsHigh",
        "%s >= %s * %d" % (postgres_connections(host), ratio, maximum),
        "warning", host,
        "db_postgres on %s has %s or more of its planned max_connections %d; fix: look for leaked or idle "
        "sessions (pg_stat_activity), lower the app hosts' pools (dify_sizing_overrides.settings) or put "
        "PgBouncer in front (dify_postgres_pooler: pgbouncer; the plan has %s), then re-run the plan."
        % (host, _percent(ratio), maximum, pooler),
        "At max_connections Postgres refuses new clients (\"too many clients already\").",
        opts["pending_for"], "db_postgres")


def redis_rules(plan: Mapping[str, Any], host: str, opts: Mapping[str, Any]) -> List[Dict[str, Any]]:
    """Redis memory at ``redis_memory_ratio`` of the planned maxmemory, any eviction, and each
    Celery queue growing for ``celery_backlog_window``."""
    redis = planned_redis(plan, host)
    maxmemory_mb = planned_maxmemory_mb(plan, host)
    ratio = opts["redis_memory_ratio"]
    policy = redis.get("maxmemory_policy", "?")
    fix = ("raise dify_sizing_overrides.services.redis.memory_mb on %s (maxmemory follows it) or find the "
           "keys that grow (redis-cli --bigkeys)" % host)
    db = "db%d" % opts["celery_broker_db"]
    queues = celery_queue_selector(host, opts)
    window = opts["celery_backlog_window"]
    workers = ", ".join(n for n, h in plan["hosts"].items() if "worker" in h["services"]) or "none"
    return [
        _rule("DifyRedisMemoryHigh",
              "%s >= %s * %d" % (redis_memory_used(host), ratio, maxmemory_mb * MIB),
              "warning", host,
              "redis on %s uses %s or more of its planned maxmemory %d MiB (%s); fix: %s."
              % (host, _percent(ratio), maxmemory_mb, policy, fix),
              "At maxmemory Redis evicts (policy %s) or refuses writes." % policy,
              opts["pending_for"], "redis"),
        _rule("DifyRedisEvictions",
              "max by (host) (increase(redis_evicted_keys_total%s[%s])) > 0" % (_selector(host=host), opts["rate_window"]),
              "warning", host,
              "redis on %s evicted keys at its planned maxmemory %d MiB (%s); fix: %s." % (host, maxmemory_mb, policy, fix),
              "%s evicts only keys with a TTL, never Celery's queues; cached data is being dropped." % policy,
              None, "redis"),
        _rule("DifyCeleryBacklogGrowing",
              "min by (host, key) (min_over_time(redis_key_size%s[%s])) > 0 and max by (host, key) (delta(redis_key_size%s[%s])) > 0"
              % (queues, window, queues, window),
              "warning", host,
              "Celery queue {{ $labels.key }} on %s has not drained and grew for %s; fix: check the workers on %s "
              "(docker logs worker), raise dify_sizing_overrides.settings.celery_workers or add app hosts."
              % (host, window, workers),
              "redis_key_size of the queue list in Redis %s (redis_exporter --check-single-keys)." % db,
              None, "worker"),
    ]


def gateway_rules(plan: Mapping[str, Any], host: str, opts: Mapping[str, Any]) -> List[Dict[str, Any]]:
    """The api routes' 5xx share and their latency quantile, at the gateway."""
    requests, latency = opts["gateway_requests_metric"], opts["gateway_latency_metric"]
    window, ratio = opts["rate_window"], opts["api_error_ratio"]
    quantile, seconds = opts["api_latency_quantile"], opts["api_latency_seconds"]
    routes = ", ".join(plan["fleet"].get("gateway_routes", {}).get("api", [])) or "the api routes"
    api_hosts = ", ".join(n for n, h in plan["hosts"].items() if "api" in h["services"]) or "the app hosts"
    return [
        _rule("DifyApiErrorRate",
              "%s >= %s" % (api_error_share(host, opts), ratio),
              "critical", host,
              "%s or more of the api requests through %s (%s) failed with 5xx; fix: read the api logs on %s, "
              "check Postgres connections and Redis, and the api's memory against its planned limit."
              % (_percent(ratio), host, routes, api_hosts),
              "%s{route=\"api\",status=~\"5..\"} over all api requests, over %s." % (requests, window),
              opts["pending_for"], "api"),
        _rule("DifyApiLatencyP99",
              "%s >= %s" % (api_latency(host, opts), seconds),
              "warning", host,
              "The p%g latency of the api routes through %s is %gs or more; fix: check the api's CPU and memory "
              "against the plan, Postgres connections and the model provider; streaming replies count with their "
              "full duration." % (quantile * 100, host, seconds),
              "histogram_quantile over %s_bucket{route=\"api\"}, over %s." % (latency, window),
              opts["pending_for"], "api"),
    ]


def gpu_rule(plan: Mapping[str, Any], host: str, opts: Mapping[str, Any]) -> Dict[str, Any]:
    """GPU memory at ``gpu_memory_ratio``; refused when the plan's own vLLM share reaches it."""
    inference = plan["hosts"][host]["settings"].get("inference") or {}
    ratio = opts["gpu_memory_ratio"]
    share = planned_gpu_share(plan, host, opts)
    return _rule(
        "DifyGpuMemoryHigh", "%s >= %s" % (gpu_memory_used(host), ratio), "warning", host,
        "A GPU of %s has %s or more of its memory in use (the plan gives %s %s, %s of each GPU, %s MiB of VRAM); "
        "fix: look for a second process on the GPU (nvidia-smi) or lower the model's context or concurrency."
        % (host, _percent(ratio), inference.get("engine", "inference"), inference.get("model", "?"),
           share if share is not None else "?", inference.get("vram_budget_mib", "?")),
        "GPU memory used over total, from the %s exporter." % opts["gpu_exporter"],
        opts["pending_for"], "inference")


def gpu_collector_rules(host: str, opts: Mapping[str, Any]) -> List[Dict[str, Any]]:
    """NVML failing, and XID errors, from the role's NVML collector (``gpu_exporter: textfile``)."""
    return [
        _rule("DifyGpuNvmlDown", "min by (host, error) (difyops_gpu_nvml_up%s) == 0" % _selector(host=host), "critical", host,
              "NVML does not answer on %s ({{ $labels.error }}): no GPU figure is read and the inference engine has "
              "likely lost its GPUs; fix: nvidia-smi on the host; after a driver upgrade (a driver/library version "
              "mismatch) reboot it." % host,
              "difyops_gpu_nvml_up of the collection's NVML collector.", opts["pending_for"], "inference"),
        _rule("DifyGpuXidError", "%s > 0" % gpu_xid_errors(host, opts), "warning", host,
              "GPU {{ $labels.gpu }} of %s reported an XID error within %s; fix: look the XID up in NVIDIA's XID "
              "catalogue (DCGM_FI_DEV_XID_ERRORS holds the last one; the kernel log has its details)." % (host, opts["rate_window"]),
              "increase of difyops_gpu_xid_errors_total over %s." % opts["rate_window"], None, "inference"),
    ]


def slice_rule(plan: Mapping[str, Any], host: str, opts: Mapping[str, Any]) -> Dict[str, Any]:
    """The stack's slice at ``slice_memory_ratio`` of its planned MemoryHigh (systemd throttles there)."""
    slice_plan = plan["hosts"][host]["host_tuning"]["slice"]
    high = planned_memory_high_mb(plan, host)
    name = slice_plan.get("name", "dify.slice")
    ratio = opts["slice_memory_ratio"]
    return _rule(
        "DifySliceMemoryHigh",
        "%s >= %s * %d" % (slice_working_set(host, opts), ratio, high * MIB),
        "warning", host,
        "%s on %s is at %s of its planned MemoryHigh %d MiB (MemoryMax %s MiB): every container is being "
        "throttled; fix: find the service that grows (DifyServiceMemoryHigh), or give the host more memory and re-plan."
        % (name, host, _percent(ratio), high, slice_plan.get("memory_max_mb", "?")),
        "Working set of the whole slice; above MemoryHigh systemd reclaims and throttles.",
        opts["pending_for"])


def host_rules(plan: Mapping[str, Any], host: str, opts: Mapping[str, Any]) -> List[Dict[str, Any]]:
    """Every alert of one host, in a fixed order."""
    roles = exporter_hosts(plan, opts["container_exporter"], opts["gpu_exporter"])
    rules = memory_rules(plan, host, opts) + [host_oom_rule(plan, host, opts), slice_rule(plan, host, opts)]
    if host in roles["postgres"]:
        rules.append(postgres_rule(plan, host, opts))
    if host in roles["redis"]:
        rules.extend(redis_rules(plan, host, opts))
    if host in roles["gateway_log"]:
        rules.extend(gateway_rules(plan, host, opts))
    if host in gpu_hosts(plan):
        rules.append(gpu_rule(plan, host, opts))
        if opts["gpu_exporter"] == "textfile":
            rules.extend(gpu_collector_rules(host, opts))
    return rules


def alert_rules(plan: Any, options: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """A Prometheus rules document ``{"groups": [...]}``: one group per host (``difyops-dify-<host>``)
    with every alert whose threshold the plan sets for that host."""
    plan = checked_plan(plan)
    opts = checked_options(options)
    return {"groups": [{"name": "difyops-dify-%s" % host, "rules": host_rules(plan, host, opts)}
                       for host in plan["hosts"]]}


__all__ = ("scrape_targets", "alert_rules", "host_exporters", "redis_check_single_keys", "checked_plan", "checked_options",
           "host_port", "DEFAULTS", "DIFY_CELERY_QUEUES")

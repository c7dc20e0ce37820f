# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One host's Compose project, built from the fleet plan (pure Python, no Ansible imports).

Every number comes from the plan; this module only places it. Secrets never appear here: the
project refers to them as ``${NAME:?...}`` and Compose interpolates them from the project's
``.env`` file, which the role writes with mode 0600.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple
from urllib.parse import urlsplit

from ..sizing import services as registry
from ..sizing.catalog import DIFY_UPLOAD_LIMITS_MB
from ..sizing.fleet import INFERENCE_CONTAINER_PORTS, PORTS
from ..sizing.fleet import inference_endpoint as fleet_inference_endpoint
from ..sizing.validate import as_bool, bracketed, host_port, unusable_host
from . import firewall, versions
from .defaults import DEFAULT_GATEWAY_PORT, DEFAULT_PROJECT_DIR, DIFY_UID

# Variables of the Go runtime (read by weaviate and the plugin daemon), not Dify's own settings.
RUNTIME_ENV = frozenset(("GOMEMLIMIT", "GOMAXPROCS"))
# Secrets the project refers to; the role generates or takes each one (see dify_secrets): every
# version's (stack/versions.py), then the ones the operator can only give.
GIVEN_ONLY_SECRETS = ("S3_ACCESS_KEY", "S3_SECRET_KEY", "HF_TOKEN")
SECRET_VARIABLES = tuple(dict.fromkeys(list(versions.every_secret()) + list(GIVEN_ONLY_SECRETS)))
# Settings that browsers, e-mails, webhooks and the plugin daemon follow: Dify 1.13.3's api image
# bakes http://127.0.0.1:5001 and :3000 into the first four, so each is set from the public URL.
PUBLIC_URL_VARIABLES = ("CONSOLE_API_URL", "CONSOLE_WEB_URL", "SERVICE_API_URL", "APP_WEB_URL", "FILES_URL", "TRIGGER_URL")
# The extension field of compose.yaml that records what the collection deployed.
VERSION_FIELD = "x-difyops"
# Internal networks (no route out): the SSRF proxies' and the agent sandbox's.
INTERNAL_NETWORKS = ("ssrf_proxy_network", "agent_sandbox_network", "local_sandbox_proxy_network")
# Services run on the host, outside the project, when the fleet is split over several hosts.
HOST_SERVICES_WHEN_SPLIT = registry.names(host_when_split=True)
# Inference engines' images; the weights each plan tier loads come from the plan (sizing/gpu.py).
INFERENCE_IMAGES = {"vllm": "vllm/vllm-openai:v0.9.2", "ollama": "ollama/ollama:0.9.6"}
# PgBouncer, when the plan puts it in front of Postgres: edoburu/docker-pgbouncer, whose entry
# point writes pgbouncer.ini and userlist.txt from its environment at start (PgBouncer 1.24.1).
PGBOUNCER_IMAGE = "edoburu/pgbouncer:v1.24.1-p1"
# The variables of that entry point the collection sets (its contract: the image's entrypoint.sh).
PGBOUNCER_ENV = frozenset(("DB_HOST", "DB_PORT", "DB_USER", "DB_PASSWORD", "DB_NAME", "AUTH_TYPE", "POOL_MODE",
                           "MAX_CLIENT_CONN", "DEFAULT_POOL_SIZE", "MAX_DB_CONNECTIONS", "IGNORE_STARTUP_PARAMETERS",
                           "LISTEN_ADDR", "LISTEN_PORT", "STATS_USERS", "ADMIN_USERS", "SERVER_RESET_QUERY",
                           "QUERY_WAIT_TIMEOUT", "SERVER_IDLE_TIMEOUT", "LOG_CONNECTIONS", "LOG_DISCONNECTIONS",
                           "LOG_POOLER_ERRORS", "LOG_STATS", "STATS_PERIOD", "VERBOSE"))
# Services that are not Dify's: their variables are checked against their images' contracts.
OTHER_SERVICE_ENV = {"pgbouncer": PGBOUNCER_ENV}
# What dify_stack_env_extra may set although the collection writes it: defaults, not derived values.
OPERATOR_DEFAULTS = frozenset(("LOG_LEVEL", "TEXT_GENERATION_TIMEOUT_MS"))
# Variables that an option owns whether or not it writes them (upstream's defaults stand when it
# does not), so that dify_stack_env_extra never bypasses the option's checks.
OPTION_VARIABLES = ("PIP_MIRROR_URL", "MARKETPLACE_ENABLED")
# Where to change what the collection manages, by variable name or prefix (the first that matches).
MANAGED_KNOBS: Tuple[Tuple[Tuple[str, ...], str], ...] = (
    (("PIP_MIRROR_URL",), "use dify_stack_pip_mirror_url: it is checked, and the SSRF proxy admits it for the sandbox"),
    (("MARKETPLACE_ENABLED",), "use dify_stack_marketplace: it also drops the SSRF proxy's marketplace allowance"),
    (PUBLIC_URL_VARIABLES + ("ENDPOINT_URL_TEMPLATE", "INTERNAL_FILES_URL"), "use dify_stack_public_url"),
    (("STORAGE_TYPE", "OPENDAL_", "S3_", "PLUGIN_STORAGE_", "AWS_"), "use dify_stack_object_storage (dify_object_storage)"),
    (("MIGRATION_ENABLED",), "the plan runs the migrations on one app host, fleet.migration_host"),
    (("SERVER_WORKER_", "CELERY_WORKER_", "CELERY_AUTO_SCALE", "SQLALCHEMY_", "GUNICORN_", "GOMAXPROCS", "GOMEMLIMIT",
      "DB_MAX_OPEN_CONNS", "PGVECTOR_MAX_CONNECTION", "MAX_CLIENT_CONN", "DEFAULT_POOL_SIZE", "MAX_DB_CONNECTIONS",
      "OLLAMA_"), "use dify_sizing_overrides: sizes, workers and pools come from the plan"),
    (("VECTOR_STORE", "WEAVIATE_", "QDRANT_", "PGVECTOR_"), "use dify_vector_store"),
    (("DB_", "REDIS_", "CELERY_BROKER_URL", "PLUGIN_DAEMON_URL", "CODE_EXECUTION_", "SSRF_PROXY_"),
     "use the inventory's components: the plan places each service and gives its address"),
    (("UPLOAD_", "PLUGIN_MAX_PACKAGE_SIZE", "MAX_PLUGIN_PACKAGE_SIZE"), "the upload limits follow the gateway's"),
)
OLLAMA_PORT = INFERENCE_CONTAINER_PORTS["ollama"]
WEAVIATE_GRPC_PORT = 50051
# Where services listen inside the project (services.py): the sandbox, the SSRF proxies (one
# squid port for both), and Dify 1.16's agent services: the agent backend's API and the local
# sandbox's shellctl.
SANDBOX_PORT = registry.port("sandbox")
SSRF_PORT = registry.port("ssrf_proxy")
AGENT_BACKEND_PORT = registry.port("agent_backend")
SHELLCTL_PORT = registry.port("local_sandbox")
# Redis database of the agent backend's runs (upstream's default; Dify uses 0, Celery 1).
AGENT_REDIS_DB = 2
PLUGIN_DEBUGGING_PORT = 5003
DB_USER = "dify"
DATABASES = ("dify", "dify_plugin")
# The data directory of the PostgreSQL containers (below their volume, as upstream's compose sets it).
POSTGRES_PGDATA = "/var/lib/postgresql/data/pgdata"
# The pgvector image's superuser (its environment has no POSTGRES_USER).
PGVECTOR_USER = "postgres"
# Project-relative directories each service keeps its data in (created by the role).
DATA_DIRS = registry.data_dirs()


# A single node's gateway writes a copy of its access log here, on the host (the same path inside
# its container), for the host's mtail (roles/monitoring); dify_stack rotates it (logrotate).
GATEWAY_LOG_DIR = "/var/log/dify-gateway"
# logrotate's file for that log.
GATEWAY_LOGROTATE = "/etc/logrotate.d/difyops-dify-gateway"
# DEFAULT_PROJECT_DIR, DEFAULT_GATEWAY_PORT and DIFY_UID are in defaults.py (imported above).


class StackError(ValueError):
    """An option that cannot make a working project; the message names the setting and the fix."""


def secret(name: str) -> str:
    """A reference to a secret that Compose takes from the project's .env file."""
    return "${%s:?%s is missing from .env}" % (name, name)


def reference(version: str) -> Any:
    """The upstream reference of a Dify version; KeyError names the supported ones."""
    return versions.record(version).reference


def plan_version(plan: Mapping[str, Any], given: str = "") -> str:
    """The Dify version of the plan (plans before versions were recorded are the LTS's). A version
    given to the role that differs from the plan's is refused: the plan sized the services of its
    own version."""
    planned = str(plan.get("options", {}).get("version") or versions.DEFAULT_VERSION)
    if given:
        versions.record(given)
    if given and str(given) != planned:
        raise StackError("dify_stack_version is %s but the plan was computed for Dify %s; set dify_stack_version "
                         "for the whole fleet (inventory group_vars), so that the plan and the stack agree"
                         % (given, planned))
    return planned


def hosts_with(plan: Mapping[str, Any], component: str) -> List[Mapping[str, Any]]:
    return [h for h in plan["hosts"].values() if component in h["components"]]


def endpoint(plan: Mapping[str, Any], component: str, service: str) -> Tuple[str, int]:
    """Where app hosts reach a data service (or the fleet's one plugin daemon, ``component``
    ``plugin_daemon_host``): its name on one host, the holder's address and published port on a
    split fleet."""
    if plan["fleet"]["single_node"]:
        return service, registry.port(service)
    if component == "plugin_daemon_host":
        holder = plan["hosts"][plan["fleet"]["plugin_daemon_host"]]
    else:
        holder = hosts_with(plan, component)[0]
    return str(holder["address"]), PORTS[service]


def pooled(plan: Mapping[str, Any]) -> bool:
    """Whether the plan puts PgBouncer in front of the database host's Postgres."""
    return plan["fleet"].get("postgres_pooler", "none") == "pgbouncer"


def database_endpoint(plan: Mapping[str, Any]) -> Tuple[str, int]:
    """Where Dify's api, worker and beat reach their database: PgBouncer when the plan has one."""
    return endpoint(plan, "database", "pgbouncer" if pooled(plan) else "db_postgres")


def public_url(plan: Mapping[str, Any], given: str = "", port: int = 80) -> str:
    """The URL browsers, webhooks and other hosts reach the deployment at, without a trailing slash:
    the operator's, else http:// the first gateway host's address (and port unless 80)."""
    if given:
        url = given.rstrip("/")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
            raise StackError("dify_stack_public_url must be an absolute http(s) URL without query or fragment "
                             "(got '%s'), e.g. https://dify.example.com" % given)
        if unusable_host(parts.hostname):
            raise StackError("dify_stack_public_url points at %s, which leads every browser and host back to "
                             "itself: give the name or address users reach the gateway at" % parts.hostname)
        return url
    gateways = plan["fleet"].get("gateway_hosts") or []
    address = str(plan["hosts"][gateways[0]].get("address") or "") if gateways else ""
    if not address or unusable_host(address):
        raise StackError("no public URL: the gateway host %s has no usable address (%s); set dify_stack_public_url "
                         "to the URL users reach Dify at" % (gateways[0] if gateways else "(none)", address or "none"))
    host = "[%s]" % address if ":" in address else address
    return "http://%s%s" % (host, "" if int(port) == 80 else ":%d" % int(port))


def url_env(url: str) -> Dict[str, str]:
    """Dify's URL settings from the public URL; INTERNAL_FILES_URL is where the plugin daemon
    fetches files, the api beside it."""
    env = {name: url for name in PUBLIC_URL_VARIABLES}
    env["ENDPOINT_URL_TEMPLATE"] = url + "/e/{hook_id}"
    env["INTERNAL_FILES_URL"] = "http://api:%d" % PORTS["api"]
    return env


def pip_mirror_url(given: Any) -> str:
    """The Python package index the plugin daemon and the sandbox install from (PIP_MIRROR_URL):
    empty for upstream's default (pypi.org), else an http(s) URL the containers can reach."""
    url = str(given or "").strip()
    if not url:
        return ""
    parts = urlsplit(url)
    try:
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        port_ok = False
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.fragment or not port_ok:
        raise StackError("dify_stack_pip_mirror_url must be an absolute http(s) URL of a Python package index "
                         "(got '%s'), e.g. https://pypi.example.com/simple" % given)
    if parts.username or parts.password:
        raise StackError("dify_stack_pip_mirror_url carries credentials, which would be written in clear into "
                         "compose.yaml: let the mirror admit the hosts' addresses instead")
    if unusable_host(parts.hostname):
        raise StackError("dify_stack_pip_mirror_url points at %s, which is the container itself for the plugin daemon "
                         "and the sandbox: give the name or address the hosts reach the mirror at" % parts.hostname)
    return url


def pip_mirror_destination(url: str) -> Optional[Dict[str, Any]]:
    """What the SSRF proxy admits for the sandbox's installs from the mirror: its host (a name, or
    an address when ``address``) and port."""
    if not url:
        return None
    parts = urlsplit(url)
    host = str(parts.hostname)
    try:
        ipaddress.ip_address(host)
        address = True
    except ValueError:
        address = False
    return {"host": host, "address": address, "port": parts.port or (443 if parts.scheme == "https" else 80)}


def image_registry(given: Any) -> str:
    """A registry, with an optional path, that serves Docker Hub's images under its own name
    (``registry.example.com/dockerhub``): empty for Docker Hub itself."""
    registry = str(given or "").strip().rstrip("/")
    if registry and not re.match(r"^[A-Za-z0-9.-]+(:[0-9]+)?(/[a-z0-9._-]+)*$", registry):
        raise StackError("dify_stack_image_registry must be a registry host with an optional port and path, without "
                         "scheme or tag (got '%s'), e.g. registry.example.com/dockerhub" % given)
    return registry


def on_registry(image: str, registry: str) -> str:
    """Docker Hub's image as the registry serves it (``postgres:15`` is ``library/postgres:15``
    there); an image that names its own registry (``ghcr.io/...``, ``localhost/...``) is kept."""
    if not registry:
        return image
    parts = image.split("/")
    if len(parts) > 1 and parts[0] in ("docker.io", "index.docker.io", "registry-1.docker.io"):
        parts = parts[1:]
    elif len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        return image
    return "%s/%s" % (registry, "/".join(parts if len(parts) > 1 else ["library"] + parts))


def project_services(plan: Mapping[str, Any], host: str) -> List[str]:
    """The Compose services this host's project runs: its planned services, less those the split
    layout runs on the host itself, and less inference when the plan found no GPU for it."""
    host_plan = plan["hosts"][host]
    services = []
    for name in host_plan["services"]:
        if not plan["fleet"]["single_node"] and name in HOST_SERVICES_WHEN_SPLIT:
            continue
        if name == "inference" and not host_plan["settings"].get("inference", {}).get("enabled"):
            continue
        services.append(name)
    return services


def resources(planned: Mapping[str, Any]) -> Dict[str, Any]:
    """CPU shares, deploy (replicas, resources) and memswap_limit from a service's plan. Memory
    is a hard limit; CPU is shared by weight, with a quota only where the plan sets one (Compose's
    CPU reservations do nothing outside Swarm, so none is written)."""
    limits = {"memory": "%dM" % planned["memory_mb"]}
    if planned["cpu_quota"]:
        limits["cpus"] = "%g" % planned["cpus"]
    deploy: Dict[str, Any] = {"resources": {"limits": limits,
                                            "reservations": {"memory": "%dM" % planned["memory_reserved_mb"]}}}
    if planned["replicas"] > 1:
        deploy["replicas"] = planned["replicas"]
    spec: Dict[str, Any] = {"cpu_shares": planned["cpu_shares"], "deploy": deploy}
    if planned.get("shm_size_mb"):
        spec["shm_size"] = "%dM" % planned["shm_size_mb"]
    if planned.get("memswap_mb"):
        spec["memswap_limit"] = "%dM" % planned["memswap_mb"]
    return spec


def _vector_env(plan: Mapping[str, Any]) -> Dict[str, str]:
    kind = plan["fleet"]["vector_store"]
    host, port = endpoint(plan, "vector_store", kind)
    env = {"VECTOR_STORE": kind}
    if kind == "weaviate":
        grpc = WEAVIATE_GRPC_PORT
        env.update(WEAVIATE_ENDPOINT="http://%s" % host_port(host, port), WEAVIATE_GRPC_ENDPOINT="grpc://%s" % host_port(host, grpc),
                   WEAVIATE_API_KEY=secret("WEAVIATE_API_KEY"))
    elif kind == "qdrant":
        env.update(QDRANT_URL="http://%s" % host_port(host, port), QDRANT_API_KEY=secret("QDRANT_API_KEY"))
    else:
        vector_host = hosts_with(plan, "vector_store")[0]
        per_process = vector_host["settings"]["vector_store"]["pgvector_max_connection"]
        env.update(PGVECTOR_HOST=host, PGVECTOR_PORT=str(port), PGVECTOR_USER=PGVECTOR_USER,
                   PGVECTOR_PASSWORD=secret("PGVECTOR_PASSWORD"), PGVECTOR_DATABASE="dify",
                   PGVECTOR_MAX_CONNECTION=str(per_process))
    return env


def _storage_env(storage: Mapping[str, Any]) -> Tuple[Dict[str, str], Dict[str, str]]:
    """Dify's and the plugin daemon's object storage settings: local files, or S3 when given."""
    if not storage:
        return {"STORAGE_TYPE": "opendal", "OPENDAL_SCHEME": "fs", "OPENDAL_FS_ROOT": "storage"}, \
            {"PLUGIN_STORAGE_TYPE": "local"}
    # Read as Ansible reads booleans: the string "false" (an INI inventory's) is false.
    path_style = "false" if as_bool(storage.get("path_style", True)) is False else "true"
    dify = {"STORAGE_TYPE": "s3", "S3_ENDPOINT": str(storage["endpoint"]), "S3_BUCKET_NAME": str(storage["bucket"]),
            "S3_REGION": str(storage.get("region") or "us-east-1"), "S3_USE_AWS_MANAGED_IAM": "false",
            # A field of Dify's S3 settings that .env.example does not list (boto3's addressing style).
            "S3_ADDRESS_STYLE": "path" if path_style == "true" else "virtual",
            "S3_ACCESS_KEY": secret("S3_ACCESS_KEY"), "S3_SECRET_KEY": secret("S3_SECRET_KEY")}
    plugin = {"PLUGIN_STORAGE_TYPE": "aws_s3", "S3_ENDPOINT": str(storage["endpoint"]),
              "PLUGIN_STORAGE_OSS_BUCKET": str(storage.get("plugin_bucket") or storage["bucket"]),
              "S3_USE_PATH_STYLE": path_style, "S3_USE_AWS": "false",
              "AWS_REGION": str(storage.get("region") or "us-east-1"),
              "AWS_ACCESS_KEY": secret("S3_ACCESS_KEY"), "AWS_SECRET_KEY": secret("S3_SECRET_KEY")}
    return dify, plugin


def app_env(plan: Mapping[str, Any], storage: Mapping[str, Any], url: str, marketplace: bool = True) -> Dict[str, str]:
    """The settings api, worker and worker_beat share (Dify's x-shared-env, 1.14+'s shared.env).
    Without the marketplace, none of them calls marketplace.dify.ai (plugin listings, upgrade checks)."""
    db_host, db_port = database_endpoint(plan)
    redis_host, redis_port = endpoint(plan, "redis", "redis")
    env = {
        "LOG_LEVEL": "INFO", "DEPLOY_ENV": "PRODUCTION", "SECRET_KEY": secret("SECRET_KEY"),
        "DB_TYPE": "postgresql", "DB_USERNAME": DB_USER, "DB_PASSWORD": secret("DB_PASSWORD"),
        # Dify joins DB_HOST:DB_PORT into its SQLAlchemy URL: an IPv6 address needs its brackets.
        "DB_HOST": bracketed(db_host), "DB_PORT": str(db_port), "DB_DATABASE": DATABASES[0],
        "REDIS_HOST": redis_host, "REDIS_PORT": str(redis_port), "REDIS_PASSWORD": secret("REDIS_PASSWORD"),
        "REDIS_DB": "0",
        "CELERY_BROKER_URL": "redis://:%s@%s/1" % (secret("REDIS_PASSWORD"), host_port(redis_host, redis_port)),
        "CODE_EXECUTION_ENDPOINT": "http://sandbox:%d" % SANDBOX_PORT,
        "CODE_EXECUTION_API_KEY": secret("SANDBOX_API_KEY"),
        "PLUGIN_DAEMON_URL": "http://%s" % host_port(*endpoint(plan, "plugin_daemon_host", "plugin_daemon")),
        "PLUGIN_DAEMON_KEY": secret("PLUGIN_DAEMON_KEY"),
        "PLUGIN_DIFY_INNER_API_KEY": secret("PLUGIN_DIFY_INNER_API_KEY"),
        "SSRF_PROXY_HTTP_URL": "http://ssrf_proxy:%d" % SSRF_PORT,
        "SSRF_PROXY_HTTPS_URL": "http://ssrf_proxy:%d" % SSRF_PORT,
        "MIGRATION_ENABLED": "false",
    }
    env.update({name: str(limit) for name, limit in DIFY_UPLOAD_LIMITS_MB.items() if name != "PLUGIN_MAX_PACKAGE_SIZE"})
    env["PLUGIN_MAX_PACKAGE_SIZE"] = str(DIFY_UPLOAD_LIMITS_MB["PLUGIN_MAX_PACKAGE_SIZE"] * 1024 * 1024)
    env.update(url_env(url))
    env.update(_vector_env(plan))
    env.update(_storage_env(storage)[0])
    if "api_websocket" in versions.record(plan_version(plan)).left_out:
        # Real-time collaboration needs api_websocket, which the collection does not run.
        env["ENABLE_COLLABORATION_MODE"] = "false"
    if not marketplace:
        env["MARKETPLACE_ENABLED"] = "false"
    return env


def agent_env() -> Dict[str, str]:
    """How api and worker reach the host's agent backend (Dify 1.16+)."""
    return {"AGENT_BACKEND_BASE_URL": "http://agent_backend:%d" % AGENT_BACKEND_PORT,
            "AGENT_BACKEND_API_TOKEN": secret("DIFY_AGENT_API_TOKEN")}


def _service(image: str, env: Mapping[str, str], planned: Mapping[str, Any], **extra: Any) -> Dict[str, Any]:
    spec: Dict[str, Any] = {"image": image, "restart": "always"}
    if env:
        spec["environment"] = dict(env)
    spec.update(extra)
    spec.update(resources(planned))
    return spec


def _published(plan: Mapping[str, Any], host_plan: Mapping[str, Any], ports: Sequence[Tuple[int, int]],
               loopback: bool = False) -> Dict[str, Any]:
    """Ports a split fleet publishes on the host's own (private) address for the other hosts. On a
    single node, with ``loopback``, the same ports on 127.0.0.1 only: a data service the host's own
    exporters read (roles/monitoring; docs/monitoring.md), which no other machine can reach."""
    if plan["fleet"]["single_node"]:
        return {"ports": ["127.0.0.1:%d:%d" % port for port in ports]} if loopback else {}
    return _publish_any(host_plan, ports)


def _healthcheck(test: Sequence[str], start_period: str = "30s") -> Dict[str, Any]:
    return {"healthcheck": {"test": list(test), "interval": "10s", "timeout": "5s", "retries": 30,
                            "start_period": start_period}}


def _depends(services: Sequence[str], wanted: Mapping[str, str]) -> Dict[str, Any]:
    local = {name: {"condition": condition} for name, condition in wanted.items() if name in services}
    return {"depends_on": local} if local else {}


def _plugin_daemon(plan: Mapping[str, Any], host: str, images: Mapping[str, str], storage: Mapping[str, Any],
                   services: Sequence[str], shared: Mapping[str, str], pip_mirror: str = "") -> Dict[str, Any]:
    """The fleet's one plugin daemon, on the app host that runs the migrations."""
    host_plan = plan["hosts"][host]
    db_host, db_port = endpoint(plan, "database", "db_postgres")
    redis_host, redis_port = endpoint(plan, "redis", "redis")
    plugin_env = {
        "DB_TYPE": "postgresql", "DB_USERNAME": DB_USER, "DB_PASSWORD": secret("DB_PASSWORD"), "DB_HOST": db_host,
        "DB_PORT": str(db_port), "DB_DATABASE": DATABASES[1], "DB_SSL_MODE": "disable",
        "REDIS_HOST": redis_host, "REDIS_PORT": str(redis_port), "REDIS_PASSWORD": secret("REDIS_PASSWORD"),
        "SERVER_PORT": str(PORTS["plugin_daemon"]), "SERVER_KEY": secret("PLUGIN_DAEMON_KEY"),
        "DIFY_INNER_API_URL": "http://api:%d" % PORTS["api"], "DIFY_INNER_API_KEY": secret("PLUGIN_DIFY_INNER_API_KEY"),
        "MAX_PLUGIN_PACKAGE_SIZE": shared["PLUGIN_MAX_PACKAGE_SIZE"], "PLUGIN_WORKING_PATH": "/app/storage/cwd",
        # The daemon refuses to start without its remote-debugging listener (on by default); the
        # port stays unpublished, as upstream's compose leaves it.
        "PLUGIN_REMOTE_INSTALLING_HOST": "0.0.0.0", "PLUGIN_REMOTE_INSTALLING_PORT": str(PLUGIN_DEBUGGING_PORT),
        "GOMAXPROCS": str(host_plan["settings"]["plugin_daemon"]["gomaxprocs"]),
        # The pool the plan counts in max_connections (the daemon's own default is 30).
        "DB_MAX_OPEN_CONNS": str(host_plan["settings"]["plugin_daemon"]["db_connections"]),
    }
    plugin_env.update(_storage_env(storage)[1])
    if pip_mirror:
        # Where the daemon installs each plugin's Python dependencies from.
        plugin_env["PIP_MIRROR_URL"] = pip_mirror
    record = versions.record(plan_version(plan))
    extra: Dict[str, Any] = {}
    if record.plugin_daemon_networks != ("default",):
        extra["networks"] = list(record.plugin_daemon_networks)
    return _service(images["plugin_daemon"], plugin_env, host_plan["services"]["plugin_daemon"],
                    volumes=["./%s:/app/storage" % DATA_DIRS["plugin_daemon"]], **extra,
                    **_published(plan, host_plan, [(PORTS["plugin_daemon"], PORTS["plugin_daemon"])]),
                    **_depends(services, {"db_postgres": "service_healthy"}))


def app_services(plan: Mapping[str, Any], host: str, images: Mapping[str, str], storage: Mapping[str, Any],
                 services: Sequence[str], url: str, pip_mirror: str = "", marketplace: bool = True) -> Dict[str, Any]:
    """api, worker, worker_beat, web, sandbox, plugin_daemon and ssrf_proxy of one app host."""
    host_plan = plan["hosts"][host]
    planned, settings = host_plan["services"], host_plan["settings"]
    record = versions.record(plan_version(plan))
    shared = app_env(plan, storage, url, marketplace)
    waits = {"db_postgres": "service_healthy", "pgbouncer": "service_healthy", "redis": "service_healthy"}
    agent = agent_env() if "agent_backend" in services else {}
    if agent:
        waits["agent_backend"] = "service_started"
    storage_volume = ["./%s:/app/api/storage" % DATA_DIRS["api"]]
    networks = ["default", "ssrf_proxy_network"]
    out: Dict[str, Any] = {}
    inner_key = {"INNER_API_KEY_FOR_PLUGIN": secret("PLUGIN_DIFY_INNER_API_KEY")}
    api_env = dict(shared, **inner_key, **agent, MODE="api", MIGRATION_ENABLED="true" if plan["fleet"]["migration_host"] == host else "false",
                   SERVER_WORKER_AMOUNT=str(settings["api"]["server_worker_amount"]),
                   SERVER_WORKER_CLASS=settings["api"]["server_worker_class"],
                   SERVER_WORKER_CONNECTIONS=str(settings["api"]["server_worker_connections"]),
                   GUNICORN_TIMEOUT=str(settings["api"]["gunicorn_timeout"]),
                   SQLALCHEMY_POOL_SIZE=str(settings["api"]["sqlalchemy_pool_size"]),
                   SQLALCHEMY_MAX_OVERFLOW=str(settings["api"]["sqlalchemy_max_overflow"]))
    out["api"] = _service(images["api"], api_env, planned["api"], volumes=storage_volume, networks=networks,
                          **_published(plan, host_plan, [(PORTS["api"], PORTS["api"])]),
                          **_healthcheck(["CMD", "curl", "-fsS", "http://localhost:%d/health" % PORTS["api"]], "120s"),
                          **_depends(services, waits))
    worker = settings["worker"]
    # One gevent process per container: its greenlets share the pool, replicas use more cores.
    worker_env = dict(shared, **inner_key, **agent, MODE="worker", CELERY_WORKER_CLASS=worker["celery_worker_class"],
                      CELERY_WORKER_AMOUNT=str(worker["celery_worker_amount"]),
                      CELERY_AUTO_SCALE="true" if worker["celery_auto_scale"] else "false",
                      SQLALCHEMY_POOL_SIZE=str(worker["sqlalchemy_pool_size"]),
                      SQLALCHEMY_MAX_OVERFLOW=str(worker["sqlalchemy_max_overflow"]))
    out["worker"] = _service(images["worker"], worker_env, planned["worker"], volumes=storage_volume,
                             networks=networks, **_depends(services, waits))
    if "worker_beat" in services:
        beat = settings["worker_beat"]
        beat_env = dict(shared, MODE="beat", SQLALCHEMY_POOL_SIZE=str(beat["sqlalchemy_pool_size"]),
                        SQLALCHEMY_MAX_OVERFLOW=str(beat["sqlalchemy_max_overflow"]))
        out["worker_beat"] = _service(images["worker_beat"], beat_env, planned["worker_beat"],
                                      networks=networks, **_depends(services, waits))
    out["web"] = _service(images["web"], {"CONSOLE_API_URL": "", "APP_API_URL": "", "NEXT_TELEMETRY_DISABLED": "1",
                                          "TEXT_GENERATION_TIMEOUT_MS": "60000"},
                          planned["web"], **_published(plan, host_plan, [(PORTS["web"], PORTS["web"])]))
    sandbox_env = {
        "API_KEY": secret("SANDBOX_API_KEY"), "GIN_MODE": "release", "WORKER_TIMEOUT": "15", "ENABLE_NETWORK": "true",
        "HTTP_PROXY": "http://ssrf_proxy:%d" % SSRF_PORT, "HTTPS_PROXY": "http://ssrf_proxy:%d" % SSRF_PORT,
        "SANDBOX_PORT": str(SANDBOX_PORT)}
    if pip_mirror:
        # Where the sandbox installs the code nodes' dependencies from (through the SSRF proxy).
        sandbox_env["PIP_MIRROR_URL"] = pip_mirror
    out["sandbox"] = _service(images["sandbox"], sandbox_env, planned["sandbox"],
                              volumes=["./%s:/dependencies" % DATA_DIRS["sandbox"], "./sandbox/conf:/conf"],
                              networks=["ssrf_proxy_network"],
                              **_healthcheck(["CMD", "curl", "-fsS", "http://localhost:%d/health" % SANDBOX_PORT]))
    if "plugin_daemon" in services:
        out["plugin_daemon"] = _plugin_daemon(plan, host, images, storage, services, shared, pip_mirror)
    squid_env = {"HTTP_PORT": str(SSRF_PORT), "COREDUMP_DIR": "/var/spool/squid"}
    if record.sandbox_reverse_proxy:
        squid_env.update(REVERSE_PROXY_PORT=str(SANDBOX_PORT), SANDBOX_HOST="sandbox", SANDBOX_PORT=str(SANDBOX_PORT))
    out["ssrf_proxy"] = _service(images["ssrf_proxy"], squid_env, planned["ssrf_proxy"],
                                 volumes=["./ssrf_proxy/squid.conf:/etc/squid/squid.conf:ro"], networks=networks,
                                 # squid resolves its sandbox peer once at start (then only on reload or hourly).
                                 **_depends(services, {"sandbox": "service_started"} if record.sandbox_reverse_proxy else {}))
    out.update(agent_services(plan, host, images, services))
    return {name: spec for name, spec in out.items() if name in services}


def agent_services(plan: Mapping[str, Any], host: str, images: Mapping[str, str], services: Sequence[str]) -> Dict[str, Any]:
    """Dify 1.16's agent backend, its local sandbox and the sandbox's own SSRF proxy, on every app
    host. The sandbox shares an internal network with the backend and another with its proxy only,
    so it has no route to the api or the databases; the proxy admits the backend's stub API and the
    api's signed file URLs, refuses every other private destination and lets the rest out."""
    if "agent_backend" not in services:
        return {}
    planned = plan["hosts"][host]["services"]
    redis_host, redis_port = endpoint(plan, "redis", "redis")
    daemon = "http://%s" % host_port(*endpoint(plan, "plugin_daemon_host", "plugin_daemon"))
    backend_env = {
        "DIFY_AGENT_REDIS_URL": "redis://:%s@%s/%d" % (secret("REDIS_PASSWORD"), host_port(redis_host, redis_port), AGENT_REDIS_DB),
        "DIFY_AGENT_REDIS_PREFIX": "dify-agent",
        "DIFY_AGENT_PLUGIN_DAEMON_URL": daemon, "DIFY_AGENT_PLUGIN_DAEMON_API_KEY": secret("PLUGIN_DAEMON_KEY"),
        "DIFY_AGENT_INNER_API_URL": "http://api:%d" % PORTS["api"],
        # The api's INNER_API_KEY_FOR_PLUGIN, as upstream's comment requires.
        "DIFY_AGENT_INNER_API_KEY": secret("PLUGIN_DIFY_INNER_API_KEY"),
        "DIFY_AGENT_SHELLCTL_ENTRYPOINT": "http://local_sandbox:%d" % SHELLCTL_PORT,
        "DIFY_AGENT_SHELLCTL_AUTH_TOKEN": secret("DIFY_AGENT_SHELLCTL_AUTH_TOKEN"),
        "DIFY_AGENT_STUB_API_BASE_URL": "http://agent_backend:%d/agent-stub" % AGENT_BACKEND_PORT,
        "DIFY_AGENT_SERVER_SECRET_KEY": secret("DIFY_AGENT_SERVER_SECRET_KEY"),
        "DIFY_AGENT_API_TOKEN": secret("DIFY_AGENT_API_TOKEN"),
    }
    proxy = "http://agent_ssrf_proxy:%d" % SSRF_PORT
    return {
        "agent_backend": _service(images["agent_backend"], backend_env, planned["agent_backend"],
                                  networks=["default", "agent_sandbox_network"],
                                  **_depends(services, {"redis": "service_healthy", "plugin_daemon": "service_started",
                                                        "local_sandbox": "service_healthy"})),
        "local_sandbox": _service(images["local_sandbox"], {
            "SHELLCTL_AUTH_TOKEN": secret("DIFY_AGENT_SHELLCTL_AUTH_TOKEN"), "HTTP_PROXY": proxy, "HTTPS_PROXY": proxy,
            "NO_PROXY": "localhost,127.0.0.1"}, planned["local_sandbox"],
            networks=["agent_sandbox_network", "local_sandbox_proxy_network"],
            **_healthcheck(["CMD", "curl", "-fsS", "http://localhost:%d/healthz" % SHELLCTL_PORT], "10s")),
        "agent_ssrf_proxy": _service(images["agent_ssrf_proxy"], {"HTTP_PORT": str(SSRF_PORT), "COREDUMP_DIR": "/var/spool/squid"},
                                     planned["agent_ssrf_proxy"],
                                     volumes=["./ssrf_proxy/squid-agent.conf:/etc/squid/squid.conf:ro"],
                                     networks=["default", "local_sandbox_proxy_network"]),
    }


def pgbouncer_service(plan: Mapping[str, Any], host: str, images: Mapping[str, str]) -> Dict[str, Any]:
    """PgBouncer in front of the database host's Postgres, in transaction pooling, with the plan's
    client and server connections. On a single node it joins the project's network and reaches
    db_postgres by name. On a split fleet Postgres runs on the host itself and admits the Dify role
    from localhost: PgBouncer shares the host's network, reaches it on 127.0.0.1 and listens on
    loopback and the host's address, where the firewall admits only the app hosts."""
    host_plan = plan["hosts"][host]
    bouncer = host_plan["settings"]["pgbouncer"]
    single = plan["fleet"]["single_node"]
    port = bouncer["listen_port"]
    env = {
        "DB_HOST": "db_postgres" if single else "127.0.0.1", "DB_PORT": str(PORTS["db_postgres"]),
        "DB_USER": DB_USER, "DB_PASSWORD": secret("DB_PASSWORD"), "DB_NAME": bouncer["database"],
        # userlist.txt then holds the password itself, which SCRAM towards Postgres needs.
        "AUTH_TYPE": "scram-sha-256", "POOL_MODE": bouncer["pool_mode"],
        "MAX_CLIENT_CONN": str(bouncer["max_client_conn"]), "DEFAULT_POOL_SIZE": str(bouncer["default_pool_size"]),
        "MAX_DB_CONNECTIONS": str(bouncer["max_db_connections"]),
        "IGNORE_STARTUP_PARAMETERS": ",".join(bouncer["ignore_startup_parameters"]),
        "LISTEN_ADDR": "0.0.0.0" if single else "127.0.0.1,%s" % host_plan["address"], "LISTEN_PORT": str(port),
        # Dify's role may read the pooler's statistics (SHOW POOLS, SHOW CLIENTS), nothing more.
        "STATS_USERS": DB_USER,
    }
    files = bouncer["open_files"]
    extra: Dict[str, Any] = {"ulimits": {"nofile": {"soft": files, "hard": files}}}
    if single:
        extra.update(_depends(["db_postgres"], {"db_postgres": "service_healthy"}))
    else:
        extra["network_mode"] = "host"
    # A query through the pooler: healthy only once PgBouncer reaches Postgres with the credentials.
    probe = ('PGPASSWORD="$$DB_PASSWORD" psql -h 127.0.0.1 -p %d -U %s -d %s -tAc "SELECT 1" | grep -qx 1'
             % (port, DB_USER, bouncer["database"]))
    return {"pgbouncer": _service(images["pgbouncer"], env, host_plan["services"]["pgbouncer"], **extra,
                                  **_healthcheck(["CMD-SHELL", probe], "10s"))}


def data_services(plan: Mapping[str, Any], host: str, images: Mapping[str, str], services: Sequence[str]) -> Dict[str, Any]:
    """db_postgres (single node), PgBouncer, redis and the vector store of one host."""
    host_plan = plan["hosts"][host]
    planned, settings = host_plan["services"], host_plan["settings"]
    out: Dict[str, Any] = {}
    if "db_postgres" in services:
        out["db_postgres"] = _service(images["db_postgres"], {
            "POSTGRES_USER": DB_USER, "POSTGRES_PASSWORD": secret("DB_PASSWORD"), "POSTGRES_DB": DATABASES[0],
            "PGDATA": POSTGRES_PGDATA}, planned["db_postgres"],
            # config_file moves the default hba and ident files beside it (/etc/postgresql), where
            # the image has none: they stay the ones initdb wrote into PGDATA.
            command=["postgres", "-c", "config_file=/etc/postgresql/postgresql.conf",
                     "-c", "hba_file=%s/pg_hba.conf" % POSTGRES_PGDATA, "-c", "ident_file=%s/pg_ident.conf" % POSTGRES_PGDATA],
            volumes=["./%s:/var/lib/postgresql/data" % DATA_DIRS["db_postgres"],
                     "./postgres/postgresql.dify.conf:/etc/postgresql/postgresql.conf:ro"],
            **_published(plan, host_plan, [(PORTS["db_postgres"], registry.port("db_postgres"))], loopback=True),
            **_healthcheck(["CMD", "pg_isready", "-h", "localhost", "-U", DB_USER, "-d", DATABASES[0]]))
    if "pgbouncer" in services:
        out.update(pgbouncer_service(plan, host, images))
    if "redis" in services:
        redis = settings["redis"]
        out["redis"] = _service(images["redis"], {"REDISCLI_AUTH": secret("REDIS_PASSWORD")}, planned["redis"],
                                # The password reaches redis-server through the environment, so
                                # that it is not in the container's recorded command.
                                command=["sh", "-c", 'exec redis-server --requirepass "$$REDISCLI_AUTH" --maxmemory %dmb '
                                         "--maxmemory-policy %s --appendonly yes"
                                         % (redis["maxmemory_mb"], redis["maxmemory_policy"])],
                                volumes=["./%s:/data" % DATA_DIRS["redis"]],
                                **_published(plan, host_plan, [(PORTS["redis"], PORTS["redis"])], loopback=True),
                                **_healthcheck(["CMD", "redis-cli", "ping"], "10s"))
    vector = settings.get("vector_store", {})
    if "weaviate" in services:
        out["weaviate"] = _service(images["weaviate"], {
            "PERSISTENCE_DATA_PATH": "/var/lib/weaviate", "QUERY_DEFAULTS_LIMIT": "25",
            "AUTHENTICATION_ANONYMOUS_ACCESS_ENABLED": "false", "DEFAULT_VECTORIZER_MODULE": "none",
            "CLUSTER_HOSTNAME": "node1", "AUTHENTICATION_APIKEY_ENABLED": "true",
            "AUTHENTICATION_APIKEY_ALLOWED_KEYS": secret("WEAVIATE_API_KEY"),
            "AUTHENTICATION_APIKEY_USERS": "dify", "AUTHORIZATION_ADMINLIST_ENABLED": "true",
            "AUTHORIZATION_ADMINLIST_USERS": "dify", "DISABLE_TELEMETRY": "true",
            "GOMEMLIMIT": "%dMiB" % vector["gomemlimit_mb"], "GOMAXPROCS": str(vector["gomaxprocs"])},
            planned["weaviate"], volumes=["./%s:/var/lib/weaviate" % DATA_DIRS["weaviate"]],
            **_published(plan, host_plan, [(PORTS["weaviate"], PORTS["weaviate"]),
                                           (WEAVIATE_GRPC_PORT, WEAVIATE_GRPC_PORT)]))
    if "qdrant" in services:
        out["qdrant"] = _service(images["qdrant"], {"QDRANT_API_KEY": secret("QDRANT_API_KEY")}, planned["qdrant"],
                                 volumes=["./%s:/qdrant/storage" % DATA_DIRS["qdrant"]],
                                 **_published(plan, host_plan, [(PORTS["qdrant"], PORTS["qdrant"])]))
    if "pgvector" in services:
        flags: List[str] = ["postgres"]
        for name, value in sorted(vector.get("server", {}).items()):
            flags += ["-c", "%s=%s" % (name, value)]
        out["pgvector"] = _service(images["pgvector"], {
            "PGUSER": PGVECTOR_USER, "POSTGRES_PASSWORD": secret("PGVECTOR_PASSWORD"),
            "POSTGRES_DB": "dify", "PGDATA": POSTGRES_PGDATA}, planned["pgvector"], command=flags,
            volumes=["./%s:/var/lib/postgresql/data" % DATA_DIRS["pgvector"]],
            **_published(plan, host_plan, [(PORTS["pgvector"], registry.port("pgvector"))]),
            **_healthcheck(["CMD", "pg_isready", "-h", "localhost", "-U", PGVECTOR_USER]))
    return out


def _inference_command(inference: Mapping[str, Any], port: int) -> List[str]:
    """vLLM's arguments: the weights the plan chose, and its quantization and KV cache type."""
    command = ["--model", str(inference["weights"]), "--served-model-name", str(inference["model"]), "--port", str(port),
               "--gpu-memory-utilization", str(inference["gpu_memory_utilization"]),
               "--tensor-parallel-size", str(inference["tensor_parallel_size"]),
               "--max-model-len", str(inference["context_tokens"]),
               "--max-num-seqs", str(inference["concurrent_sequences"])]
    if inference.get("quantization_method"):
        command += ["--quantization", str(inference["quantization_method"])]
    if inference.get("kv_cache_dtype") == "fp8":
        command += ["--kv-cache-dtype", "fp8"]
    return command


# Ollama serves, pulls the planned tag, then loads it (an empty prompt preloads a model), so the
# health check - the tag among the loaded models - turns healthy only once the endpoint can answer.
OLLAMA_START = ('ollama serve & server=$$!; until ollama list >/dev/null 2>&1; do sleep 1; done; '
                'ollama pull "$$DIFYOPS_MODEL" && ollama run "$$DIFYOPS_MODEL" "" </dev/null || exit 1; wait $$server')


def inference_endpoint(plan: Mapping[str, Any], host: str) -> str:
    """Where Dify reaches a host's model server (the plan's rule, fleet.inference_endpoint)."""
    return fleet_inference_endpoint(plan["hosts"][host], plan["fleet"]["single_node"])


def inference_service(plan: Mapping[str, Any], host: str, images: Mapping[str, str]) -> Dict[str, Any]:
    """The OpenAI-compatible inference server on a GPU host, on the GPUs the plan assigned, loading
    the weights the plan counted (quantization, KV cache type, context, parallel sequences).

    It is never published without a key: a single node publishes nothing (the api and the plugin
    daemon reach it by its service name); a split fleet publishes vLLM on the host's own address,
    behind its API key and the firewall. Ollama has no API key, so a split fleet refuses it."""
    host_plan = plan["hosts"][host]
    inference = host_plan["settings"]["inference"]
    if inference["engine"] != "vllm" and not plan["fleet"]["single_node"]:
        raise StackError("the plan serves %s's model with %s, which has no API key: on a split fleet its port would "
                         "answer anyone who reaches the host. Run inference on a single node, give the host a GPU "
                         "the plan serves with vLLM (compute capability 7.0+ and a data-centre GPU or 40 GiB+), "
                         "or leave gpu_inference out of its components" % (host, inference["engine"]))
    devices = [{"driver": "nvidia", "device_ids": [str(u) for u in inference["gpu_uuids"]], "capabilities": ["gpu"]}]
    port = PORTS["inference"]
    if inference["engine"] == "vllm":
        env = {"VLLM_API_KEY": secret("INFERENCE_API_KEY")}
        if inference.get("gated"):
            env["HF_TOKEN"] = secret("HF_TOKEN")
        probe = ("import http.client, sys; c = http.client.HTTPConnection('localhost', %d, timeout=4); "
                 "c.request('GET', '/health'); sys.exit(c.getresponse().status != 200)" % port)
        spec = _service(images["inference"], env, host_plan["services"]["inference"],
                        command=_inference_command(inference, port), ipc="host",
                        volumes=["./%s:/root/.cache/huggingface" % DATA_DIRS["inference"]],
                        **_published(plan, host_plan, [(port, port)]),
                        **_healthcheck(["CMD", "python3", "-c", probe], "600s"))
    else:
        env = {"DIFYOPS_MODEL": str(inference["weights"]), "OLLAMA_CONTEXT_LENGTH": str(inference["context_tokens"]),
               "OLLAMA_NUM_PARALLEL": str(inference["concurrent_sequences"]), "OLLAMA_MAX_LOADED_MODELS": "1",
               "OLLAMA_KEEP_ALIVE": "-1"}
        spec = _service(images["inference"], env, host_plan["services"]["inference"], entrypoint=["/bin/sh", "-c"],
                        command=[OLLAMA_START],
                        volumes=["./%s:/root/.ollama" % DATA_DIRS["inference"]],
                        **_healthcheck(["CMD-SHELL", 'ollama ps | grep -qF "$$DIFYOPS_MODEL"'], "600s"))
    spec["deploy"]["resources"]["reservations"]["devices"] = devices
    spec["labels"] = {"io.difyops.model": str(inference["weights"])}
    return {"inference": spec}


def _publish_any(host_plan: Mapping[str, Any], ports: Sequence[Tuple[int, int]]) -> Dict[str, Any]:
    """Ports published on the host's own address (loopback for a host without one)."""
    address = host_plan.get("address") or "127.0.0.1"
    return {"ports": ["%s:%d" % (host_port(address, published), target) for published, target in ports]}


def gateway_service(plan: Mapping[str, Any], host: str, images: Mapping[str, str], port: int) -> Dict[str, Any]:
    """nginx of a single node: the only service that publishes a port on every address. Its access
    log goes to the container's output and, for the host's mtail, to ``GATEWAY_LOG_DIR``."""
    return {"nginx": _service(images["nginx"], {}, plan["hosts"][host]["services"]["nginx"],
                              volumes=["./nginx/nginx.conf:/etc/nginx/nginx.conf:ro", "%s:%s" % (GATEWAY_LOG_DIR, GATEWAY_LOG_DIR)],
                              ports=["%d:%d" % (port, port)],
                              **_depends(project_services(plan, host), {"api": "service_started",
                                                                        "web": "service_started"}))}


def images_for(version: str, overrides: Optional[Mapping[str, str]] = None, engine: str = "vllm",
               registry: str = "") -> Dict[str, str]:
    """The image of every service: the version's upstream images, then the operator's overrides - a
    service's image for every version, then a version's own mapping (``{"1.16.1": {service: image}}``),
    so that an upgrade does not keep the old version's pinned images. With a registry, every image
    of Docker Hub's (the upstream ones all are) is taken from it instead."""
    images = versions.record(version).images
    images["inference"] = INFERENCE_IMAGES[engine]
    images["pgbouncer"] = PGBOUNCER_IMAGE
    given = dict(overrides or {})
    images.update({name: str(image) for name, image in given.items() if not isinstance(image, Mapping)})
    images.update({name: str(image) for name, image in (given.get(version) or {}).items()})
    return {name: on_registry(image, registry) for name, image in images.items()}


def build_project(plan: Mapping[str, Any], host: str, options: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """The Compose project of one host: a dict ready to be written as compose.yaml.

    options: version (default 1.13.3), name (project name), images (service -> image overrides),
    object_storage (endpoint, bucket, region, path_style, plugin_bucket: no credentials),
    gateway_port, public_url (default: from the gateway host's address), env_extra
    (service -> {VARIABLE: value}), ssrf_allowed_networks (private networks the SSRF proxy admits),
    image_registry (a registry serving Docker Hub's images under its own name), pip_mirror_url
    (PIP_MIRROR_URL of the plugin daemon and the sandbox), marketplace (false: Dify never calls
    marketplace.dify.ai)."""
    opts = dict(options or {})
    version = plan_version(plan, str(opts.get("version") or ""))
    services = project_services(plan, host)
    inference = plan["hosts"][host]["settings"].get("inference", {})
    images = images_for(version, opts.get("images"), str(inference.get("engine") or "vllm"),
                        image_registry(opts.get("image_registry")))
    pip_mirror = pip_mirror_url(opts.get("pip_mirror_url"))
    marketplace = marketplace_enabled(opts)
    storage = opts.get("object_storage") or {}
    spec: Dict[str, Any] = {}
    port = int(opts.get("gateway_port") or DEFAULT_GATEWAY_PORT)
    if "nginx" in services:
        spec.update(gateway_service(plan, host, images, port))
    if "api" in services:
        url = public_url(plan, str(opts.get("public_url") or ""), port)
        spec.update(app_services(plan, host, images, storage, services, url, pip_mirror, marketplace))
    spec.update(data_services(plan, host, images, services))
    if "inference" in services:
        spec.update(inference_service(plan, host, images))
    extra_env = opts.get("env_extra") or {}
    refused = managed_env_problems(spec, extra_env)
    if refused:
        raise StackError("dify_stack_env_extra sets what the collection manages: %s" % "; ".join(refused))
    for service, extra in extra_env.items():
        if service in spec:
            spec[service].setdefault("environment", {}).update({k: str(v) for k, v in extra.items()})
    # The deployed version, for upgrades to read (an extension field: Compose ignores it).
    project: Dict[str, Any] = {"name": str(opts.get("name") or "dify"), VERSION_FIELD: {"dify_version": version},
                               "services": spec}
    if spec:
        project["networks"] = {"default": {}}
        for network in INTERNAL_NETWORKS:
            if any(network in (service.get("networks") or ()) for service in spec.values()):
                project["networks"][network] = {"internal": True}
    return project


def marketplace_enabled(options: Mapping[str, Any]) -> bool:
    """Whether Dify may use its plugin marketplace (the option ``marketplace``, default true)."""
    value = as_bool(options.get("marketplace", True))
    if value is None:
        raise StackError("dify_stack_marketplace must be true or false (got '%s')" % options.get("marketplace"))
    return value


def managed_env(services: Mapping[str, Any]) -> Dict[str, str]:
    """Every variable the builder wrote for any of the project's services, every secret and every
    variable an option owns, with the value it wrote (a secret's reference where it wrote none)."""
    managed = {name: secret(name) for name in SECRET_VARIABLES}
    managed.update({name: "" for name in OPTION_VARIABLES})
    for spec in services.values():
        managed.update(spec.get("environment", {}))
    return managed


def managed_knob(name: str, value: str) -> str:
    """The setting to change instead of overriding a managed variable."""
    if name in SECRET_VARIABLES or str(value).startswith("${"):
        return "a secret: difyops.dify.dify_secrets generates it, dify_secrets_given sets it, never in clear"
    for names, knob in MANAGED_KNOBS:
        if any(name == known or (known.endswith("_") and name.startswith(known)) for known in names):
            return knob
    return "the collection sets it on every host"


def managed_env_problems(services: Mapping[str, Any], env_extra: Mapping[str, Any]) -> List[str]:
    """'service.VARIABLE (where to change it)' for each variable of env_extra the collection manages, in
    the order given; the operator's defaults (OPERATOR_DEFAULTS) are not refused."""
    managed = managed_env(services)
    return ["%s.%s (%s)" % (service, name, managed_knob(name, managed[name]))
            for service, extra in env_extra.items() for name in (extra or {})
            if name in managed and name not in OPERATOR_DEFAULTS]


def unknown_env(project: Mapping[str, Any], version: str) -> List[str]:
    """'service: VARIABLE' for every variable the project sets that the version does not know.
    The inference service is not Dify's and has no reference list."""
    ref = reference(version)
    problems = []
    for service, spec in project.get("services", {}).items():
        if service == "inference":
            continue
        known = set(OTHER_SERVICE_ENV.get(service) or ref.SERVICE_ENV_NAMES.get(service, ())) | RUNTIME_ENV
        if service in ref.SHARED_ENV_SERVICES:
            known |= ref.ENV_NAMES | ref.SETTINGS_NAMES
        # 1.14+: what the service's env files give it (and Dify's settings that no example lists).
        for source in ref.ENV_FILES.get(service, ()):
            known |= ref.FILE_ENV_NAMES.get(source, frozenset()) | ref.SETTINGS_NAMES
        problems += ["%s: %s" % (service, name) for name in spec.get("environment", {}) if name not in known]
    return problems


def secrets_used(project: Mapping[str, Any]) -> List[str]:
    """The secrets the project refers to, so that each host's .env holds only those."""
    text = repr(project)
    return [name for name in SECRET_VARIABLES if "${%s:?" % name in text]


def data_dirs(project: Mapping[str, Any]) -> List[str]:
    """Project-relative directories to create for the services present."""
    return sorted({DATA_DIRS[s] for s in project.get("services", {}) if s in DATA_DIRS})


def published_ports(project: Mapping[str, Any]) -> Dict[str, List[str]]:
    return {name: list(spec.get("ports", [])) for name, spec in project.get("services", {}).items() if spec.get("ports")}


def firewall_rules(plan: Mapping[str, Any], host: str, project: Mapping[str, Any]) -> List[Dict[str, Any]]:
    """Who may reach each port this host publishes on its private address: app hosts for data
    services and inference, gateway hosts for the app services. Empty on a single node, where
    only the gateway publishes a port."""
    if plan["fleet"]["single_node"]:
        return []
    gateways = [plan["hosts"][g]["address"] for g in plan["fleet"]["gateway_hosts"]]
    # The fleet's one plugin daemon serves the gateways (/e/ endpoints) and every app host's api and worker.
    apps = [str(h["address"]) for h in hosts_with(plan, "app") if h["name"] != host]
    hosts = {registry.GATEWAYS: gateways, registry.GATEWAYS_AND_APPS: gateways + [a for a in apps if a not in gateways]}
    rules = []
    for service, ports in published_ports(project).items():
        for port in ports:
            published = int(port.rsplit(":", 2)[-2])
            rules.append({"service": service, "port": published, "sources": _sources(plan, service, hosts)})
    # PgBouncer listens on the host's own network (beside the host's Postgres): the app hosts only.
    if project.get("services", {}).get("pgbouncer", {}).get("network_mode") == "host":
        port = plan["hosts"][host]["settings"]["pgbouncer"]["listen_port"]
        rules.append({"service": "pgbouncer", "port": port, "sources": _sources(plan, "pgbouncer", hosts)})
    return rules


def _sources(plan: Mapping[str, Any], service: str, hosts: Mapping[str, Sequence[str]]) -> List[str]:
    """Who may reach a service's published port (its record's clients): the fleet's networks of
    the app hosts for a data service or inference, else the given hosts' own addresses."""
    record = registry.SERVICES.get(service)
    if record is None or not record.clients:
        return []
    if record.clients == registry.APPS:
        return list(plan["fleet"]["data_access"][record.component])
    return ["%s/%d" % (a, 128 if ":" in a else 32) for a in hosts[record.clients]]


def ssrf_allowed_private(plan: Mapping[str, Any], networks: Sequence[str] = ()) -> List[str]:
    """Private destinations the SSRF proxy admits: a split fleet's inference hosts, which Dify's model providers
    call through it, and the networks the operator names (LAN services of HTTP nodes). Every other
    private, loopback and link-local destination stays refused."""
    allowed: List[str] = []
    if plan["fleet"]["single_node"]:  # its model server is on the project's network, not the host's address
        return [str(n) for n in networks]
    for holder in hosts_with(plan, "gpu_inference"):
        if holder["settings"].get("inference", {}).get("enabled") and holder.get("address"):
            address = str(holder["address"])
            allowed.append("%s/%d" % (address, 128 if ":" in address else 32))
    return allowed + [str(n) for n in networks if str(n) not in allowed]


def project_layout(project: Mapping[str, Any], project_dir: str, agent_proxy: bool) -> Dict[str, Any]:
    """What the role writes for one host's project, in order (one file_set call): its directories,
    then its files with the template that renders each (``templates``, in the same order as
    ``files``), then ``compose_file``, last, because ``docker compose config`` checks it with the
    .env written before it. Sandbox and SSRF proxy configuration only where those services run;
    the gateway log's directory and logrotate file only where nginx runs; the api's storage
    belongs to the user of Dify's images."""
    services = project.get("services", {})
    top = project_dir.rstrip("/") or "/"
    root = {"owner": "root", "group": "root"}
    directories: List[Dict[str, str]] = [dict(root, path=top, mode="0750")]
    if "sandbox" in services:
        directories += [dict(root, path=top + "/ssrf_proxy"), dict(root, path=top + "/sandbox/conf")]
    storage = DATA_DIRS["api"]
    directories += [{"path": "%s/%s" % (top, d)} for d in data_dirs(project) if d != storage]
    if storage in data_dirs(project):
        directories.append({"path": "%s/%s" % (top, storage), "owner": str(DIFY_UID)})
    files: List[Dict[str, Any]] = []
    templates: List[str] = []

    def add(path: str, template: str, mode: str = "0644", **extra: Any) -> None:
        files.append(dict(root, path=path, mode=mode, **extra))
        templates.append(template)

    if "ssrf_proxy" in services:
        add(top + "/ssrf_proxy/squid.conf", "squid.conf.j2")
    if agent_proxy:
        add(top + "/ssrf_proxy/squid-agent.conf", "squid-agent.conf.j2")
    if "sandbox" in services:
        add(top + "/sandbox/conf/config.yaml", "sandbox-config.yaml.j2")
    if "nginx" in services:
        directories += [dict(root, path=GATEWAY_LOG_DIR, mode="0755"),
                        dict(root, path=GATEWAY_LOGROTATE.rsplit("/", 1)[0], mode="0755")]
        add(GATEWAY_LOGROTATE, "logrotate-gateway.j2")
    add(top + "/.env", "env.j2", mode="0600", secret=True)
    return {"directories": directories, "files": files, "templates": templates,
            "compose_file": dict(root, path=top + "/compose.yaml", mode="0640")}


def bundle(plan: Mapping[str, Any], host: str, options: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """Everything the role needs for one host: the project and what follows from it."""
    opts = options or {}
    project = build_project(plan, host, opts)
    version = plan_version(plan)
    record = versions.record(version)
    inference = plan["hosts"][host]["settings"].get("inference", {})
    endpoint_url = inference_endpoint(plan, host) if "inference" in project["services"] else None
    api_env = project["services"].get("api", {}).get("environment", {})
    rules = firewall_rules(plan, host, project)
    try:
        ruleset = firewall.ruleset(str(plan["hosts"][host].get("address") or ""), rules) if rules else ""
    except firewall.FirewallError as exc:
        raise StackError("the firewall cannot be written: %s" % exc)
    sandbox_env = project["services"].get("sandbox", {}).get("environment", {})
    return {
        "version": version,
        # The SSRF proxy's reverse proxy to the sandbox (1.13) and its agent twin (1.16+); whether it
        # admits Dify's marketplace, and the package mirror the sandbox installs from through it.
        "squid": {"sandbox_reverse_proxy": record.sandbox_reverse_proxy,
                  "agent_proxy": "agent_ssrf_proxy" in project["services"],
                  "marketplace": marketplace_enabled(opts),
                  "pip_mirror": pip_mirror_destination(sandbox_env.get("PIP_MIRROR_URL", ""))},
        "sandbox": {"python_path": record.sandbox_python_path},
        "public_url": api_env.get("CONSOLE_API_URL"),
        "ssrf_allowed_private": ssrf_allowed_private(plan, opts.get("ssrf_allowed_networks") or ()),
        "compose": project,
        "services": sorted(project["services"]),
        "images": sorted({spec["image"] for spec in project["services"].values()}),
        "secrets": secrets_used(project),
        "data_dirs": data_dirs(project),
        "unknown_env": unknown_env(project, version),
        "ports": published_ports(project),
        # The gateway's access log on the host (a single node's nginx), which the role rotates.
        "gateway_log_dir": GATEWAY_LOG_DIR if "nginx" in project["services"] else None,
        "layout": project_layout(project, str(opts.get("project_dir") or DEFAULT_PROJECT_DIR),
                                 "agent_ssrf_proxy" in project["services"]),
        "firewall": rules,
        "firewall_ruleset": ruleset,
        "inference": {"endpoint": endpoint_url, "model": inference.get("model"), "engine": inference.get("engine"),
                      "weights": inference.get("weights"), "api_key": "INFERENCE_API_KEY" if inference.get("engine") == "vllm" else None}
        if endpoint_url else None,
    }

# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""TEST STAND-IN for Dify 1.13.3's own images, which this machine cannot pull: langgenius/dify-api:1.13.3
(api, worker, worker_beat), langgenius/dify-web:1.13.3, langgenius/dify-sandbox:0.2.14 and
langgenius/dify-plugin-daemon:0.5.3-local (which it cannot build either: the Go module proxy refuses the module), and
for Dify 1.16.1's agent images langgenius/dify-agent-backend:1.16.1 and langgenius/dify-agent-local-sandbox:1.16.1
(with the api's side of them). It is not Dify:
it does what the collection's deployment depends on and FAILS LOUDLY (exit 1, naming the variable, key or
file) when the deployment breaks a contract of the real images. Never used outside the tests.

Run as `python3 -u dify_standin.py ROLE`; ROLE is dify-api (dispatches on MODE = api | worker | beat like the
real image's entrypoint; unset means api), web, sandbox, plugin_daemon, agent_backend or local_sandbox (or api,
worker, beat directly).

Refusals at start (line `CONTRACT BROKEN: ...` on stderr, exit 1):
  every role   a variable it reads still holds an uninterpolated Compose reference (`${...`).
  api, worker  CONSOLE_API_URL, CONSOLE_WEB_URL, SERVICE_API_URL, APP_WEB_URL, FILES_URL, TRIGGER_URL unset,
               empty, not an absolute http(s) URL, or on a loopback/unspecified host (127.0.0.0/8, ::1, 0.0.0.0,
               ::, localhost): the image bakes CONSOLE_*/SERVICE_API_URL/APP_WEB_URL=http://127.0.0.1:...;
               ENDPOINT_URL_TEMPLATE without `{hook_id}` or on such a host; INTERNAL_FILES_URL unset, not
               absolute or loopback; SECRET_KEY empty (it signs the file links); DB_TYPE not postgresql;
               DB_HOST/DB_PORT/DB_USERNAME/DB_DATABASE/REDIS_HOST/REDIS_PORT/REDIS_DB empty or not numbers;
               CELERY_BROKER_URL not redis://[:password]@host:port/db, or naming the Redis of REDIS_HOST:
               REDIS_PORT with another password; OPENDAL_FS_ROOT outside the /app/api/storage volume;
               SQLALCHEMY_POOL_SIZE/SQLALCHEMY_MAX_OVERFLOW/SERVER_WORKER_CONNECTIONS/CELERY_* not numbers;
               /app/api/storage not writable (names the directory and uid); PostgreSQL unreachable for 60 s
               (or refusing the credentials or DB_DATABASE at once); Redis or the broker refusing PING.
  api, worker  (Dify 1.16.1: only when AGENT_BACKEND_BASE_URL is in the environment; 1.13.3 has none of it)
               AGENT_BACKEND_BASE_URL empty, not an http(s) URL or on loopback; AGENT_BACKEND_API_TOKEN empty, upstream's
               development default dify-agent-run-token-for-dev-only, or not header-safe (whitespace, non-ASCII);
               AGENT_BACKEND_STREAM_READ_TIMEOUT_SECONDS/STREAM_MAX_RECONNECTS/RUN_TIMEOUT_SECONDS not numbers.
  api          MIGRATION_ENABLED=true creates the table difyops_standin_migrations (stands in for
               `flask db upgrade`) or exits 1.
  beat         (URLs are only warned about) another worker_beat already beating on the same broker.
  web          CONSOLE_API_URL or APP_API_URL neither empty (same origin) nor an absolute non-loopback URL
               (the real image bakes http://127.0.0.1:5001 into both).
  sandbox      /conf/config.yaml unreadable or not a mapping; python_path missing, not a file or not
               executable (the real image since 0.2.13 has /opt/python/bin/python3 and no
               /usr/local/bin/python3: langgenius/dify#34634, #36002); app.port not a port or differing from
               SANDBOX_PORT; API_KEY empty; ENABLE_NETWORK not true (the api always asks enable_network);
               max_workers/max_requests/worker_timeout/WORKER_TIMEOUT not positive numbers; proxy.http/https
               (or HTTP_PROXY/HTTPS_PROXY) not absolute URLs.
  plugin_daemon  (the real daemon's config.Validate(), which panics "invalid configuration") SERVER_KEY,
               DIFY_INNER_API_URL, DIFY_INNER_API_KEY, DB_USERNAME, DB_PASSWORD, DB_HOST, DB_PORT, DB_DATABASE,
               PLUGIN_WORKING_PATH, REDIS_HOST or REDIS_PORT empty; PLUGIN_REMOTE_INSTALLING_HOST empty or
               PLUGIN_REMOTE_INSTALLING_PORT 0 while PLUGIN_REMOTE_INSTALLING_ENABLED is true (its default; "plugin
               remote installing host is empty"); SERVER_PORT/DB_PORT/REDIS_PORT/DB_MAX_OPEN_CONNS/REDIS_DB/
               MAX_PLUGIN_PACKAGE_SIZE not numbers (ports above 65535); DB_TYPE not postgresql; DB_SSL_MODE not
               disable|require; DIFY_INNER_API_URL not an absolute URL or on loopback; PLUGIN_STORAGE_TYPE not local
               or aws_s3; local: PLUGIN_STORAGE_LOCAL_ROOT (default storage, in WORKDIR /app) outside the /app/storage
               volume or not writable; aws_s3: S3_ENDPOINT, PLUGIN_STORAGE_OSS_BUCKET, AWS_ACCESS_KEY, AWS_SECRET_KEY
               empty (S3 is not contacted); PLUGIN_WORKING_PATH not creatable/writable; PostgreSQL unreachable for 60 s,
               refusing the credentials or DB_SSL_MODE; DB_DATABASE missing and not creatable: like the real daemon it
               then connects to DB_DEFAULT_DATABASE (default postgres), checks pg_database and runs CREATE DATABASE, so
               DB_USERNAME needs CREATEDB or the database must exist; Redis refusing PING. After the start (exit 1
               while serving): Dify's api answering 401/404 to GET {DIFY_INNER_API_URL}/inner/api/difyops-standin/...
               with X-Inner-Api-Key = DIFY_INNER_API_KEY (it must equal the api's INNER_API_KEY_FOR_PLUGIN).
  agent_backend  DIFY_AGENT_SERVER_SECRET_KEY empty, upstream's development default (MDEyMzQ1...), padded with '=',
               holding characters outside base64url ('+', '/' of standard base64), or not decoding to exactly 32 bytes
               (upstream: secrets.token_urlsafe(32)); DIFY_AGENT_API_TOKEN empty, the development default
               dify-agent-run-token-for-dev-only, or not header-safe; DIFY_AGENT_REDIS_URL empty or not
               redis://[:password@]host:port/db, Redis refusing it (AUTH, at once) or unreachable for 60 s;
               DIFY_AGENT_PLUGIN_DAEMON_URL, DIFY_AGENT_INNER_API_URL, DIFY_AGENT_SHELLCTL_ENTRYPOINT empty, not http(s)
               URLs or on loopback; DIFY_AGENT_PLUGIN_DAEMON_API_KEY, DIFY_AGENT_INNER_API_KEY empty (upstream's Compose
               always falls back to the plugin daemon's keys); DIFY_AGENT_STUB_API_BASE_URL set but not an http(s) URL;
               DIFY_AGENT_SHUTDOWN_GRACE_SECONDS/RUN_RETENTION_SECONDS not numbers; DIFY_AGENT_SHELL_REDACT_PATTERNS set
               but not a JSON array of regular expressions. Secret values are never printed.
  local_sandbox  HTTP_PROXY or HTTPS_PROXY unset, empty, not an http(s) URL or on loopback (its egress must go through
               agent_ssrf_proxy); SHELLCTL_AUTH_TOKEN not header-safe; SHELLCTL_ENABLE_PATH_ISOLATION not true/false.
Load (api): like gunicorn's gevent workers and Flask-SQLAlchemy, the api serves at most SERVER_WORKER_AMOUNT x
SERVER_WORKER_CONNECTIONS connections at once (default 1 x 10, as Dify; the others wait in the listen backlog,
and an idle keep-alive connection is closed after 2 s, gunicorn's --keep-alive). Connection slots are numbered,
the lowest free first, slot // SERVER_WORKER_CONNECTIONS naming the process; each process has its own pool of
SQLALCHEMY_POOL_SIZE + SQLALCHEMY_MAX_OVERFLOW database connections (default 30 + 10). A workflow run holds one
for the whole request (the scoped session), waiting at most SQLALCHEMY_POOL_TIMEOUT s (default 30) for it, else
answers 500 with SQLAlchemy's `QueuePool limit of size X overflow Y reached, connection timed out, timeout Z`.
The pool is counted, not opened: PostgreSQL sees no more connections than before.

Warnings (a line starting with `CONTRACT:`, the service keeps running): SQLALCHEMY_POOL_SIZE +
SQLALCHEMY_MAX_OVERFLOW below SERVER_WORKER_CONNECTIONS (api) or the Celery concurrency (worker); the api's
worst case SERVER_WORKER_AMOUNT x pool above PostgreSQL's max_connections; a broker whose maxmemory-policy
evicts any key (allkeys-*); the broker sharing REDIS_DB with the cache; INNER_API_KEY_FOR_PLUGIN or
PLUGIN_DAEMON_KEY empty (api, worker); /app/api/storage not a mount point;
no migrations table on a MIGRATION_ENABLED=false api; a public URL with a trailing slash; the sandbox's
config disabling the network, or a config app.key that API_KEY overrides; the plugin daemon's Dify inner API
unreachable (every 30 s until it answers), PLUGIN_WORKING_PATH outside /app/storage, /app/storage not a mount point,
DB_MAX_OPEN_CONNS=0 (no limit), another daemon sharing its Redis (named with its registered address, and whether that
address answers from this node), its node key failing to refresh. agent_backend: DIFY_AGENT_SHELLCTL_AUTH_TOKEN empty,
DIFY_AGENT_REDIS_URL on database 0 or 1 (upstream: 2), DIFY_AGENT_STUB_API_BASE_URL empty or outside /agent-stub/ (the
only path agent_ssrf_proxy lets local_sandbox reach). local_sandbox: SHELLCTL_AUTH_TOKEN empty, NO_PROXY naming hosts
other than loopback ones (they bypass the proxy).

Service (what the tests exercise):
  api :5001     GET /health; GET /console/api/*, /api/*, /v1/*, /files/*, /mcp/*, /triggers/* describe the
                route, host and X-Forwarded-For/X-Real-IP/Host headers; POST on them reads the body as a stream
                and answers its size; POST /console/api/files/upload stores the body and answers Dify's
                signed `{FILES_URL}/files/<uuid>/file-preview?...` source_url, which GET serves back;
                POST /v1/workflows/run runs inputs.code through the sandbox as Dify's code executor does
                (blocking JSON, or server-sent events 1 s apart); POST /console/api/difyops-standin/task goes
                through the Celery broker to a worker and back; POST /console/api/difyops-standin/allocate?mb=N
                keeps N MiB more in the serving process; POST /console/api/difyops-standin/credentials {"tenant", "name",
                "value"} stores the value in Dify's database (table difyops_standin_credentials) sealed with a key derived
                from SECRET_KEY and the tenant's private key, which it writes once to the storage volume
                (privkeys/<tenant>/private.pem, where Dify keeps the tenants' keys); GET .../credentials?tenant=&name=
                answers the value, 404 without the row or the key file, 409 when SECRET_KEY or the key file differs from
                those that sealed it (a backup that lost either); GET /console/api/difyops-standin/status checks
                PostgreSQL, Redis, the broker and the beat live; /inner/api/* (the plugin daemon's, not the
                gateway's) only with X-Inner-Api-Key = INNER_API_KEY_FOR_PLUGIN, else 404. Anything else: 404.
  worker        BRPOP difyops_standin on the broker, SELECT 1, SET difyops_standin:result:<id>. No port.
  beat          SET difyops_standin:beat on the broker every 5 s. No port.
  web :3000     GET / and /explore/* (and a few other console pages): HTML naming the host; /_next/*: JSON.
  sandbox :8194 GET /health; POST /v1/sandbox/run (X-Api-Key = API_KEY) runs python3 code with python_path,
                worker_timeout and the proxy, answering {"code": 0, "message": "success", "data": {...}}. At most
                max_workers runs at once, the others waiting in arrival order (the real sandbox's MaxWorker middleware
                is a buffered Go channel: blocked senders are served first in, first out, and a newcomer never
                overtakes them); more than max_requests in flight: 503 {"code": -503, "message": "Too many requests"}.
  plugin_daemon :SERVER_PORT (5002)  GET /health/check: {"status": "ok", "pool_status": {...}, "version":
                "0.5.3-standin", "platform": "local", "node_id": ...}. /plugin/<tenant>/... (X-Api-Key = SERVER_KEY,
                else 401 {"code": -401, "message": "unauthorized"}) describes the route. /e/<hook_id>/<path> (any
                method, no key): the endpoints row of hook_id (404 "endpoint not found"); on this node (or no node),
                JSON with hook_id, path, method, node and host, X-Original-Host and Host; on another node, the request
                goes on to the ip:port that node registered in Redis and its answer comes back, or 500 "redirect
                request failed: ..." naming that address (the real daemon's status and message). Test-only, with
                X-Api-Key: POST /difyops-standin/endpoints {"hook_id": ..., "node": <node id, default this one>}
                upserts an endpoints row; GET /difyops-standin/nodes lists the registered nodes. At start it creates
                DB_DATABASE when missing and its tables (plugins, plugin_installations, plugin_declarations, endpoints,
                serverless_runtimes, tool_installations, ai_model_installations, install_tasks, tenant_storages,
                agent_strategy_installations), keeps at most DB_MAX_OPEN_CONNS (30) connections, and registers this
                node in Redis every 5 s as the hash plugin_daemon:nodes:<node id> (ip = first non-loopback IPv4
                interface address, port = SERVER_PORT; 15 s TTL; removed on SIGTERM). No remote-debugging listener.
  api (1.16.1)  POST /console/api/difyops-standin/agent {"command": ...} (optional), only with AGENT_BACKEND_BASE_URL
                set (otherwise the route describes itself, as before): POST {AGENT_BACKEND_BASE_URL}/difyops-standin/runs
                with `Authorization: Bearer <AGENT_BACKEND_API_TOKEN>`, no proxy, AGENT_BACKEND_STREAM_READ_TIMEOUT_SECONDS
                (30) to answer; 200 {"api", "agent_backend_status", "agent_backend": {...}} when the whole chain worked,
                401 with "refused_by" (agent_backend or local_sandbox) and the setting to fix when a token was refused
                on the way, 502 otherwise.
  agent_backend :5050  GET /health: 200 {"status": "ok", ...}. Everything else wants `Authorization: Bearer
                <DIFY_AGENT_API_TOKEN>`, else 401 {"code": "unauthorized", "refused_by": "agent_backend"}. POST
                /difyops-standin/runs {"command": ...} (default `echo difyops-standin-agent-chain`): POST
                {DIFY_AGENT_SHELLCTL_ENTRYPOINT}/difyops-standin/exec with `Authorization: Bearer
                <DIFY_AGENT_SHELLCTL_AUTH_TOKEN>` (none when empty), SETEX {DIFY_AGENT_REDIS_PREFIX}:difyops-standin:run:<id>
                for DIFY_AGENT_RUN_RETENTION_SECONDS, 200 {"run_id", "local_sandbox": shellctl's answer, "redis_key", ...};
                401 refused_by local_sandbox when shellctl refuses the token; 502 when shellctl does not answer; 503 when
                Redis fails. At start it writes {prefix}:difyops-standin:agent_backend:<host> (1 h TTL).
  local_sandbox :5004  GET /healthz: 200. With SHELLCTL_AUTH_TOKEN set, the POST routes want `Authorization: Bearer
                <SHELLCTL_AUTH_TOKEN>`, else 401 refused_by local_sandbox. POST /difyops-standin/exec {"command"}: sh -c
                in $HOME with the container's environment (HTTP(S)_PROXY included), 30 s at most: {"exit_code", "stdout",
                "stderr", "uid", ...}. POST /difyops-standin/fetch {"url"}: GET through HTTP_PROXY/HTTPS_PROXY (unless
                NO_PROXY names the host): 200 {"status": the proxy's or server's status (for https the CONNECT status),
                "proxy", "headers": Via/X-Squid-Error/X-Cache/Server, "body", "error"}, 502 when no proxy answered.
Exits 0 on SIGTERM. DIFYOPS_STANDIN_WAIT_S (stand-in only) shortens the 60 s wait for PostgreSQL and Redis.
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import hashlib
import hmac
import http.client
import ipaddress
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, Iterator, List, Mapping, NamedTuple, Optional, Tuple
from urllib import error as urlerror
from urllib import request as urlrequest
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

try:
    import psycopg2
except ImportError:  # the unit tests run without Debian's python3-psycopg2
    psycopg2 = None
try:
    import redis
except ImportError:  # nor python3-redis
    redis = None
try:
    import yaml
except ImportError:  # nor (perhaps) python3-yaml
    yaml = None

# The Dify version the image stands in for (dify-api: 1.13.3; dify-api-1.16.1 bakes 1.16.1), and the
# interpreter a sandbox uses when its config names none (dify-sandbox-0.2.15 bakes it; 0.2.14's default
# was an interpreter its own image lacks, so a config without python_path is refused there).
VERSION = os.environ.get("DIFYOPS_STANDIN_DIFY_VERSION", "1.13.3")
SANDBOX_DEFAULT_PYTHON = os.environ.get("DIFYOPS_STANDIN_SANDBOX_DEFAULT_PYTHON", "")
STANDIN_FOR = {"dify-api": "langgenius/dify-api:1.13.3", "web": "langgenius/dify-web:1.13.3",
               "sandbox": "langgenius/dify-sandbox:0.2.14", "plugin_daemon": "langgenius/dify-plugin-daemon:0.5.3-local",
               "agent_backend": "langgenius/dify-agent-backend:1.16.1",
               "local_sandbox": "langgenius/dify-agent-local-sandbox:1.16.1"}
HOST = socket.gethostname()
API_PORT = 5001
WEB_PORT = 3000
SANDBOX_PORT = 8194
API_WORKDIR = "/app/api"
STORAGE_DIR = "/app/api/storage"
SANDBOX_CONFIG = "/conf/config.yaml"
SANDBOX_DEPENDENCIES = "/dependencies/python-requirements.txt"
# The uid the real sandbox runs code as (its SANDBOX_USER_UID).
SANDBOX_RUN_UID = 65537
WAIT_S = 60.0
STREAM_PAUSE_S = 1.0
TASK_TIMEOUT_S = 15.0
CHUNK = 1 << 20

PUBLIC_URLS = ("CONSOLE_API_URL", "CONSOLE_WEB_URL", "SERVICE_API_URL", "APP_WEB_URL", "FILES_URL", "TRIGGER_URL")
WEB_URLS = ("CONSOLE_API_URL", "APP_API_URL")
DB_VARIABLES = ("DB_HOST", "DB_PORT", "DB_USERNAME", "DB_PASSWORD", "DB_DATABASE")
REDIS_VARIABLES = ("REDIS_HOST", "REDIS_PORT", "REDIS_PASSWORD", "REDIS_DB")
# What Dify 1.16.1 gives api and worker (absent from 1.13.3, where none of this applies).
API_AGENT_VARIABLES = ("AGENT_BACKEND_BASE_URL", "AGENT_BACKEND_API_TOKEN", "AGENT_BACKEND_STREAM_READ_TIMEOUT_SECONDS",
                       "AGENT_BACKEND_STREAM_MAX_RECONNECTS", "AGENT_BACKEND_RUN_TIMEOUT_SECONDS")
APP_VARIABLES = PUBLIC_URLS + ("ENDPOINT_URL_TEMPLATE", "INTERNAL_FILES_URL", "SECRET_KEY", "DB_TYPE") + DB_VARIABLES \
    + REDIS_VARIABLES + ("CELERY_BROKER_URL", "CODE_EXECUTION_ENDPOINT", "CODE_EXECUTION_API_KEY", "STORAGE_TYPE",
                         "OPENDAL_SCHEME", "OPENDAL_FS_ROOT", "SQLALCHEMY_POOL_SIZE", "SQLALCHEMY_MAX_OVERFLOW",
                         "SERVER_WORKER_AMOUNT", "SERVER_WORKER_CONNECTIONS", "CELERY_WORKER_AMOUNT", "CELERY_AUTO_SCALE",
                         "CELERY_MAX_WORKERS", "MIGRATION_ENABLED", "MODE", "INNER_API_KEY_FOR_PLUGIN", "PLUGIN_DAEMON_KEY") \
    + API_AGENT_VARIABLES
SANDBOX_VARIABLES = ("API_KEY", "SANDBOX_PORT", "ENABLE_NETWORK", "WORKER_TIMEOUT", "HTTP_PROXY", "HTTPS_PROXY")

API_ROUTES = ("/console/api", "/api", "/v1", "/files", "/mcp", "/triggers")
WEB_PAGES = ("/", "/explore", "/apps", "/signin", "/install", "/datasets", "/tools", "/plugins", "/chat", "/chatbot",
             "/workflow", "/completion", "/webapp-signin")
# Not routed by the gateway: the plugin daemon calls it at DIFY_INNER_API_URL (http://api:5001).
INNER_ROUTE = "/inner/api"
STANDIN_PREFIX = "/console/api/difyops-standin"
UPLOAD_PATH = "/console/api/files/upload"
WORKFLOW_PATH = "/v1/workflows/run"
FILE_PREVIEW = re.compile(r"^/files/([0-9a-f-]{36})/file-preview$")
TASK_QUEUE = "difyops_standin"
RESULT_KEY = "difyops_standin:result:%s"
BEAT_KEY = "difyops_standin:beat"
BEAT_LOCK = "difyops_standin:beat:lock"
MIGRATION_TABLE = "difyops_standin_migrations"
# Provider credentials: a row per (tenant, name) in Dify's database, sealed with a key that needs both
# SECRET_KEY and the tenant's private key in the storage volume (privkeys/<tenant>/private.pem).
CREDENTIALS_PATH = "/console/api/difyops-standin/credentials"
CREDENTIALS_TABLE = "difyops_standin_credentials"
PRIVKEY_PATH = "privkeys/%s/private.pem"
TENANT_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
FORWARDED_HEADERS = ("Host", "X-Forwarded-For", "X-Real-IP", "X-Forwarded-Proto", "X-Forwarded-Host")
LOCAL_NAMES = frozenset(("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"))
# The plugin daemon (PLATFORM=local; WORKDIR /app, its volume at /app/storage).
DAEMON_VERSION = "0.5.3-standin"
DAEMON_PORT = 5002
DAEMON_WORKDIR = "/app"
DAEMON_VOLUME = "/app/storage"
DAEMON_STANDIN_PREFIX = "/difyops-standin"
# The daemon's call of Dify's inner API (served by the api stand-in under INNER_ROUTE).
INNER_PROBE = INNER_ROUTE + "/difyops-standin/plugin-daemon"
# This node in Redis: a hash of ip, port, host, node_id, last_ping_at (the real cluster keeps one field per node,
# with all its interface addresses, in the hash cluster-nodes-status-hash-map and drops nodes silent for too long;
# a key per node with a TTL does the same job here).
NODE_KEY_PREFIX = "plugin_daemon:nodes:"
HEARTBEAT_S = 5
NODE_TTL_S = 15
REDIRECT_TIMEOUT_S = 10.0
VIA_HEADER = "X-Difyops-Standin-Redirected-By"
UNLIMITED = 1 << 30
# Variables envconfig must find non-empty (validate:"required"), with the Go field the panic names.
DAEMON_REQUIRED = (("SERVER_KEY", "ServerKey"), ("DIFY_INNER_API_URL", "DifyInnerApiURL"),
                   ("DIFY_INNER_API_KEY", "DifyInnerApiKey"), ("DB_USERNAME", "DBUsername"), ("DB_PASSWORD", "DBPassword"),
                   ("DB_HOST", "DBHost"), ("DB_PORT", "DBPort"), ("DB_DATABASE", "DBDatabase"),
                   ("PLUGIN_WORKING_PATH", "PluginWorkingPath"), ("REDIS_HOST", "RedisHost"), ("REDIS_PORT", "RedisPort"))
# (name, default, minimum, maximum) of the numbers it reads; 0 means the default for SERVER_PORT (SetDefault).
DAEMON_NUMBERS = (("SERVER_PORT", DAEMON_PORT, 0, 65535), ("DB_PORT", None, 1, 65535), ("REDIS_PORT", None, 1, 65535),
                  ("PLUGIN_REMOTE_INSTALLING_PORT", None, 0, 65535), ("DB_MAX_OPEN_CONNS", 30, 0, None),
                  ("REDIS_DB", 0, 0, None), ("MAX_PLUGIN_PACKAGE_SIZE", 52428800, 1, None))
DAEMON_VARIABLES = tuple(name for name, _field in DAEMON_REQUIRED) + (
    "SERVER_PORT", "DB_TYPE", "DB_DEFAULT_DATABASE", "DB_SSL_MODE", "DB_MAX_OPEN_CONNS", "REDIS_PASSWORD", "REDIS_DB",
    "REDIS_USE_SSL", "PLUGIN_STORAGE_TYPE", "PLUGIN_STORAGE_LOCAL_ROOT", "PLUGIN_STORAGE_OSS_BUCKET", "S3_ENDPOINT",
    "AWS_ACCESS_KEY", "AWS_SECRET_KEY", "AWS_REGION", "PLUGIN_REMOTE_INSTALLING_ENABLED", "PLUGIN_REMOTE_INSTALLING_HOST",
    "PLUGIN_REMOTE_INSTALLING_PORT", "MAX_PLUGIN_PACKAGE_SIZE")
# Dify 1.16.1's agent: agent_backend (port 5050) and local_sandbox (shellctl, port 5004).
AGENT_VERSION = "1.16.1"
AGENT_PORT = 5050
SHELLCTL_PORT = 5004
# Upstream's development defaults (docker/envs/core-services/dify-agent.env.example, docker-compose.yaml): public,
# so a deployment that keeps them is refused.
AGENT_DEV_SECRET = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY"
AGENT_DEV_TOKEN = "dify-agent-run-token-for-dev-only"
AGENT_SECRET_BYTES = 32
BASE64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
TOKEN_HINT = "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
# The stand-ins' own routes (upstream's are not known here): the api calls the agent backend, which runs a command
# through local_sandbox's shellctl; local_sandbox fetches a URL through its HTTP(S)_PROXY.
API_AGENT_PATH = STANDIN_PREFIX + "/agent"
AGENT_RUN_PATH = "/difyops-standin/runs"
SHELLCTL_EXEC_PATH = "/difyops-standin/exec"
SHELLCTL_FETCH_PATH = "/difyops-standin/fetch"
AGENT_RUN_KEY = "%s:difyops-standin:run:%s"
AGENT_NODE_KEY = "%s:difyops-standin:agent_backend:%s"
AGENT_DEFAULT_COMMAND = "echo difyops-standin-agent-chain"
SHELL_TIMEOUT_S = 30
FETCH_TIMEOUT_S = 15
OUTPUT_LIMIT = 64 * 1024
AGENT_VARIABLES = ("DIFY_AGENT_SERVER_SECRET_KEY", "DIFY_AGENT_API_TOKEN", "DIFY_AGENT_REDIS_URL", "DIFY_AGENT_REDIS_PREFIX",
                   "DIFY_AGENT_PLUGIN_DAEMON_URL", "DIFY_AGENT_PLUGIN_DAEMON_API_KEY", "DIFY_AGENT_INNER_API_URL",
                   "DIFY_AGENT_INNER_API_KEY", "DIFY_AGENT_SHELLCTL_ENTRYPOINT", "DIFY_AGENT_SHELLCTL_AUTH_TOKEN",
                   "DIFY_AGENT_STUB_API_BASE_URL", "DIFY_AGENT_SHUTDOWN_GRACE_SECONDS", "DIFY_AGENT_RUN_RETENTION_SECONDS",
                   "DIFY_AGENT_SHELL_REDACT_PATTERNS")
LOCAL_SANDBOX_VARIABLES = ("SHELLCTL_AUTH_TOKEN", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "SHELLCTL_ENABLE_PATH_ISOLATION")
AGENT_STUB_PREFIX = "/agent-stub"
PROXY_HEADERS = ("Via", "X-Squid-Error", "X-Cache", "Server")
GO_TRUE = frozenset(("1", "t", "T", "TRUE", "true", "True"))
GO_FALSE = frozenset(("0", "f", "F", "FALSE", "false", "False"))


class ContractError(Exception):
    """A broken contract: the message names the variable, key or file."""


class RedisTarget(NamedTuple):
    host: str
    port: int
    password: Optional[str]
    db: int
    ssl: bool


class SandboxSettings(NamedTuple):
    port: int
    api_key: str
    python_path: str
    worker_timeout: int
    max_workers: int
    max_requests: int
    enable_network: bool
    http_proxy: str
    https_proxy: str


# ----------------------------------------------------------------------------------------------------------
# Pure checks (unit-tested in tests/unit/standins/test_dify_standin.py)
# ----------------------------------------------------------------------------------------------------------

def is_local_host(host: str) -> bool:
    """True for names and addresses that mean "this machine": loopback or unspecified."""
    name = host.strip().strip("[]").rstrip(".").lower()
    if name in LOCAL_NAMES or name.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(name.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback or address.is_unspecified


def url_problem(name: str, value: Optional[str], allow_empty: bool = False, allow_local: bool = False) -> Optional[str]:
    """Why VALUE is not an absolute http(s) URL on a host other machines can reach, or None."""
    if value is None or value == "":
        if allow_empty:
            return None
        return "%s is %s: it must be an absolute http(s) URL of the deployment" % (name, "unset" if value is None else "empty")
    parts = urlsplit(value)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if port is not None and not 0 < port < 65536:
        return "%s=%r has an invalid port" % (name, value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "%s=%r is not an absolute http(s) URL" % (name, value)
    if not allow_local and is_local_host(parts.hostname):
        return ("%s=%r points at %s, a loopback/unspecified address: browsers, plugins and other hosts would be sent to "
                "themselves (the dify-api and dify-web images bake such defaults; the deployment must override them)"
                % (name, value, parts.hostname))
    return None


def endpoint_template_problem(value: Optional[str]) -> Optional[str]:
    if value is None:
        return "ENDPOINT_URL_TEMPLATE is unset: Dify's default http://localhost:5002/e/{hook_id} is loopback"
    if "{hook_id}" not in value:
        return "ENDPOINT_URL_TEMPLATE=%r has no {hook_id} placeholder (like https://dify.example.com/e/{hook_id})" % value
    return url_problem("ENDPOINT_URL_TEMPLATE", value.replace("{hook_id}", "hook"))


def app_url_problems(env: Mapping[str, str]) -> List[str]:
    """The URL contracts of api and worker: public URLs, the plugin endpoint template, the internal files URL."""
    problems = [url_problem(name, env.get(name)) for name in PUBLIC_URLS]
    problems.append(endpoint_template_problem(env.get("ENDPOINT_URL_TEMPLATE")))
    problems.append(url_problem("INTERNAL_FILES_URL", env.get("INTERNAL_FILES_URL")))
    return [p for p in problems if p]


def url_warnings(env: Mapping[str, str]) -> List[str]:
    return ["%s=%r ends with '/': Dify appends '/files/...' and similar paths to it" % (name, env[name])
            for name in PUBLIC_URLS + ("INTERNAL_FILES_URL",) if env.get(name, "").endswith("/")]


def web_url_problems(env: Mapping[str, str]) -> List[str]:
    """CONSOLE_API_URL and APP_API_URL of the web: empty (same origin) or an absolute non-loopback URL."""
    problems = [url_problem(name, env.get(name), allow_empty=True) for name in WEB_URLS]
    return [p for p in problems if p]


def uninterpolated(env: Mapping[str, str], names: Tuple[str, ...]) -> List[str]:
    """Variables whose value still holds a Compose reference: Compose did not interpolate the project."""
    found = [(name, re.search(r"\$\{[^}]{0,60}\}?", env.get(name, ""))) for name in names]
    return ["%s holds an uninterpolated Compose reference %s: Compose did not fill it in" % (name, match.group(0))
            for name, match in found if match]


def integer(env: Mapping[str, str], name: str, default: Optional[int] = None, minimum: int = 0) -> Optional[int]:
    """The integer value of NAME (DEFAULT when unset or empty); ContractError names it when it is not one."""
    raw = env.get(name, "")
    if raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ContractError("%s=%r is not an integer" % (name, raw))
    if value < minimum:
        raise ContractError("%s=%d is below %d" % (name, value, minimum))
    return value


def is_true(value: Optional[str]) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def parse_go_bool(value: Optional[str]) -> Optional[bool]:
    """Go's strconv.ParseBool, as the real sandbox reads ENABLE_NETWORK; None when it is not a boolean."""
    if value in GO_TRUE:
        return True
    if value in GO_FALSE:
        return False
    return None


def db_settings(env: Mapping[str, str]) -> Dict[str, Any]:
    """psycopg2.connect's arguments from DB_*; ContractError names what is missing or wrong."""
    db_type = env.get("DB_TYPE", "postgresql")
    if db_type not in ("postgresql", ""):
        raise ContractError("DB_TYPE=%r: this deployment's metadata database is PostgreSQL (DB_TYPE=postgresql)" % db_type)
    missing = [name for name in ("DB_HOST", "DB_PORT", "DB_USERNAME", "DB_DATABASE") if not env.get(name)]
    if missing:
        raise ContractError("%s empty or unset: the api cannot reach PostgreSQL" % ", ".join(missing))
    return {"host": env["DB_HOST"], "port": integer(env, "DB_PORT", minimum=1), "user": env["DB_USERNAME"],
            "password": env.get("DB_PASSWORD", ""), "dbname": env["DB_DATABASE"]}


def describe_db(settings: Mapping[str, Any]) -> str:
    return "DB_HOST=%s DB_PORT=%s DB_USERNAME=%s DB_DATABASE=%s" % (
        settings["host"], settings["port"], settings["user"], settings["dbname"])


def redis_from_env(env: Mapping[str, str]) -> RedisTarget:
    """The cache Redis of REDIS_HOST, REDIS_PORT, REDIS_PASSWORD, REDIS_DB (and REDIS_USE_SSL)."""
    if not env.get("REDIS_HOST"):
        raise ContractError("REDIS_HOST is empty or unset")
    return RedisTarget(env["REDIS_HOST"], integer(env, "REDIS_PORT", 6379, 1) or 6379, env.get("REDIS_PASSWORD") or None,
                       integer(env, "REDIS_DB", 0) or 0, is_true(env.get("REDIS_USE_SSL")))


def mask_url(url: str) -> str:
    """URL with its password replaced by ***, for messages."""
    return re.sub(r"(//[^/@:]*:)[^@/]*@", r"\1***@", url)


def parse_redis_url(name: str, url: Optional[str], user: str = "Celery", what: str = "the broker") -> RedisTarget:
    """redis://[user][:password]@host:port/db (or rediss://) as Celery reads CELERY_BROKER_URL (USER and WHAT name the
    reader in messages: the agent backend reads DIFY_AGENT_REDIS_URL the same way)."""
    if not url:
        raise ContractError("%s is empty or unset: %s needs redis://:password@host:port/db" % (name, user))
    parts = urlsplit(url)
    shown = mask_url(url)
    if parts.scheme not in ("redis", "rediss"):
        raise ContractError("%s=%s is not a redis:// URL (%s is Redis)" % (name, shown, what))
    try:
        port = parts.port or 6379
    except ValueError:
        raise ContractError("%s=%s has an invalid port (a password with '/', '#', '?' or '@' must be URL-encoded)"
                            % (name, shown))
    if not parts.hostname:
        raise ContractError("%s=%s names no host" % (name, shown))
    path = parts.path.strip("/") or "0"
    if not path.isdigit() or parts.query or parts.fragment:
        raise ContractError("%s=%s: the path must be a database number like /1 (a password with '/', '#' or '?' must be "
                            "URL-encoded)" % (name, shown))
    password = unquote(parts.password) if parts.password is not None else None
    return RedisTarget(parts.hostname, port, password or None, int(path), parts.scheme == "rediss")


def broker_problems(cache: RedisTarget, broker: RedisTarget) -> Tuple[List[str], List[str]]:
    """(problems, warnings) of a broker next to the cache Redis."""
    same_server = (cache.host, cache.port) == (broker.host, broker.port)
    if not same_server:
        return [], []
    problems = []
    if cache.password != broker.password:
        problems.append("CELERY_BROKER_URL names the Redis of REDIS_HOST:REDIS_PORT (%s:%d) with another password than "
                        "REDIS_PASSWORD" % (cache.host, cache.port))
    warnings = []
    if cache.db == broker.db:
        warnings.append("CELERY_BROKER_URL uses database %d, the same as REDIS_DB: Celery's queues share the cache's "
                        "keyspace (upstream: cache 0, broker 1)" % broker.db)
    return problems, warnings


def storage_root_problem(env: Mapping[str, str], workdir: str = API_WORKDIR, volume: str = STORAGE_DIR) -> Optional[str]:
    """Local storage must land in the storage volume; S3 needs its endpoint and bucket."""
    kind = env.get("STORAGE_TYPE", "opendal")
    if kind == "s3":
        missing = [name for name in ("S3_ENDPOINT", "S3_BUCKET_NAME") if not env.get(name)]
        return "STORAGE_TYPE=s3 but %s empty or unset" % ", ".join(missing) if missing else None
    if kind == "opendal" and env.get("OPENDAL_SCHEME", "fs") == "fs":
        root = env.get("OPENDAL_FS_ROOT") or "storage"
        resolved = os.path.normpath(os.path.join(workdir, root))
        if resolved != volume and not resolved.startswith(volume + "/"):
            return ("OPENDAL_FS_ROOT=%r resolves to %s, outside the storage volume %s: uploads would be lost with the "
                    "container" % (root, resolved, volume))
    return None


def pool_warning(env: Mapping[str, str], mode: str) -> Optional[str]:
    """SQLAlchemy's pool against the greenlets that share it (api: SERVER_WORKER_CONNECTIONS; worker: Celery's
    concurrency). ContractError names a value that is not a number."""
    pool = integer(env, "SQLALCHEMY_POOL_SIZE")
    overflow = integer(env, "SQLALCHEMY_MAX_OVERFLOW")
    if mode == "api":
        name, wanted = "SERVER_WORKER_CONNECTIONS", integer(env, "SERVER_WORKER_CONNECTIONS")
    elif mode == "worker":
        scale = is_true(env.get("CELERY_AUTO_SCALE"))
        name = "CELERY_MAX_WORKERS" if scale else "CELERY_WORKER_AMOUNT"
        wanted = integer(env, name)
    else:
        return None
    if pool is None or overflow is None or wanted is None or pool + overflow >= wanted:
        return None
    return ("SQLALCHEMY_POOL_SIZE (%d) + SQLALCHEMY_MAX_OVERFLOW (%d) = %d < %s (%d): greenlets will wait for database "
            "connections (QueuePool limit reached)" % (pool, overflow, pool + overflow, name, wanted))


def connections_warning(env: Mapping[str, str], max_connections: int) -> Optional[str]:
    processes = integer(env, "SERVER_WORKER_AMOUNT", 1) or 1
    per_process = (integer(env, "SQLALCHEMY_POOL_SIZE", 30) or 0) + (integer(env, "SQLALCHEMY_MAX_OVERFLOW", 10) or 0)
    if processes * per_process <= max_connections:
        return None
    return ("SERVER_WORKER_AMOUNT (%d) x (SQLALCHEMY_POOL_SIZE + SQLALCHEMY_MAX_OVERFLOW) (%d) = %d exceeds PostgreSQL's "
            "max_connections (%d) on its own" % (processes, per_process, processes * per_process, max_connections))


def select_role(role: str, mode: Optional[str]) -> str:
    """The role to run: dify-api dispatches on MODE like the real image's entrypoint (unset: api)."""
    if role != "dify-api":
        if role not in ("api", "worker", "beat", "web", "sandbox", "plugin_daemon", "agent_backend", "local_sandbox"):
            raise ContractError("unknown role %r (dify-api, api, worker, beat, web, sandbox, plugin_daemon, agent_backend, "
                                "local_sandbox)" % role)
        return role
    if mode in (None, "", "api"):
        return "api"
    if mode in ("worker", "beat"):
        return mode
    raise ContractError("MODE=%r: the deployment runs the dify-api image as MODE=api, worker or beat" % mode)


def api_route(path: str) -> Optional[str]:
    """The gateway's api route PATH falls under, or None."""
    for route in API_ROUTES:
        if path == route or path.startswith(route + "/"):
            return route
    return None


def inner_key_ok(env: Mapping[str, str], header: Optional[str]) -> bool:
    """Dify's plugin_inner_api_only: PLUGIN_DAEMON_KEY set and X-Inner-Api-Key equal to INNER_API_KEY_FOR_PLUGIN."""
    key = env.get("INNER_API_KEY_FOR_PLUGIN") or ""
    return bool(env.get("PLUGIN_DAEMON_KEY")) and bool(key) and hmac.compare_digest((header or "").encode(), key.encode())


def web_page(path: str) -> Optional[str]:
    """'page', 'static' or None (404) for a path the web serves."""
    if path.startswith("/_next/"):
        return "static"
    for page in WEB_PAGES:
        if path == page or (page != "/" and path.startswith(page + "/")):
            return "page"
    return None


def sse_event(payload: Mapping[str, Any]) -> bytes:
    """One server-sent event as Dify writes them: `data: {json}` and a blank line."""
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


def file_signature(secret_key: str, file_id: str, timestamp: str, nonce: str) -> str:
    message = "file-preview|%s|%s|%s" % (file_id, timestamp, nonce)
    digest = hmac.new(secret_key.encode(), message.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode()


def signed_file_url(base_url: str, secret_key: str, file_id: str, timestamp: int, nonce: str) -> str:
    """Dify's core/file/helpers.get_signed_file_url: {FILES_URL}/files/<id>/file-preview?timestamp&nonce&sign."""
    query = {"timestamp": str(timestamp), "nonce": nonce, "sign": file_signature(secret_key, file_id, str(timestamp), nonce)}
    return "%s/files/%s/file-preview?%s" % (base_url, file_id, urlencode(query))


def signature_valid(secret_key: str, file_id: str, query: Mapping[str, List[str]], now: float, timeout_s: int) -> bool:
    try:
        timestamp, nonce, sign = query["timestamp"][0], query["nonce"][0], query["sign"][0]
        fresh = now - int(timestamp) <= timeout_s
    except (KeyError, IndexError, ValueError):
        return False
    return fresh and hmac.compare_digest(sign, file_signature(secret_key, file_id, timestamp, nonce))


def _keystream(key: bytes, nonce: bytes, length: int) -> bytes:
    blocks = []
    for counter in range((length + 31) // 32):
        blocks.append(hmac.new(key, nonce + counter.to_bytes(8, "big"), hashlib.sha256).digest())
    return b"".join(blocks)[:length]


def credential_keys(secret_key: str, tenant_key: bytes) -> Tuple[bytes, bytes]:
    """The encryption and MAC keys of a tenant's credentials: both SECRET_KEY and the tenant's key file are needed
    (real Dify seals provider credentials with the tenant's key pair, whose private half is in the storage volume)."""
    root = hmac.new(secret_key.encode(), tenant_key, hashlib.sha256).digest()
    return hmac.new(root, b"encrypt", hashlib.sha256).digest(), hmac.new(root, b"authenticate", hashlib.sha256).digest()


def seal(secret_key: str, tenant_key: bytes, plaintext: str, nonce: Optional[bytes] = None) -> str:
    """PLAINTEXT encrypted and authenticated (HMAC-SHA256 counter stream, then HMAC-SHA256 tag), base64."""
    nonce = nonce if nonce is not None else os.urandom(16)
    enc, mac = credential_keys(secret_key, tenant_key)
    data = plaintext.encode()
    cipher = bytes(a ^ b for a, b in zip(data, _keystream(enc, nonce, len(data))))
    tag = hmac.new(mac, nonce + cipher, hashlib.sha256).digest()
    return base64.b64encode(nonce + cipher + tag).decode()


def unseal(secret_key: str, tenant_key: bytes, token: str) -> str:
    """The plaintext of a sealed TOKEN; ValueError when SECRET_KEY or the tenant's key is not the one that sealed it."""
    raw = base64.b64decode(token.encode())
    if len(raw) < 48:
        raise ValueError("the sealed value is truncated")
    nonce, cipher, tag = raw[:16], raw[16:-32], raw[-32:]
    enc, mac = credential_keys(secret_key, tenant_key)
    if not hmac.compare_digest(tag, hmac.new(mac, nonce + cipher, hashlib.sha256).digest()):
        raise ValueError("cannot decrypt: SECRET_KEY or the tenant's private key is not the one that encrypted it")
    return bytes(a ^ b for a, b in zip(cipher, _keystream(enc, nonce, len(cipher)))).decode()


def sandbox_request(endpoint: str, api_key: str, code: str) -> Tuple[str, Dict[str, str], bytes]:
    """(url, headers, body) exactly as Dify's CodeExecutor.execute_code posts to the sandbox."""
    url = endpoint.rstrip("/") + "/v1/sandbox/run"
    body = {"language": "python3", "code": code, "preload": "", "enable_network": True}
    return url, {"X-Api-Key": api_key, "Content-Type": "application/json"}, json.dumps(body).encode()


def sandbox_outcome(status: int, body: bytes) -> Tuple[str, Optional[str]]:
    """(stdout, error) from the sandbox's answer, with the errors of Dify's CodeExecutor."""
    if status == 503:
        return "", "Code execution service is unavailable"
    if status == 401:
        return "", ("Failed to execute code, got status code 401 (the sandbox refused X-Api-Key: CODE_EXECUTION_API_KEY "
                    "must equal the sandbox's API_KEY)")
    if status != 200:
        return "", "Failed to execute code, got status code %d, please check if the sandbox service is running" % status
    try:
        answer = json.loads(body.decode())
        code, message, data = answer["code"], answer.get("message"), answer.get("data") or {}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        return "", "Failed to parse response: %s" % exc
    if code != 0:
        return "", "Got error code: %s. Got error msg: %s" % (code, message)
    if data.get("error"):
        return str(data.get("stdout") or ""), str(data["error"])
    return str(data.get("stdout") or ""), None


def sandbox_answer(stdout: str, stderr: str) -> Dict[str, Any]:
    """The real sandbox's success shape (types.SuccessResponse of RunCodeResponse)."""
    return {"code": 0, "message": "success", "data": {"error": stderr, "stdout": stdout}}


def sandbox_error(code: int, message: str) -> Dict[str, Any]:
    return {"code": code, "message": message, "data": None}


def parse_vm_rss(status_text: str) -> int:
    """VmRSS in kB from /proc/<pid>/status (0 when absent)."""
    match = re.search(r"^VmRSS:\s+(\d+)\s+kB", status_text, re.MULTILINE)
    return int(match.group(1)) if match else 0


def sandbox_settings(config: Any, env: Mapping[str, str], path_problem: Callable[[str], Optional[str]],
                     config_path: str = SANDBOX_CONFIG) -> Tuple[Optional[SandboxSettings], List[str], List[str]]:
    """(settings, problems, warnings) of the sandbox: its YAML config as the real one reads it, then the
    environment, which overrides it (API_KEY, SANDBOX_PORT, WORKER_TIMEOUT, ENABLE_NETWORK, HTTP(S)_PROXY)."""
    if not isinstance(config, dict):
        return None, ["%s is not a YAML mapping" % config_path], []
    problems: List[str] = []
    warnings: List[str] = []
    app = config.get("app")
    if not isinstance(app, dict):
        return None, ["app: is missing from %s (it holds app.port)" % config_path], []
    port = app.get("port")
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        problems.append("app.port=%r in %s is not a port" % (port, config_path))
        port = SANDBOX_PORT
    env_port = env.get("SANDBOX_PORT", "")
    if env_port and env_port != str(port):
        problems.append("app.port=%s in %s differs from SANDBOX_PORT=%s (the ssrf_proxy and the api expect SANDBOX_PORT)"
                        % (port, config_path, env_port))
    api_key = env.get("API_KEY", "")
    if not api_key:
        problems.append("API_KEY is empty or unset: the sandbox would take the key of %s (upstream's known "
                        "'dify-sandbox')" % config_path)
    elif app.get("key") not in (None, "", api_key):
        warnings.append("app.key in %s differs from API_KEY; API_KEY wins, as in the real sandbox" % config_path)
    python_path = config.get("python_path")
    if python_path is None and SANDBOX_DEFAULT_PYTHON:
        python_path = SANDBOX_DEFAULT_PYTHON
    if not isinstance(python_path, str) or not python_path:
        problems.append("python_path is missing from %s" % config_path)
        python_path = ""
    else:
        why = path_problem(python_path)
        if why:
            problems.append("python_path: %s in %s %s: every Python code node would fail (the real dify-sandbox since "
                            "0.2.13 has its interpreter at /opt/python/bin/python3 and no /usr/local/bin/python3; "
                            "langgenius/dify#34634, #36002)" % (python_path, config_path, why))
    numbers = {}
    for key, default in (("max_workers", 4), ("max_requests", 50), ("worker_timeout", 5)):
        value = config.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            problems.append("%s=%r in %s is not a positive integer" % (key, value, config_path))
            value = default
        numbers[key] = value
    try:
        numbers["worker_timeout"] = integer(env, "WORKER_TIMEOUT", numbers["worker_timeout"], 1) or 1
    except ContractError as exc:
        problems.append(str(exc))
    network = parse_go_bool(env.get("ENABLE_NETWORK"))
    if network is not True:
        problems.append("ENABLE_NETWORK=%r is not true: the sandbox would reject every run, since Dify's code executor "
                        "always asks enable_network=true" % env.get("ENABLE_NETWORK"))
    if config.get("enable_network") is False:
        warnings.append("enable_network: false in %s (ENABLE_NETWORK=true overrides it)" % config_path)
    proxy = config.get("proxy") if isinstance(config.get("proxy"), dict) else {}
    proxies = {}
    for scheme, variable in (("http", "HTTP_PROXY"), ("https", "HTTPS_PROXY")):
        value = env.get(variable) or str(proxy.get(scheme) or "")
        where = variable if env.get(variable) else "proxy.%s in %s" % (scheme, config_path)
        if value:
            why = url_problem(where, value, allow_local=True)
            if why:
                problems.append(why)
        proxies[scheme] = value
    if problems:
        return None, problems, warnings
    return SandboxSettings(port, api_key, python_path, numbers["worker_timeout"], numbers["max_workers"],
                           numbers["max_requests"], True, proxies["http"], proxies["https"]), problems, warnings


def executable_problem(path: str) -> Optional[str]:
    """Why PATH cannot be run as an interpreter, or None."""
    if not os.path.lexists(path):
        return "does not exist in this image"
    if not os.path.exists(path):
        return "is a dangling link (to %s)" % os.readlink(path)
    if not os.path.isfile(path):
        return "is not a file"
    if not os.access(path, os.X_OK):
        return "is not executable"
    return None


def sandbox_child_env(settings: SandboxSettings, enable_network: bool) -> Dict[str, str]:
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": "/tmp", "PYTHONIOENCODING": "utf-8"}
    if enable_network:
        for scheme, value in (("http", settings.http_proxy), ("https", settings.https_proxy)):
            if value:
                env["%s_PROXY" % scheme.upper()] = env["%s_proxy" % scheme] = value
    return env


def iter_body(rfile: Any, headers: Mapping[str, str], chunk: int = CHUNK) -> Iterator[bytes]:
    """The request body as a stream of pieces: Content-Length or chunked transfer coding; never all at once."""
    if "chunked" in (headers.get("Transfer-Encoding") or "").lower():
        while True:
            size_line = rfile.readline(1024)
            if not size_line:
                raise ValueError("chunked body ended early")
            size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass
                return
            while size > 0:
                piece = rfile.read(min(size, chunk))
                if not piece:
                    raise ValueError("chunked body ended early")
                size -= len(piece)
                yield piece
            rfile.readline(1024)
    remaining = int(headers.get("Content-Length") or 0)
    while remaining > 0:
        piece = rfile.read(min(remaining, chunk))
        if not piece:
            raise ValueError("body ended %d bytes early" % remaining)
        remaining -= len(piece)
        yield piece


# --- Dify 1.16.1's agent (agent_backend, local_sandbox, and the api's side of it) -------------------------------

def agent_secret_problem(value: Optional[str], name: str = "DIFY_AGENT_SERVER_SECRET_KEY") -> Optional[str]:
    """Why VALUE is not what upstream asks of DIFY_AGENT_SERVER_SECRET_KEY: unpadded base64url of exactly 32 bytes
    (secrets.token_urlsafe(32): 43 characters), and not the development default. Never quotes the value."""
    if not value:
        return ("%s is %s: it derives the JWE encryption key of the Agent Stub bearer tokens; generate one with %s"
                % (name, "unset" if value is None else "empty", TOKEN_HINT))
    if value == AGENT_DEV_SECRET:
        return ("%s is upstream's development default (MDEyMzQ1...; it decodes to '0123456789abcdef' twice): anyone could "
                "forge Agent Stub bearer tokens; generate one with %s" % (name, TOKEN_HINT))
    if value.strip() != value:
        return "%s has leading or trailing whitespace: it must be unpadded base64url of %d bytes" % (name, AGENT_SECRET_BYTES)
    if "=" in value:
        return ("%s is padded with '=': it must be unpadded base64url of %d bytes (%d characters, as %s prints)"
                % (name, AGENT_SECRET_BYTES, len(base64.urlsafe_b64encode(b"\0" * AGENT_SECRET_BYTES).rstrip(b"=")),
                   TOKEN_HINT))
    foreign = sorted(set(value) - BASE64URL)
    if foreign:
        shown = ", ".join(repr(c) for c in foreign if c in "+/") or "characters outside A-Z a-z 0-9 - _"
        return ("%s holds %s: it is not base64url (standard base64 writes '+' and '/', base64url '-' and '_'); generate "
                "one with %s" % (name, shown, TOKEN_HINT))
    try:
        decoded = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        return "%s is not valid base64url (%d characters cannot be a base64 encoding)" % (name, len(value))
    if len(decoded) != AGENT_SECRET_BYTES:
        return ("%s decodes to %d bytes, not %d: generate one with %s"
                % (name, len(decoded), AGENT_SECRET_BYTES, TOKEN_HINT))
    return None


def bearer_token_problem(name: str, value: Optional[str], dev_default: Optional[str] = AGENT_DEV_TOKEN,
                         allow_empty: bool = False) -> Optional[str]:
    """Why VALUE cannot be the bearer token NAME: empty (unless ALLOW_EMPTY), upstream's development default, or not
    something an `Authorization: Bearer` header carries. Never quotes the value (except the public default)."""
    if not value:
        if allow_empty:
            return None
        return ("%s is %s: the agent backend's API would answer anyone, or no one; generate one with %s"
                % (name, "unset" if value is None else "empty", TOKEN_HINT))
    if dev_default is not None and value == dev_default:
        return ("%s is upstream's development default %r, which is public: generate one with %s"
                % (name, dev_default, TOKEN_HINT))
    if any(not 0x21 <= ord(c) <= 0x7e for c in value):
        return ("%s holds whitespace, control or non-ASCII characters: it cannot travel in an `Authorization: Bearer` "
                "header" % name)
    return None


def service_url_problem(name: str, value: Optional[str], service: str, container: str) -> Optional[str]:
    """Why VALUE is not an http(s) URL at which CONTAINER reaches SERVICE."""
    if not value:
        return "%s is %s: %s reaches %s there" % (name, "unset" if value is None else "empty", container, service)
    problem = url_problem(name, value, allow_local=True)
    if problem:
        return problem
    host = urlsplit(value).hostname or ""
    if is_local_host(host):
        return ("%s=%r points at %s: inside the %s container that is the container itself, not %s"
                % (name, value, host, container, service))
    return None


def bearer_ok(expected: str, header: Optional[str]) -> bool:
    """True when HEADER is `Bearer EXPECTED` (EXPECTED non-empty)."""
    if not expected or not header:
        return False
    scheme, _space, token = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), expected.encode())


class AgentSettings(NamedTuple):
    api_token: str
    redis: RedisTarget
    redis_url: str
    redis_prefix: str
    plugin_daemon_url: str
    inner_api_url: str
    shellctl_url: str
    shellctl_token: str
    stub_url: str
    grace_s: int
    retention_s: int


def agent_backend_settings(env: Mapping[str, str]) -> Tuple[Optional[AgentSettings], List[str], List[str]]:
    """(settings, problems, warnings) of dify-agent-backend 1.16.1, from the environment upstream's Compose gives it."""
    problems = uninterpolated(env, AGENT_VARIABLES)
    warnings: List[str] = []
    container = "agent_backend"
    for problem in (agent_secret_problem(env.get("DIFY_AGENT_SERVER_SECRET_KEY")),
                    bearer_token_problem("DIFY_AGENT_API_TOKEN", env.get("DIFY_AGENT_API_TOKEN")),
                    service_url_problem("DIFY_AGENT_PLUGIN_DAEMON_URL", env.get("DIFY_AGENT_PLUGIN_DAEMON_URL"),
                                        "the plugin daemon (like http://plugin_daemon:5002)", container),
                    service_url_problem("DIFY_AGENT_INNER_API_URL", env.get("DIFY_AGENT_INNER_API_URL"),
                                        "Dify's inner API (like http://api:5001)", container),
                    service_url_problem("DIFY_AGENT_SHELLCTL_ENTRYPOINT", env.get("DIFY_AGENT_SHELLCTL_ENTRYPOINT"),
                                        "local_sandbox's shellctl (like http://local_sandbox:5004)", container),
                    bearer_token_problem("DIFY_AGENT_SHELLCTL_AUTH_TOKEN", env.get("DIFY_AGENT_SHELLCTL_AUTH_TOKEN"),
                                         None, allow_empty=True)):
        if problem:
            problems.append(problem)
    for name, fallback in (("DIFY_AGENT_PLUGIN_DAEMON_API_KEY", "PLUGIN_DAEMON_KEY"),
                           ("DIFY_AGENT_INNER_API_KEY", "PLUGIN_DIFY_INNER_API_KEY")):
        if not env.get(name):
            problems.append("%s is empty or unset: upstream's Compose falls back to %s, so the agent backend always has "
                            "one" % (name, fallback))
    if not env.get("DIFY_AGENT_SHELLCTL_AUTH_TOKEN"):
        warnings.append("DIFY_AGENT_SHELLCTL_AUTH_TOKEN is empty (upstream's default): local_sandbox's shellctl runs "
                        "commands for anything on agent_sandbox_network; give both services the same token")
    redis_url = env.get("DIFY_AGENT_REDIS_URL") or ""
    target: Optional[RedisTarget] = None
    if not redis_url:
        problems.append("DIFY_AGENT_REDIS_URL is %s: upstream's Compose builds redis://:${REDIS_PASSWORD}@redis:6379/2"
                        % ("unset" if "DIFY_AGENT_REDIS_URL" not in env else "empty"))
    else:
        try:
            target = parse_redis_url("DIFY_AGENT_REDIS_URL", redis_url, "the agent backend", "its store")
        except ContractError as exc:
            problems.append(str(exc))
    if target is not None and target.db in (0, 1):
        warnings.append("DIFY_AGENT_REDIS_URL uses database %d: upstream keeps the agent's runs in database 2, apart from "
                        "the cache (0) and Celery's broker (1)" % target.db)
    stub = env.get("DIFY_AGENT_STUB_API_BASE_URL") or ""
    if stub:
        problem = service_url_problem("DIFY_AGENT_STUB_API_BASE_URL", stub, "agent_backend's Agent Stub API",
                                      "local_sandbox")
        if problem:
            problems.append(problem)
        elif not (urlsplit(stub).path.rstrip("/") + "/").startswith(AGENT_STUB_PREFIX + "/"):
            warnings.append("DIFY_AGENT_STUB_API_BASE_URL=%r is not under %s/: agent_ssrf_proxy lets local_sandbox reach "
                            "agent_backend only on ^%s/" % (stub, AGENT_STUB_PREFIX, AGENT_STUB_PREFIX))
    else:
        warnings.append("DIFY_AGENT_STUB_API_BASE_URL is empty: upstream's Compose sets "
                        "http://agent_backend:5050/agent-stub")
    numbers: Dict[str, int] = {}
    for name, default, minimum in (("DIFY_AGENT_SHUTDOWN_GRACE_SECONDS", 30, 0),
                                   ("DIFY_AGENT_RUN_RETENTION_SECONDS", 259200, 1)):
        try:
            numbers[name] = integer(env, name, default, minimum) or default
        except ContractError as exc:
            problems.append(str(exc))
            numbers[name] = default
    patterns = env.get("DIFY_AGENT_SHELL_REDACT_PATTERNS") or ""
    if patterns.strip():
        problem = redact_patterns_problem(patterns)
        if problem:
            problems.append(problem)
    if problems or target is None:
        return None, problems, warnings
    return AgentSettings(env["DIFY_AGENT_API_TOKEN"], target, mask_url(redis_url),
                         env.get("DIFY_AGENT_REDIS_PREFIX") or "dify-agent", env["DIFY_AGENT_PLUGIN_DAEMON_URL"].rstrip("/"),
                         env["DIFY_AGENT_INNER_API_URL"].rstrip("/"), env["DIFY_AGENT_SHELLCTL_ENTRYPOINT"].rstrip("/"),
                         env.get("DIFY_AGENT_SHELLCTL_AUTH_TOKEN") or "", stub,
                         numbers["DIFY_AGENT_SHUTDOWN_GRACE_SECONDS"], numbers["DIFY_AGENT_RUN_RETENTION_SECONDS"]), \
        problems, warnings


def redact_patterns_problem(value: str) -> Optional[str]:
    """DIFY_AGENT_SHELL_REDACT_PATTERNS: a JSON array of regular expressions, like ["sk-[A-Za-z0-9]+"]."""
    name = "DIFY_AGENT_SHELL_REDACT_PATTERNS"
    try:
        patterns = json.loads(value)
    except ValueError as exc:
        return "%s is not JSON (a JSON array of regular expressions, like [\"sk-[A-Za-z0-9]+\"]): %s" % (name, exc)
    if not isinstance(patterns, list) or not all(isinstance(item, str) for item in patterns):
        return "%s is not a JSON array of strings (regular expressions)" % name
    for item in patterns:
        try:
            re.compile(item)
        except re.error as exc:
            return "%s: %r is not a regular expression: %s" % (name, item, exc)
    return None


class LocalSandboxSettings(NamedTuple):
    token: str
    http_proxy: str
    https_proxy: str
    no_proxy: str
    path_isolation: bool


def local_sandbox_settings(env: Mapping[str, str]) -> Tuple[Optional[LocalSandboxSettings], List[str], List[str]]:
    """(settings, problems, warnings) of dify-agent-local-sandbox 1.16.1: SHELLCTL_AUTH_TOKEN, and the proxy that all
    its egress must take (upstream sets HTTP_PROXY and HTTPS_PROXY to http://agent_ssrf_proxy:3128)."""
    problems = uninterpolated(env, LOCAL_SANDBOX_VARIABLES)
    warnings: List[str] = []
    token = env.get("SHELLCTL_AUTH_TOKEN") or ""
    problem = bearer_token_problem("SHELLCTL_AUTH_TOKEN", token, None, allow_empty=True)
    if problem:
        problems.append(problem)
    if not token:
        warnings.append("SHELLCTL_AUTH_TOKEN is empty (upstream's default): shellctl runs commands for anything on "
                        "agent_sandbox_network, not only agent_backend")
    proxies = {}
    for name in ("HTTP_PROXY", "HTTPS_PROXY"):
        value = env.get(name) or ""
        if not value:
            problems.append("%s is %s: local_sandbox's egress must go through agent_ssrf_proxy (upstream sets "
                            "http://agent_ssrf_proxy:3128)" % (name, "unset" if name not in env else "empty"))
        else:
            problem = service_url_problem(name, value, "agent_ssrf_proxy (like http://agent_ssrf_proxy:3128)",
                                          "local_sandbox")
            if problem:
                problems.append(problem)
        proxies[name] = value
    no_proxy = env.get("NO_PROXY") or env.get("no_proxy") or ""
    bypass = [entry.strip() for entry in no_proxy.split(",") if entry.strip() and not is_local_host(entry.strip())]
    if bypass:
        warnings.append("NO_PROXY lists %s: requests there bypass agent_ssrf_proxy (upstream: localhost,127.0.0.1)"
                        % ", ".join(bypass))
    isolation = (env.get("SHELLCTL_ENABLE_PATH_ISOLATION") or "true").strip().lower()
    if isolation not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
        problems.append("SHELLCTL_ENABLE_PATH_ISOLATION=%r is not true or false" % env.get("SHELLCTL_ENABLE_PATH_ISOLATION"))
    if problems:
        return None, problems, warnings
    return LocalSandboxSettings(token, proxies["HTTP_PROXY"], proxies["HTTPS_PROXY"], no_proxy,
                                isolation in ("true", "1", "yes", "on")), problems, warnings


def api_agent_problems(env: Mapping[str, str]) -> List[str]:
    """The agent contract of Dify 1.16.1's api and worker, which get AGENT_BACKEND_BASE_URL (1.13.3 does not: then
    nothing applies)."""
    if "AGENT_BACKEND_BASE_URL" not in env:
        if tuple(int(p) for p in VERSION.split(".")) >= (1, 16):
            return ["AGENT_BACKEND_BASE_URL is unset: Dify %s's api and worker hand agent runs to the agent backend "
                    "(http://agent_backend:5050 in upstream's compose file)" % VERSION]
        return []
    problems = [service_url_problem("AGENT_BACKEND_BASE_URL", env.get("AGENT_BACKEND_BASE_URL"),
                                    "the agent backend (like http://agent_backend:5050)", "api"),
                bearer_token_problem("AGENT_BACKEND_API_TOKEN", env.get("AGENT_BACKEND_API_TOKEN"))]
    for name in ("AGENT_BACKEND_STREAM_READ_TIMEOUT_SECONDS", "AGENT_BACKEND_STREAM_MAX_RECONNECTS",
                 "AGENT_BACKEND_RUN_TIMEOUT_SECONDS"):
        try:
            integer(env, name)
        except ContractError as exc:
            problems.append(str(exc))
    return [p for p in problems if p]


def proxy_for(url: str, settings: LocalSandboxSettings) -> Optional[str]:
    """The proxy a request to URL takes from local_sandbox (None: NO_PROXY lets it go directly)."""
    parts = urlsplit(url)
    if urlrequest.proxy_bypass_environment(parts.hostname or "", {"no": settings.no_proxy}):
        return None
    return settings.https_proxy if parts.scheme == "https" else settings.http_proxy


def json_call(url: str, document: Any, headers: Mapping[str, str], timeout: float) -> Tuple[Optional[int], Any, str]:
    """POST DOCUMENT to URL as JSON, directly (no proxy): (status, parsed answer or None, error). status None: no
    answer at all (error says why)."""
    body = json.dumps(document).encode()
    request = urlrequest.Request(url, data=body, method="POST",
                                 headers=dict(headers, **{"Content-Type": "application/json"}))
    opener = urlrequest.build_opener(urlrequest.ProxyHandler({}))
    try:
        with opener.open(request, timeout=timeout) as answer:
            status, raw = answer.status, answer.read()
    except urlerror.HTTPError as exc:
        status, raw = exc.code, exc.read()
    except (urlerror.URLError, OSError) as exc:
        return None, None, str(getattr(exc, "reason", exc))
    try:
        return status, json.loads(raw.decode() or "null"), ""
    except ValueError:
        return status, None, "not JSON: %r" % raw[:200]


# ----------------------------------------------------------------------------------------------------------
# Logging, refusals, stopping
# ----------------------------------------------------------------------------------------------------------

def log(role: str, message: str) -> None:
    print("%s difyops-standin %s[%s]: %s" % (time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), role, HOST, message),
          flush=True)


def warn(role: str, message: str) -> None:
    print("CONTRACT: %s (%s on %s, stand-in for %s)" % (message, role, HOST, standin_for(role)), flush=True)


def standin_for(role: str) -> str:
    return STANDIN_FOR["dify-api" if role in ("api", "worker", "beat") else role]


def report_broken(role: str, problems: List[str]) -> None:
    """Print every broken contract, one `CONTRACT BROKEN:` line each, on stderr."""
    for problem in problems:
        print("CONTRACT BROKEN: %s (%s on %s, stand-in for %s)" % (problem, role, HOST, standin_for(role)),
              file=sys.stderr, flush=True)


def refuse(role: str, problems: List[str]) -> None:
    """Print every broken contract and exit 1."""
    report_broken(role, problems)
    sys.exit(1)


def require(module: Any, package: str) -> Any:
    if module is None:
        raise ContractError("%s is missing from this stand-in image (build it with tests/standins/*/Containerfile)" % package)
    return module


STOP = threading.Event()
SERVERS: List[ThreadingHTTPServer] = []


def on_signal(signum: int, frame: Any) -> None:
    STOP.set()
    for server in SERVERS:
        threading.Thread(target=server.shutdown, daemon=True).start()


def wait_s() -> float:
    try:
        return float(os.environ.get("DIFYOPS_STANDIN_WAIT_S") or WAIT_S)
    except ValueError:
        return WAIT_S


# ----------------------------------------------------------------------------------------------------------
# PostgreSQL, Redis and the storage volume
# ----------------------------------------------------------------------------------------------------------

FATAL_DB_ERRORS = (("password authentication failed", "DB_USERNAME/DB_PASSWORD"),
                   ("does not exist", "DB_USERNAME/DB_DATABASE"), ("no pg_hba.conf entry", "DB_HOST (pg_hba.conf)"))


def connect_db(role: str, settings: Mapping[str, Any]) -> Any:
    """A PostgreSQL connection, retried for up to 60 s; ContractError names the variables."""
    pg = require(psycopg2, "python3-psycopg2")
    deadline = time.monotonic() + wait_s()
    last = ""
    while not STOP.is_set():
        try:
            connection = pg.connect(connect_timeout=5, application_name="difyops-standin-%s" % role, **settings)
            connection.autocommit = True
            return connection
        except pg.Error as exc:
            last = " ".join(str(exc).split())
            for marker, names in FATAL_DB_ERRORS:
                if marker in last:
                    raise ContractError("PostgreSQL refused %s (%s): %s" % (describe_db(settings), names, last))
        if time.monotonic() > deadline:
            raise ContractError("cannot connect to PostgreSQL with %s after %.0f s: %s" % (describe_db(settings), wait_s(), last))
        STOP.wait(2)
    sys.exit(0)


def redis_client(target: RedisTarget) -> Any:
    module = require(redis, "python3-redis")
    return module.Redis(host=target.host, port=target.port, password=target.password, db=target.db, ssl=target.ssl,
                        socket_connect_timeout=5, socket_timeout=30, health_check_interval=30)


def ping_redis(target: RedisTarget, names: str) -> Any:
    """A Redis client that answered PING, retried for up to 60 s; ContractError names NAMES."""
    module = require(redis, "python3-redis")
    client = redis_client(target)
    deadline = time.monotonic() + wait_s()
    last = ""
    while not STOP.is_set():
        try:
            client.ping()
            return client
        except (module.exceptions.AuthenticationError, module.exceptions.ResponseError) as exc:
            raise ContractError("Redis at %s:%d db %d refused %s: %s" % (target.host, target.port, target.db, names, exc))
        except module.exceptions.RedisError as exc:
            last = str(exc)
        if time.monotonic() > deadline:
            raise ContractError("cannot reach Redis at %s:%d (%s) after %.0f s: %s" % (target.host, target.port, names, wait_s(), last))
        STOP.wait(2)
    sys.exit(0)


def check_storage(role: str, directory: str = STORAGE_DIR, volume: Optional[str] = None,
                  owner_hint: str = "Dify's init_permissions gives it to uid 1001", check_mount: bool = True) -> None:
    """Write, read back and remove a file in DIRECTORY; warn when VOLUME (default: DIRECTORY) is no mount point."""
    probe = os.path.join(directory, ".difyops-standin-%s-%s" % (role, HOST))
    content = ("%s %s %f" % (role, HOST, time.time())).encode()
    try:
        with open(probe, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        with open(probe, "rb") as handle:
            back = handle.read()
        os.unlink(probe)
    except OSError as exc:
        raise ContractError("cannot write to the storage volume %s as uid %d gid %d: %s (%s)"
                            % (directory, os.getuid(), os.getgid(), exc, owner_hint))
    if back != content:
        raise ContractError("the storage volume %s gave back other bytes than were written" % directory)
    if check_mount and not os.path.ismount(volume or directory):
        warn(role, "%s is not a mount point: files stored there die with the container" % (volume or directory))


def migrate(connection: Any) -> None:
    """Stands in for `flask db upgrade` on the migration host: one table, under an advisory lock."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(4242)")
        try:
            cursor.execute("CREATE TABLE IF NOT EXISTS %s (id serial PRIMARY KEY, host text NOT NULL, "
                           "version text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())" % MIGRATION_TABLE)
            cursor.execute("INSERT INTO " + MIGRATION_TABLE + " (host, version) VALUES (%s, %s)", (HOST, VERSION))
        finally:
            cursor.execute("SELECT pg_advisory_unlock(4242)")


def migrated(connection: Any) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", (MIGRATION_TABLE,))
        return bool(cursor.fetchone()[0])


def scalar(connection: Any, sql: str) -> Any:
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchone()[0]


def broker_policy(role: str, client: Any) -> None:
    try:
        policy = (client.config_get("maxmemory-policy") or {}).get("maxmemory-policy", "")
    except Exception as exc:  # CONFIG may be renamed or forbidden; the policy is then unknown
        log(role, "cannot read the broker's maxmemory-policy: %s" % exc)
        return
    if str(policy).startswith("allkeys-"):
        warn(role, "the broker's maxmemory-policy is %s: Redis may evict queued Celery tasks" % policy)


class AppContext(NamedTuple):
    db: Mapping[str, Any]
    connection: Any
    cache: RedisTarget
    broker_target: RedisTarget
    broker: Any


def app_checks(role: str, env: Mapping[str, str]) -> AppContext:
    """The start of api, worker and beat: every contract, then PostgreSQL, Redis, the broker, the storage."""
    problems = uninterpolated(env, APP_VARIABLES)
    warnings: List[str] = []
    if role in ("api", "worker"):
        problems += app_url_problems(env)
        if not env.get("SECRET_KEY"):
            problems.append("SECRET_KEY is empty or unset: Dify signs sessions and file links with it")
        if not env.get("INNER_API_KEY_FOR_PLUGIN") or not env.get("PLUGIN_DAEMON_KEY"):
            warnings.append("INNER_API_KEY_FOR_PLUGIN or PLUGIN_DAEMON_KEY is empty: Dify answers the plugin daemon's calls "
                            "to /inner/api with 404")
        problem = storage_root_problem(env)
        if problem:
            problems.append(problem)
        problems += api_agent_problems(env)
    else:
        warnings += ["%s (worker_beat shares the api's settings)" % p for p in app_url_problems(env)]
    warnings += url_warnings(env)
    settings: Dict[str, Any] = {}
    cache = broker = None
    try:
        settings = db_settings(env)
    except ContractError as exc:
        problems.append(str(exc))
    try:
        cache = redis_from_env(env)
    except ContractError as exc:
        problems.append(str(exc))
    try:
        broker = parse_redis_url("CELERY_BROKER_URL", env.get("CELERY_BROKER_URL"))
    except ContractError as exc:
        problems.append(str(exc))
    if cache and broker:
        broken, cautions = broker_problems(cache, broker)
        problems += broken
        warnings += cautions
    try:
        caution = pool_warning(env, role)
        if caution:
            warnings.append(caution)
    except ContractError as exc:
        problems.append(str(exc))
    for caution in warnings:
        warn(role, caution)
    if problems:
        refuse(role, problems)
    assert cache is not None and broker is not None
    if role in ("api", "worker"):
        check_storage(role)
        log(role, "storage volume %s: written and read back as uid %d" % (STORAGE_DIR, os.getuid()))
    connection = connect_db(role, settings)
    log(role, "PostgreSQL %s: connected, %s" % (describe_db(settings), scalar(connection, "SELECT version()").split(",")[0]))
    if role == "api":
        if is_true(env.get("MIGRATION_ENABLED")):
            migrate(connection)
            log(role, "MIGRATION_ENABLED=true: table %s created (stands in for flask db upgrade)" % MIGRATION_TABLE)
        elif not migrated(connection):
            warn(role, "MIGRATION_ENABLED=%r and no %s yet: no api has migrated this database"
                 % (env.get("MIGRATION_ENABLED"), MIGRATION_TABLE))
        warning = connections_warning(env, int(scalar(connection, "SHOW max_connections")))
        if warning:
            warn(role, warning)
    ping_redis(cache, "REDIS_HOST/REDIS_PORT/REDIS_PASSWORD/REDIS_DB")
    log(role, "Redis REDIS_HOST=%s REDIS_PORT=%d REDIS_DB=%d: PONG" % (cache.host, cache.port, cache.db))
    client = ping_redis(broker, "CELERY_BROKER_URL")
    log(role, "broker CELERY_BROKER_URL=%s:%d/%d: PONG" % (broker.host, broker.port, broker.db))
    broker_policy(role, client)
    return AppContext(settings, connection, cache, broker, client)


# ----------------------------------------------------------------------------------------------------------
# HTTP
# ----------------------------------------------------------------------------------------------------------

class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


class PoolTimeout(Exception):
    """SQLAlchemy's sqlalchemy.exc.TimeoutError, with its message."""


class ApiCapacity:
    """gunicorn's gevent workers as the api runs them: PROCESSES x GREENLETS connection slots (the rest of the
    clients wait in the listen backlog), and per process one SQLAlchemy QueuePool of POOL_SIZE + OVERFLOW
    connections, checked out for at most POOL_TIMEOUT s."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.processes = integer(env, "SERVER_WORKER_AMOUNT", 1, 1) or 1
        self.greenlets = integer(env, "SERVER_WORKER_CONNECTIONS", 10, 1) or 1
        self.pool_size = integer(env, "SQLALCHEMY_POOL_SIZE", 30) or 0
        self.overflow = integer(env, "SQLALCHEMY_MAX_OVERFLOW", 10) or 0
        raw = env.get("SQLALCHEMY_POOL_TIMEOUT", "").strip()
        try:
            self.pool_timeout = float(raw) if raw else 30.0
        except ValueError:
            raise ContractError("SQLALCHEMY_POOL_TIMEOUT=%r is not a number" % raw)
        self.free = list(range(self.processes * self.greenlets))
        self.changed = threading.Condition()
        # SQLAlchemy: pool_size 0 means no limit.
        self.pools = [threading.BoundedSemaphore(self.pool_size + self.overflow) if self.pool_size else None
                      for _process in range(self.processes)]
        self.timeouts = 0

    def take(self, timeout: float) -> Optional[int]:
        """The lowest free connection slot, or None when every greenlet stayed busy for TIMEOUT s."""
        with self.changed:
            if not self.changed.wait_for(lambda: self.free, timeout):
                return None
            self.free.sort()
            return self.free.pop(0)

    def give_back(self, slot: int) -> None:
        with self.changed:
            self.free.append(slot)
            self.changed.notify()

    @contextmanager
    def connection(self, slot: int) -> Iterator[None]:
        """A database connection of SLOT's process for the with block; PoolTimeout after pool_timeout s."""
        pool = self.pools[slot // self.greenlets]
        if pool is not None and not pool.acquire(timeout=self.pool_timeout):
            with self.changed:
                self.timeouts += 1
            raise PoolTimeout("QueuePool limit of size %d overflow %d reached, connection timed out, timeout %0.2f "
                              "(Background on this error at: https://sqlalche.me/e/20/3o7r)"
                              % (self.pool_size, self.overflow, self.pool_timeout))
        try:
            yield
        finally:
            if pool is not None:
                pool.release()


class ApiServer(Server):
    """Accepts a connection only when a greenlet is free (gevent's StreamServer stops accepting when its pool
    is full): the others stay in the listen backlog."""

    def __init__(self, address: Tuple[str, int], handler: type, capacity: ApiCapacity) -> None:
        self.capacity = capacity
        self.slots: Dict[Any, int] = {}
        super().__init__(address, handler)

    def get_request(self) -> Tuple[Any, Any]:
        slot = self.capacity.take(0.5)
        if slot is None:
            # Not accepted: serve_forever comes back here (and sees a shutdown) while the client waits.
            raise OSError("every greenlet is busy")
        try:
            request, address = super().get_request()
        except OSError:
            self.capacity.give_back(slot)
            raise
        self.slots[request] = slot
        return request, address

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.capacity.give_back(self.slots.pop(request))


class Handler(BaseHTTPRequestHandler):
    """Common answers; a subclass per role."""

    protocol_version = "HTTP/1.1"
    server_version = "difyops-standin"
    role = "standin"

    def send_json(self, status: int, document: Any, close: bool = False) -> None:
        body = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def send_text(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def not_found(self) -> None:
        # A body the handler did not read makes the connection unusable: close it.
        self.send_json(404, {"code": "not_found", "message": "%s serves no %s" % (self.role, self.path), "status": 404,
                             "host": HOST}, close=True)

    def body(self) -> Iterator[bytes]:
        return iter_body(self.rfile, self.headers)

    def read_json(self, limit: int = 16 * CHUNK) -> Any:
        data = b""
        for piece in self.body():
            data += piece
            if len(data) > limit:
                raise ValueError("JSON body over %d bytes" % limit)
        return json.loads(data.decode() or "null")

    def headers_seen(self) -> Dict[str, Optional[str]]:
        return {name: self.headers.get(name) for name in FORWARDED_HEADERS}

    def log_message(self, format: str, *args: Any) -> None:  # pylint: disable=redefined-builtin
        if "/health" not in str(args[0] if args else ""):
            log(self.role, "%s %s" % (self.address_string(), format % args))


def serve(role: str, handler: type, port: int) -> None:
    server = Server(("0.0.0.0", port), handler)
    SERVERS.append(server)
    log(role, "serving on 0.0.0.0:%d (stand-in for %s)" % (port, standin_for(role)))
    server.serve_forever(poll_interval=0.5)
    log(role, "stopped")


# ----------------------------------------------------------------------------------------------------------
# api
# ----------------------------------------------------------------------------------------------------------

class ApiState:
    """What the api's handlers share."""

    def __init__(self, env: Mapping[str, str], context: Optional[AppContext]) -> None:
        self.env = dict(env)
        self.context = context
        self.ballast: List[bytearray] = []
        self.lock = threading.Lock()
        self.pause_s = STREAM_PAUSE_S
        self.started = time.time()

    def broker(self) -> Any:
        if self.context is None:
            raise ContractError("no broker in this state")
        return self.context.broker

    def run_code(self, code: str) -> Tuple[str, Optional[str]]:
        """Through the sandbox, as Dify's CodeExecutor does (no proxy: the sandbox is on the internal network)."""
        endpoint = self.env.get("CODE_EXECUTION_ENDPOINT", "")
        if not endpoint:
            return "", "CODE_EXECUTION_ENDPOINT is empty or unset"
        url, headers, body = sandbox_request(endpoint, self.env.get("CODE_EXECUTION_API_KEY", ""), code)
        opener = urlrequest.build_opener(urlrequest.ProxyHandler({}))
        try:
            with opener.open(urlrequest.Request(url, data=body, headers=headers, method="POST"), timeout=60) as answer:
                return sandbox_outcome(answer.status, answer.read())
        except urlerror.HTTPError as exc:
            return sandbox_outcome(exc.code, exc.read())
        except (urlerror.URLError, OSError) as exc:
            return "", ("Failed to execute code, which is likely a network issue, please check if the sandbox service is "
                        "running. ( Error: %s ) [CODE_EXECUTION_ENDPOINT=%s]" % (exc, endpoint))


def rss_kb() -> int:
    try:
        with open("/proc/self/status") as handle:
            return parse_vm_rss(handle.read())
    except OSError:
        return 0


class ApiHandler(Handler):
    role = "api"
    state: ApiState
    keep_alive_s = 2.0
    requests_served = 0

    def handle_one_request(self) -> None:
        # gunicorn closes a keep-alive connection idle for --keep-alive (2) s; reading the request is not timed.
        if self.requests_served and isinstance(self.server, ApiServer):
            self.connection.settimeout(self.keep_alive_s)
        self.requests_served += 1
        super().handle_one_request()

    def parse_request(self) -> bool:
        self.connection.settimeout(None)
        return super().parse_request()

    def log_error(self, format: str, *args: Any) -> None:  # pylint: disable=redefined-builtin
        if not format.startswith("Request timed out"):
            super().log_error(format, *args)

    @contextmanager
    def database(self) -> Iterator[None]:
        """The scoped session's connection, held until the request ends (none counted outside an ApiServer)."""
        server = self.server
        if isinstance(server, ApiServer):
            with server.capacity.connection(server.slots[self.request]):
                yield
        else:
            yield

    def describe(self, route: str) -> Dict[str, Any]:
        return {"service": "api", "route": route, "path": self.path, "method": self.command, "host": HOST,
                "headers": self.headers_seen(), "standin_for": STANDIN_FOR["dify-api"]}

    def resolve(self, path: str) -> Optional[str]:
        """The route of PATH, or None once a 404 was sent (unknown path, or the plugin daemon's key refused)."""
        if path == INNER_ROUTE or path.startswith(INNER_ROUTE + "/"):
            if inner_key_ok(self.state.env, self.headers.get("X-Inner-Api-Key")):
                return INNER_ROUTE
            # Dify answers a bare 404; the stand-in says why.
            self.send_json(404, {"code": "not_found", "status": 404, "host": HOST,
                                 "message": "X-Inner-Api-Key does not equal INNER_API_KEY_FOR_PLUGIN (or PLUGIN_DAEMON_KEY is empty)"},
                           close=True)
            return None
        route = api_route(path)
        if route is None:
            self.not_found()
        return route

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        parts = urlsplit(self.path)
        if parts.path == "/health":
            self.send_json(200, {"status": "ok", "pid": os.getpid(), "version": VERSION, "host": HOST, "mode": "api",
                                 "standin_for": STANDIN_FOR["dify-api"]})
            return
        route = self.resolve(parts.path)
        if route is None:
            return
        if parts.path == STANDIN_PREFIX + "/status":
            self.status()
            return
        if parts.path == CREDENTIALS_PATH:
            self.credential_get(parse_qs(parts.query))
            return
        match = FILE_PREVIEW.match(parts.path)
        query = parse_qs(parts.query)
        if match and "sign" in query:
            self.preview(match.group(1), query)
            return
        self.send_json(200, self.describe(route))

    def do_POST(self) -> None:  # noqa: N802
        parts = urlsplit(self.path)
        route = self.resolve(parts.path)
        if route is None:
            return
        try:
            if parts.path == WORKFLOW_PATH:
                self.workflow()
            elif parts.path == STANDIN_PREFIX + "/task":
                self.task()
            elif parts.path == STANDIN_PREFIX + "/allocate":
                self.allocate(parse_qs(parts.query))
            elif parts.path == UPLOAD_PATH:
                self.upload()
            elif parts.path == CREDENTIALS_PATH:
                self.credential_put()
            elif parts.path == API_AGENT_PATH and "AGENT_BACKEND_BASE_URL" in self.state.env:
                self.agent()
            else:
                received = sum(len(piece) for piece in self.body())
                document = self.describe(route)
                document["bytes"] = received
                self.send_json(200, document)
        except (ValueError, ContractError) as exc:
            self.send_json(400, {"code": "invalid_param", "message": str(exc), "status": 400}, close=True)
        except PoolTimeout as exc:
            log("api", "%s %s failed: sqlalchemy.exc.TimeoutError: %s" % (self.command, self.path, exc))
            self.send_json(500, {"code": "internal_server_error", "message": str(exc), "status": 500, "host": HOST},
                           close=True)
        except (BrokenPipeError, ConnectionResetError) as exc:
            log("api", "%s %s: the client went away (%s)" % (self.command, self.path, exc))
            self.close_connection = True
        except Exception as exc:  # answered, not raised: the client sees what failed
            log("api", "%s %s failed: %r" % (self.command, self.path, exc))
            self.send_json(500, {"code": "internal_server_error", "message": "%s: %s" % (type(exc).__name__, exc), "status": 500,
                                 "host": HOST}, close=True)

    def status(self) -> None:
        state, checks = self.state, {}
        context = state.context
        try:
            connection = require(psycopg2, "python3-psycopg2").connect(connect_timeout=3, **context.db)
            try:
                checks["db"] = "ok: %s" % describe_db(context.db)
                checks["migrations"] = scalar(connection, "SELECT count(*) FROM %s" % MIGRATION_TABLE) if migrated(connection) else None
            finally:
                connection.close()
        except Exception as exc:  # the status reports every failure instead of raising it
            checks["db"] = "error: %s" % exc
        for name, target in (("redis", context.cache), ("broker", context.broker_target)):
            try:
                checks[name] = "ok: PONG" if redis_client(target).ping() else "error: no PONG"
            except Exception as exc:  # likewise
                checks[name] = "error: %s" % exc
        try:
            beat = state.broker().get(BEAT_KEY)
            checks["beat"] = json.loads(beat) if beat else None
        except Exception as exc:  # likewise
            checks["beat"] = "error: %s" % exc
        checks.update(host=HOST, mode="api", rss_kb=rss_kb(), ballast_mb=len(state.ballast))
        ok = all(not str(checks[name]).startswith("error") for name in ("db", "redis", "broker"))
        self.send_json(200 if ok else 503, checks)

    def workflow(self) -> None:
        request = self.read_json()
        code = ((request or {}).get("inputs") or {}).get("code") if isinstance(request, dict) else None
        if not isinstance(code, str) or not code:
            raise ValueError("inputs.code (python source) is required")
        with self.database():
            self.run_workflow(request, code)

    def run_workflow(self, request: Mapping[str, Any], code: str) -> None:
        mode = request.get("response_mode", "blocking")
        run_id, task_id, started = str(uuid.uuid4()), str(uuid.uuid4()), time.time()
        if mode == "streaming":
            self.stream(code, run_id, task_id, started)
            return
        stdout, error = self.state.run_code(code)
        document = {"workflow_run_id": run_id, "task_id": task_id, "host": HOST,
                    "data": {"id": run_id, "workflow_id": "difyops-standin", "status": "failed" if error else "succeeded",
                             "outputs": {"stdout": stdout}, "error": error, "elapsed_time": time.time() - started,
                             "total_steps": 1, "created_at": int(started), "finished_at": int(time.time())}}
        # Dify answers 200 with status "failed"; the stand-in answers 502 so that no check can take it for success.
        self.send_json(502 if error else 200, document)

    def chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def stream(self, code: str, run_id: str, task_id: str, started: float) -> None:
        """Server-sent events like Dify's (chunked, text/event-stream, no X-Accel-Buffering: the gateway must not
        buffer them on its own), STREAM_PAUSE_S apart, each stamped with the time it was sent."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        common = {"task_id": task_id, "workflow_run_id": run_id, "host": HOST}
        self.chunk(sse_event(dict(common, event="workflow_started", sent_at=time.time(),
                                  data={"id": run_id, "workflow_id": "difyops-standin", "created_at": int(started)})))
        time.sleep(self.state.pause_s)
        stdout, error = self.state.run_code(code)
        status = "failed" if error else "succeeded"
        self.chunk(sse_event(dict(common, event="node_finished", sent_at=time.time(),
                                  data={"node_id": "code", "node_type": "code", "status": status, "outputs": {"stdout": stdout},
                                        "error": error, "elapsed_time": time.time() - started})))
        time.sleep(self.state.pause_s)
        self.chunk(sse_event(dict(common, event="workflow_finished", sent_at=time.time(),
                                  data={"id": run_id, "status": status, "outputs": {"stdout": stdout}, "error": error,
                                        "elapsed_time": time.time() - started, "total_steps": 1})))
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def task(self) -> None:
        for _piece in self.body():
            pass
        broker = self.state.broker()
        task_id = str(uuid.uuid4())
        broker.lpush(TASK_QUEUE, json.dumps({"id": task_id, "queue": TASK_QUEUE, "sent_by": HOST, "sent_at": time.time()}))
        deadline = time.monotonic() + TASK_TIMEOUT_S
        while time.monotonic() < deadline:
            answer = broker.get(RESULT_KEY % task_id)
            if answer:
                self.send_json(200, {"task": task_id, "api_host": HOST, "worker": json.loads(answer)})
                return
            time.sleep(0.1)
        target = self.state.context.broker_target
        message = "no worker answered on the broker CELERY_BROKER_URL (%s:%d/%d) within %.0f s" % (
            target.host, target.port, target.db, TASK_TIMEOUT_S)
        self.send_json(504, {"task": task_id, "error": message})

    def allocate(self, query: Mapping[str, List[str]]) -> None:
        for _piece in self.body():
            pass
        try:
            megabytes = int(query.get("mb", ["0"])[0])
        except ValueError:
            raise ValueError("mb must be an integer")
        if not 0 < megabytes <= 1 << 20:
            raise ValueError("mb must be between 1 and 1048576")
        before = rss_kb()
        log("api", "allocating %d MiB more in pid %d (RSS %d kB)" % (megabytes, os.getpid(), before))
        with self.state.lock:
            for _block in range(megabytes):
                # Filled, not just reserved: every page is touched and counts against the memory limit.
                self.state.ballast.append(bytearray(b"\xa5") * CHUNK)
            total = len(self.state.ballast)
        self.send_json(200, {"allocated_mb": megabytes, "total_mb": total, "rss_kb_before": before, "rss_kb": rss_kb(),
                             "pid": os.getpid(), "host": HOST})

    def upload(self) -> None:
        env = self.state.env
        file_id = str(uuid.uuid4())
        local = env.get("STORAGE_TYPE", "opendal") != "s3"
        directory = os.path.join(STORAGE_DIR, "upload_files")
        size = 0
        if local:
            os.makedirs(directory, exist_ok=True)
            with open(os.path.join(directory, file_id), "wb") as handle:
                for piece in self.body():
                    handle.write(piece)
                    size += len(piece)
        else:
            size = sum(len(piece) for piece in self.body())
        now, nonce, secret_key = int(time.time()), os.urandom(16).hex(), env.get("SECRET_KEY", "")
        internal = env.get("INTERNAL_FILES_URL") or env.get("FILES_URL", "")
        self.send_json(201, {"id": file_id, "name": "upload", "size": size, "bytes": size, "extension": "bin",
                             "mime_type": self.headers.get("Content-Type"), "created_by": "difyops-standin",
                             "created_at": now, "host": HOST, "stored": local,
                             "source_url": signed_file_url(env.get("FILES_URL", ""), secret_key, file_id, now, nonce),
                             "internal_source_url": signed_file_url(internal, secret_key, file_id, now, nonce)})

    def tenant_key(self, tenant: str, create: bool) -> Optional[bytes]:
        """The tenant's private key file in the storage volume (made once, like Dify's at tenant creation)."""
        path = os.path.join(STORAGE_DIR, PRIVKEY_PATH % tenant)
        if create and not os.path.exists(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path + ".partial", "wb") as handle:
                handle.write(b"-----BEGIN DIFYOPS STAND-IN PRIVATE KEY-----\n%s\n-----END DIFYOPS STAND-IN PRIVATE KEY-----\n"
                             % base64.b64encode(os.urandom(64)))
            os.replace(path + ".partial", path)
        try:
            with open(path, "rb") as handle:
                return handle.read()
        except OSError:
            return None

    def credential_db(self) -> Any:
        return require(psycopg2, "python3-psycopg2").connect(connect_timeout=5, **self.state.context.db)

    def credential_put(self) -> None:
        """POST {"tenant", "name", "value"}: stores the value sealed with SECRET_KEY and the tenant's key."""
        request = self.read_json()
        tenant, name, value = (request.get(k) if isinstance(request, dict) else None for k in ("tenant", "name", "value"))
        if not (isinstance(tenant, str) and TENANT_NAME.match(tenant) and isinstance(name, str) and name
                and isinstance(value, str)):
            raise ValueError("tenant ([A-Za-z0-9_-]{1,64}), name and value (strings) are required")
        key = self.tenant_key(tenant, create=True)
        sealed = seal(self.state.env.get("SECRET_KEY", ""), key or b"", value)
        connection = self.credential_db()
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute("CREATE TABLE IF NOT EXISTS %s (tenant text NOT NULL, name text NOT NULL, sealed text NOT NULL, "
                               "PRIMARY KEY (tenant, name))" % CREDENTIALS_TABLE)
                cursor.execute("INSERT INTO " + CREDENTIALS_TABLE + " (tenant, name, sealed) VALUES (%s, %s, %s) "
                               "ON CONFLICT (tenant, name) DO UPDATE SET sealed = EXCLUDED.sealed", (tenant, name, sealed))
        finally:
            connection.close()
        self.send_json(201, {"tenant": tenant, "name": name, "stored": True, "key_file": PRIVKEY_PATH % tenant, "host": HOST})

    def credential_get(self, query: Mapping[str, List[str]]) -> None:
        """GET ?tenant=&name=: the value decrypted; 404 without the row or the tenant's key file, 409 when SECRET_KEY or
        the key file is not the one that sealed it."""
        tenant, name = query.get("tenant", [""])[0], query.get("name", [""])[0]
        connection = self.credential_db()
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT to_regclass(%s) IS NOT NULL", (CREDENTIALS_TABLE,))
                row = None
                if cursor.fetchone()[0]:
                    cursor.execute("SELECT sealed FROM " + CREDENTIALS_TABLE + " WHERE tenant = %s AND name = %s", (tenant, name))
                    row = cursor.fetchone()
        finally:
            connection.close()
        if row is None:
            self.send_json(404, {"code": "not_found", "message": "no credential %r of tenant %r in %s" % (name, tenant, CREDENTIALS_TABLE),
                                 "status": 404})
            return
        key = self.tenant_key(tenant, create=False) if TENANT_NAME.match(tenant) else None
        if key is None:
            self.send_json(404, {"code": "not_found", "status": 404, "message": "the tenant's private key %s is missing from %s"
                                 % (PRIVKEY_PATH % tenant, STORAGE_DIR)})
            return
        try:
            value = unseal(self.state.env.get("SECRET_KEY", ""), key, row[0])
        except ValueError as exc:
            log("api", "credential %s of tenant %s: %s" % (name, tenant, exc))
            self.send_json(409, {"code": "decrypt_failed", "message": str(exc), "status": 409})
            return
        self.send_json(200, {"tenant": tenant, "name": name, "value": value, "host": HOST})

    def agent(self) -> None:
        """POST {"command": ...} (optional): through the agent backend (AGENT_BACKEND_BASE_URL, Bearer
        AGENT_BACKEND_API_TOKEN) to local_sandbox's shellctl and back. A 401 on the way comes back as 401 naming
        the service that refused and the setting; no answer at all is 502."""
        request = self.read_json()
        command = request.get("command") if isinstance(request, dict) else None
        env = self.state.env
        base = (env.get("AGENT_BACKEND_BASE_URL") or "").rstrip("/")
        timeout = float(integer(env, "AGENT_BACKEND_STREAM_READ_TIMEOUT_SECONDS", 30, 1) or 30)
        status, answer, error = json_call(base + AGENT_RUN_PATH, {"command": command or AGENT_DEFAULT_COMMAND},
                                          {"Authorization": "Bearer %s" % env.get("AGENT_BACKEND_API_TOKEN", "")}, timeout)
        if status is None:
            self.send_json(502, {"code": "agent_backend_unreachable", "status": 502, "host": HOST,
                                 "message": "no answer from the agent backend at AGENT_BACKEND_BASE_URL=%s%s: %s"
                                 % (base, AGENT_RUN_PATH, error)})
            return
        document = answer if isinstance(answer, dict) else {"answer": answer, "error": error}
        if status == 401 and document.get("refused_by") in (None, "agent_backend"):
            document = dict(document, refused_by="agent_backend", message="the agent backend refused "
                            "AGENT_BACKEND_API_TOKEN (it must equal the agent backend's DIFY_AGENT_API_TOKEN)")
        log("api", "agent backend %s%s answered %d" % (base, AGENT_RUN_PATH, status))
        self.send_json(status if status in (200, 401) else 502,
                       {"api": HOST, "agent_backend_status": status, "agent_backend": document,
                        "refused_by": document.get("refused_by"), "message": document.get("message")})

    def preview(self, file_id: str, query: Mapping[str, List[str]]) -> None:
        env = self.state.env
        timeout = int(env.get("FILES_ACCESS_TIMEOUT") or 300)
        if not signature_valid(env.get("SECRET_KEY", ""), file_id, query, time.time(), timeout):
            self.send_json(403, {"code": "forbidden", "message": "Invalid request.", "status": 403})
            return
        path = os.path.join(STORAGE_DIR, "upload_files", file_id)
        try:
            handle = open(path, "rb")
        except OSError:
            self.send_json(404, {"code": "not_found", "message": "File not found in %s on %s" % (STORAGE_DIR, HOST), "status": 404})
            return
        with handle:
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(os.fstat(handle.fileno()).st_size))
            self.end_headers()
            for piece in iter(lambda: handle.read(CHUNK), b""):
                self.wfile.write(piece)


def run_api(env: Mapping[str, str]) -> None:
    context = app_checks("api", env)
    ApiHandler.state = ApiState(env, context)
    try:
        capacity = ApiCapacity(env)
    except ContractError as exc:
        refuse("api", [str(exc)])
    server = ApiServer(("0.0.0.0", API_PORT), ApiHandler, capacity)
    SERVERS.append(server)
    log("api", "serving on 0.0.0.0:%d, %d process(es) x %d greenlets, a pool of %d + %d per process, timeout %g s "
        "(stand-in for %s)" % (API_PORT, capacity.processes, capacity.greenlets, capacity.pool_size, capacity.overflow,
                               capacity.pool_timeout, standin_for("api")))
    server.serve_forever(poll_interval=0.5)
    log("api", "stopped")


# ----------------------------------------------------------------------------------------------------------
# worker and beat
# ----------------------------------------------------------------------------------------------------------

def run_worker(env: Mapping[str, str]) -> None:
    context = app_checks("worker", env)
    connection = context.connection
    log("worker", "waiting for tasks on the broker's list %s" % TASK_QUEUE)
    while not STOP.is_set():
        item = context.broker.brpop(TASK_QUEUE, timeout=2)
        if not item:
            continue
        try:
            task = json.loads(item[1])
            task_id = str(task["id"])
        except (ValueError, KeyError, TypeError) as exc:
            warn("worker", "dropped a malformed task on %s: %s" % (TASK_QUEUE, exc))
            continue
        result: Dict[str, Any] = {"id": task_id, "worker_host": HOST, "queue": TASK_QUEUE, "db": describe_db(context.db)}
        try:
            result["select_1"] = scalar(connection, "SELECT 1")
        except Exception as exc:  # a lost connection is reopened once; its error goes into the answer
            log("worker", "database connection lost (%s); reconnecting" % exc)
            try:
                connection = connect_db("worker", context.db)
                result["select_1"] = scalar(connection, "SELECT 1")
            except Exception as again:  # the answer says what failed (ContractError included)
                result["error"] = str(again)
        result["finished_at"] = time.time()
        context.broker.set(RESULT_KEY % task_id, json.dumps(result), ex=300)
        log("worker", "task %s from %s done: %s" % (task_id, task.get("sent_by"), json.dumps(result)))
    log("worker", "stopped")


def run_beat(env: Mapping[str, str]) -> None:
    context = app_checks("beat", env)
    broker = context.broker
    deadline = time.monotonic() + 20
    while not broker.set(BEAT_LOCK, HOST, nx=True, ex=15):
        holder = (broker.get(BEAT_LOCK) or b"").decode()
        if holder == HOST:
            break
        if time.monotonic() > deadline:
            refuse("beat", ["another worker_beat (on %s) beats on this broker (CELERY_BROKER_URL): Dify runs exactly one "
                            "worker_beat per deployment" % holder])
        STOP.wait(1)
    log("beat", "setting %s on the broker every 5 s" % BEAT_KEY)
    beats = 0
    while not STOP.is_set():
        beats += 1
        broker.set(BEAT_LOCK, HOST, ex=15)
        broker.set(BEAT_KEY, json.dumps({"host": HOST, "at": time.time(), "beats": beats}), ex=60)
        if beats == 1 or beats % 12 == 0:
            log("beat", "heartbeat %d" % beats)
        STOP.wait(5)
    if (broker.get(BEAT_LOCK) or b"").decode() == HOST:
        broker.delete(BEAT_LOCK)
    log("beat", "stopped")


# ----------------------------------------------------------------------------------------------------------
# web
# ----------------------------------------------------------------------------------------------------------

class WebHandler(Handler):
    role = "web"
    env: Dict[str, str] = {}

    def do_GET(self) -> None:  # noqa: N802
        path = urlsplit(self.path).path
        kind = web_page(path)
        if kind is None:
            self.not_found()
            return
        console_prefix = (self.env.get("CONSOLE_API_URL") or "") + "/console/api"
        public_prefix = (self.env.get("APP_API_URL") or "") + "/api"
        if kind == "static":
            self.send_json(200, {"static": path, "host": HOST, "service": "web", "headers": self.headers_seen()})
            return
        html = ("<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Dify (stand-in)</title>"
                "<meta name=\"difyops-standin-host\" content=\"%s\">"
                "<meta name=\"api-prefix\" content=\"%s\"><meta name=\"public-api-prefix\" content=\"%s\"></head>"
                "<body><h1>Dify web stand-in</h1><p>page %s served by %s (stand-in for %s)</p></body></html>"
                % (HOST, console_prefix, public_prefix, path, HOST, STANDIN_FOR["web"]))
        self.send_text(200, "text/html; charset=utf-8", html.encode())

    def do_POST(self) -> None:  # noqa: N802
        self.not_found()


def run_web(env: Mapping[str, str]) -> None:
    problems = uninterpolated(env, WEB_URLS + ("PORT",)) + web_url_problems(env)
    port = WEB_PORT
    try:
        port = integer(env, "PORT", WEB_PORT, 1) or WEB_PORT
    except ContractError as exc:
        problems.append(str(exc))
    if problems:
        refuse("web", problems)
    WebHandler.env = dict(env)
    console = env.get("CONSOLE_API_URL")
    log("web", "CONSOLE_API_URL=%r APP_API_URL=%r: console API at %s/console/api"
        % (console, env.get("APP_API_URL"), console or "(same origin)"))
    serve("web", WebHandler, port)


# ----------------------------------------------------------------------------------------------------------
# sandbox
# ----------------------------------------------------------------------------------------------------------

def execute(settings: SandboxSettings, code: str, preload: str, enable_network: bool,
            run_uid: Optional[int] = None) -> Dict[str, Any]:
    """Run python3 CODE with python_path in a fresh directory, worker_timeout seconds at most."""
    with tempfile.TemporaryDirectory(prefix="sandbox-") as directory:
        os.chmod(directory, 0o755)
        script = os.path.join(directory, "main.py")
        with open(script, "w") as handle:
            handle.write((preload + "\n" if preload else "") + code)
        os.chmod(script, 0o644)
        extra: Dict[str, Any] = {"user": run_uid, "group": run_uid, "extra_groups": []} if run_uid is not None else {}
        try:
            done = subprocess.run([settings.python_path, script], cwd=directory, env=sandbox_child_env(settings, enable_network),
                                  capture_output=True, timeout=settings.worker_timeout, check=False, **extra)
        except subprocess.TimeoutExpired as exc:
            return sandbox_answer((exc.stdout or b"").decode(errors="replace"), "error: timeout\n")
        except OSError as exc:
            return sandbox_error(-500, "cannot run python_path %s: %s" % (settings.python_path, exc))
    stderr = done.stderr.decode(errors="replace")
    if done.returncode != 0:
        stderr += "error: exit status %d\n" % done.returncode
    return sandbox_answer(done.stdout.decode(errors="replace"), stderr)


class FifoSemaphore:
    """A counting semaphore that serves its waiters in arrival order, as a Go buffered channel used as one
    (``sem <- struct{}{}`` ... ``<-sem``): a released permit goes straight to the oldest waiter, so a thread that
    arrives later cannot take it first. threading.Semaphore lets a newcomer take a permit before the woken
    waiter runs, which under load leaves some runs waiting many times longer than the rest."""

    def __init__(self, permits: int) -> None:
        self.lock = threading.Lock()
        self.free = permits
        self.waiters: List[threading.Event] = []

    def acquire(self, blocking: bool = True) -> bool:
        with self.lock:
            if self.free and not self.waiters:
                self.free -= 1
                return True
            if not blocking:
                return False
            turn = threading.Event()
            self.waiters.append(turn)
        turn.wait()  # the releasing thread hands its permit over before setting the event
        return True

    def release(self) -> None:
        with self.lock:
            if self.waiters:
                self.waiters.pop(0).set()
            else:
                self.free += 1

    def __enter__(self) -> "FifoSemaphore":
        self.acquire()
        return self

    def __exit__(self, *_exc: Any) -> None:
        self.release()


def sandbox_workers(settings: SandboxSettings) -> FifoSemaphore:
    """The limit on runs at once: max_workers, waiters served in arrival order."""
    return FifoSemaphore(settings.max_workers)


class SandboxHandler(Handler):
    role = "sandbox"
    settings: SandboxSettings
    run_uid: Optional[int] = None
    workers = FifoSemaphore(4)
    pending = [0]
    pending_lock = threading.Lock()

    def do_GET(self) -> None:  # noqa: N802
        if urlsplit(self.path).path == "/health":
            self.send_json(200, "ok")
            return
        self.not_found()

    def do_POST(self) -> None:  # noqa: N802
        path = urlsplit(self.path).path
        if path not in ("/v1/sandbox/run",):
            self.not_found()
            return
        if not hmac.compare_digest(self.headers.get("X-Api-Key") or "", self.settings.api_key):
            # The real sandbox aborts with a bare 401 (its auth middleware).
            self.send_response(401)
            self.send_header("Content-Length", "0")
            self.send_header("Connection", "close")
            self.close_connection = True
            self.end_headers()
            return
        try:
            request = self.read_json()
            language, code = request["language"], request["code"]
            preload, network = request.get("preload") or "", bool(request.get("enable_network"))
        except (ValueError, KeyError, TypeError) as exc:
            self.send_json(400, sandbox_error(-400, "invalid request: %s" % exc), close=True)
            return
        if language != "python3":
            self.send_json(200, sandbox_error(-400, "unsupported language %r (this stand-in runs python3 only)" % language))
            return
        if network and not self.settings.enable_network:
            self.send_json(200, sandbox_error(-400, "network is disabled"))
            return
        with self.pending_lock:
            if self.pending[0] >= self.settings.max_requests:
                self.send_json(503, sandbox_error(-503, "Too many requests"))
                return
            self.pending[0] += 1
        try:
            with self.workers:
                answer = execute(self.settings, code, preload, network, self.run_uid)
        finally:
            with self.pending_lock:
                self.pending[0] -= 1
        data = answer.get("data") or {}
        log("sandbox", "ran %d bytes of python3: %d bytes of stdout, error %r"
            % (len(code), len(data.get("stdout", "")), data.get("error") or answer.get("message")))
        self.send_json(200, answer)


def run_sandbox(env: Mapping[str, str], config_path: str = SANDBOX_CONFIG) -> None:
    problems = uninterpolated(env, SANDBOX_VARIABLES)
    module = yaml
    if module is None:
        refuse("sandbox", ["python3-yaml is missing from this stand-in image"])
    try:
        with open(config_path) as handle:
            config = module.safe_load(handle)
    except OSError as exc:
        refuse("sandbox", problems + ["cannot read %s: %s (the role writes sandbox/conf/config.yaml, mounted at /conf)"
                                      % (config_path, exc)])
    except module.YAMLError as exc:
        refuse("sandbox", problems + ["%s is not valid YAML: %s" % (config_path, " ".join(str(exc).split()))])
    settings, found, warnings = sandbox_settings(config, env, executable_problem, config_path)
    if problems or found or settings is None:
        refuse("sandbox", problems + found)
    assert settings is not None
    for caution in warnings:
        warn("sandbox", caution)
    try:
        with open(SANDBOX_DEPENDENCIES) as handle:
            wanted = [line.strip() for line in handle if line.strip() and not line.startswith("#")]
        if wanted:
            log("sandbox", "%s lists %s: the stand-in installs nothing" % (SANDBOX_DEPENDENCIES, ", ".join(wanted)))
    except OSError:
        pass
    SandboxHandler.settings = settings
    SandboxHandler.workers = sandbox_workers(settings)
    SandboxHandler.run_uid = SANDBOX_RUN_UID if os.getuid() == 0 else None
    log("sandbox", "%s: python_path %s, worker_timeout %d s, max_workers %d, proxy %s"
        % (config_path, settings.python_path, settings.worker_timeout, settings.max_workers, settings.http_proxy or "none"))
    serve("sandbox", SandboxHandler, settings.port)


# ----------------------------------------------------------------------------------------------------------
# plugin_daemon (langgenius/dify-plugin-daemon 0.5.3, PLATFORM=local)
# ----------------------------------------------------------------------------------------------------------

class DaemonSettings(NamedTuple):
    port: int
    server_key: str
    inner_api_url: str
    inner_api_key: str
    db: Dict[str, Any]
    default_db: str
    max_open: int
    redis: RedisTarget
    storage_type: str
    storage_root: Optional[str]
    working_path: str
    remote_installing: bool
    remote_host: str
    remote_port: Optional[int]
    max_package_size: int


def daemon_settings(env: Mapping[str, str], workdir: str = DAEMON_WORKDIR,
                    volume: str = DAEMON_VOLUME) -> Tuple[Optional[DaemonSettings], List[str], List[str]]:
    """(settings, problems, warnings) of the plugin daemon, as its config.Validate() and SetDefault() read the
    environment (envconfig), plus the storage volume the deployment mounts at /app/storage."""
    problems = uninterpolated(env, DAEMON_VARIABLES)
    warnings: List[str] = []
    for name, field in DAEMON_REQUIRED:
        if not env.get(name):
            problems.append("%s is empty or unset: the real daemon panics at start (invalid configuration: Config.%s "
                            "failed on the 'required' tag)" % (name, field))
    numbers: Dict[str, Optional[int]] = {}
    for name, default, minimum, maximum in DAEMON_NUMBERS:
        try:
            value = integer(env, name, default, minimum)
        except ContractError as exc:
            problems.append("%s%s" % (exc, ": the real daemon panics at start (envconfig cannot parse it)"
                                      if "not an integer" in str(exc) else ""))
            value = default
        if value is not None and maximum is not None and value > maximum:
            problems.append("%s=%d is not a port (the real daemon reads it as uint16)" % (name, value))
        numbers[name] = value
    db_type = env.get("DB_TYPE") or "postgresql"
    if db_type != "postgresql":
        problems.append("DB_TYPE=%r: the deployment keeps the plugin daemon's database in PostgreSQL (DB_TYPE=postgresql)"
                        % db_type)
    ssl_mode = env.get("DB_SSL_MODE") or "disable"
    if ssl_mode not in ("disable", "require"):
        problems.append("DB_SSL_MODE=%r: the real daemon accepts only disable or require (validate oneof=disable require) "
                        "and panics at start" % ssl_mode)
    remote = True
    if env.get("PLUGIN_REMOTE_INSTALLING_ENABLED"):
        parsed = parse_go_bool(env["PLUGIN_REMOTE_INSTALLING_ENABLED"])
        if parsed is None:
            problems.append("PLUGIN_REMOTE_INSTALLING_ENABLED=%r is not a Go boolean (true/false): the real daemon panics "
                            "at start" % env["PLUGIN_REMOTE_INSTALLING_ENABLED"])
        else:
            remote = parsed
    if remote:
        if not env.get("PLUGIN_REMOTE_INSTALLING_HOST"):
            problems.append("PLUGIN_REMOTE_INSTALLING_HOST is empty or unset while PLUGIN_REMOTE_INSTALLING_ENABLED is true "
                            "(its default): the real daemon panics at start: plugin remote installing host is empty")
        if not numbers.get("PLUGIN_REMOTE_INSTALLING_PORT"):
            problems.append("PLUGIN_REMOTE_INSTALLING_PORT is empty, unset or 0 while PLUGIN_REMOTE_INSTALLING_ENABLED is "
                            "true (its default): the real daemon panics at start: plugin remote installing port is empty")
    inner_url = env.get("DIFY_INNER_API_URL") or ""
    if inner_url:
        parts = urlsplit(inner_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            problems.append("DIFY_INNER_API_URL=%r is not an absolute http(s) URL (like http://api:5001)" % inner_url)
        elif is_local_host(parts.hostname):
            problems.append("DIFY_INNER_API_URL=%r points at %s: inside the plugin_daemon container that is the daemon "
                            "itself, not Dify's api (like http://api:5001)" % (inner_url, parts.hostname))
    storage_type = env.get("PLUGIN_STORAGE_TYPE") or "local"
    storage_root: Optional[str] = None
    if storage_type == "local":
        root = env.get("PLUGIN_STORAGE_LOCAL_ROOT") or "storage"
        storage_root = os.path.normpath(os.path.join(workdir, root))
        if storage_root != volume and not storage_root.startswith(volume + "/"):
            problems.append("PLUGIN_STORAGE_LOCAL_ROOT=%r resolves to %s, outside the volume %s: installed plugins and "
                            "packages would be lost with the container" % (root, storage_root, volume))
    elif storage_type == "aws_s3":
        missing = [name for name in ("S3_ENDPOINT", "PLUGIN_STORAGE_OSS_BUCKET", "AWS_ACCESS_KEY", "AWS_SECRET_KEY")
                   if not env.get(name)]
        if missing:
            problems.append("PLUGIN_STORAGE_TYPE=aws_s3 but %s empty or unset" % ", ".join(missing))
    elif storage_type in ("tencent_cos", "azure_blob", "gcs", "aliyun_oss", "huawei_obs", "volcengine_tos"):
        problems.append("PLUGIN_STORAGE_TYPE=%r: the deployment writes local or aws_s3, the two this stand-in honours"
                        % storage_type)
    else:
        problems.append("PLUGIN_STORAGE_TYPE=%r is none of the real daemon's storage types (local, aws_s3, ...): it "
                        "panics at start" % storage_type)
    if numbers.get("DB_MAX_OPEN_CONNS") == 0:
        warnings.append("DB_MAX_OPEN_CONNS=0: no limit on the daemon's PostgreSQL connections (database/sql's SetMaxOpenConns(0))")
    working = env.get("PLUGIN_WORKING_PATH") or ""
    working_path = os.path.normpath(os.path.join(workdir, working)) if working else ""
    if working_path and working_path != volume and not working_path.startswith(volume + "/"):
        warnings.append("PLUGIN_WORKING_PATH=%r resolves to %s, outside the volume %s: every plugin's environment is "
                        "rebuilt after the container is re-created" % (working, working_path, volume))
    if problems:
        return None, problems, warnings
    db = {"host": env["DB_HOST"], "port": numbers["DB_PORT"], "user": env["DB_USERNAME"], "password": env["DB_PASSWORD"],
          "dbname": env["DB_DATABASE"], "sslmode": ssl_mode}
    target = RedisTarget(env["REDIS_HOST"], numbers["REDIS_PORT"] or 6379, env.get("REDIS_PASSWORD") or None,
                         numbers["REDIS_DB"] or 0, is_true(env.get("REDIS_USE_SSL")))
    return DaemonSettings(numbers["SERVER_PORT"] or DAEMON_PORT, env["SERVER_KEY"], inner_url.rstrip("/"),
                          env["DIFY_INNER_API_KEY"], db, env.get("DB_DEFAULT_DATABASE") or "postgres",
                          numbers["DB_MAX_OPEN_CONNS"] or UNLIMITED, target, storage_type, storage_root, working_path, remote,
                          env.get("PLUGIN_REMOTE_INSTALLING_HOST", ""), numbers.get("PLUGIN_REMOTE_INSTALLING_PORT"),
                          numbers["MAX_PLUGIN_PACKAGE_SIZE"] or 52428800), [], warnings


def missing_database(message: str, dbname: str) -> bool:
    """True when PostgreSQL refused a connection because DBNAME does not exist (and not, say, the role)."""
    return 'database "%s" does not exist' % dbname in message


def plain_identifier(name: str) -> bool:
    """True for a name the real daemon's unquoted `CREATE DATABASE <name>` creates as it is spelled."""
    return re.match(r"^[a-z_][a-z0-9_]{0,62}$", name) is not None


def first_ipv4(addresses: List[Tuple[str, str]]) -> Optional[str]:
    """The first (interface, IPv4 address) pair's address that is neither loopback nor unspecified."""
    for _name, address in addresses:
        try:
            parsed = ipaddress.IPv4Address(address)
        except ValueError:
            continue
        if not parsed.is_loopback and not parsed.is_unspecified:
            return address
    return None


def node_key(node_id: str) -> str:
    return NODE_KEY_PREFIX + node_id


def hook_route(path: str) -> Optional[Tuple[str, str]]:
    """(hook_id, path) of the daemon's `/e/:hook_id/*path`, or None."""
    match = re.match(r"^/e/([^/]+)(/.*)?$", path)
    if not match:
        return None
    return match.group(1), match.group(2) or "/"


def plugin_route(path: str) -> Optional[Tuple[str, str]]:
    """(tenant_id, rest) of the daemon's `/plugin/:tenant_id/...` routes (X-Api-Key = SERVER_KEY), or None."""
    match = re.match(r"^/plugin/([^/]+)(/.*)?$", path)
    if not match:
        return None
    return match.group(1), match.group(2) or "/"


def api_key_ok(server_key: str, header: Optional[str]) -> bool:
    """The daemon's CheckingKey: X-Api-Key equal to SERVER_KEY."""
    return bool(server_key) and hmac.compare_digest((header or "").encode(), server_key.encode())


def daemon_error(code: int, message: str, error_type: str) -> Dict[str, Any]:
    """The real daemon's error answers (exception.*Error(...).ToResponse())."""
    return {"code": code, "message": message, "error_type": error_type, "data": None}


def redirect_url(ip: str, port: int, path: str, query: str) -> str:
    """The real cluster's constructRedirectUrl: http://<registered ip>:<port><path>[?query]."""
    return "http://%s:%d%s%s" % (ip, port, path, "?" + query if query else "")


def inner_api_verdict(url: str, status: Optional[int], error: Optional[str]) -> Tuple[str, str]:
    """('ok' | 'broken' | 'waiting', message) from the api's answer to the daemon's call of its inner API."""
    if status is None:
        return "waiting", ("Dify's inner API at DIFY_INNER_API_URL (%s) is unreachable: %s (the api may still be starting; "
                           "every plugin call back into Dify fails until it answers)" % (url, error))
    if status in (401, 404):
        return "broken", ("Dify's api at DIFY_INNER_API_URL answered %d to X-Inner-Api-Key = DIFY_INNER_API_KEY (%s): "
                          "DIFY_INNER_API_KEY must equal the api's INNER_API_KEY_FOR_PLUGIN and the api needs "
                          "PLUGIN_DAEMON_KEY (or DIFY_INNER_API_URL is not Dify's api)" % (status, url))
    if 200 <= status < 300:
        return "ok", "Dify's inner API at %s accepts DIFY_INNER_API_KEY (HTTP %d)" % (url, status)
    return "waiting", "Dify's inner API at DIFY_INNER_API_URL (%s) answered HTTP %d; retrying" % (url, status)


def interface_addresses() -> List[Tuple[str, str]]:
    """(interface, IPv4 address) of every interface that has one, in interface order (Linux SIOCGIFADDR)."""
    found = []
    for _index, name in socket.if_nameindex():
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            try:
                packed = fcntl.ioctl(sock.fileno(), 0x8915, struct.pack("256s", name.encode()[:15]))
            except OSError:
                continue
        found.append((name, socket.inet_ntoa(packed[20:24])))
    return found


def in_container() -> bool:
    return os.path.exists("/run/.containerenv") or os.path.exists("/.dockerenv")


class DbPool:
    """At most MAX_OPEN PostgreSQL connections, opened on demand and reused (database/sql's SetMaxOpenConns)."""

    def __init__(self, factory: Callable[[], Any], max_open: int, busy_wait_s: float = 30.0) -> None:
        self.factory = factory
        self.max_open = max_open
        self.busy_wait_s = busy_wait_s
        self.idle: List[Any] = []
        self.opened = 0
        self.peak = 0
        self.cond = threading.Condition()

    def acquire(self) -> Any:
        deadline = time.monotonic() + self.busy_wait_s
        with self.cond:
            while not self.idle and self.opened >= self.max_open:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError("all DB_MAX_OPEN_CONNS=%d connections stayed busy for %.0f s"
                                       % (self.max_open, self.busy_wait_s))
                self.cond.wait(remaining)
            if self.idle:
                return self.idle.pop()
            self.opened += 1
            self.peak = max(self.peak, self.opened)
        try:
            return self.factory()
        except BaseException:
            with self.cond:
                self.opened -= 1
                self.cond.notify()
            raise

    def release(self, connection: Any, broken: bool = False) -> None:
        with self.cond:
            if broken:
                self.opened -= 1
                try:
                    connection.close()
                except Exception:  # a broken connection may fail to close; it is dropped either way
                    pass
            else:
                self.idle.append(connection)
            self.cond.notify()

    @contextmanager
    def connection(self) -> Iterator[Any]:
        connection = self.acquire()
        try:
            yield connection
        except BaseException:
            self.release(connection, broken=bool(getattr(connection, "closed", 0)))
            raise
        self.release(connection)

    def status(self) -> Dict[str, int]:
        with self.cond:
            return {"db_open": self.opened, "db_idle": len(self.idle), "db_in_use": self.opened - len(self.idle),
                    "db_max_open": self.max_open, "db_peak": self.peak, "threads": threading.active_count()}

    def close(self) -> None:
        with self.cond:
            for connection in self.idle:
                connection.close()
            self.opened -= len(self.idle)
            self.idle = []


class DaemonState:
    """What the daemon's handlers share: its settings, node id, database pool and Redis."""

    def __init__(self, settings: DaemonSettings, node_id: str, pool: Optional[DbPool], cache: Any, address: Optional[str]):
        self.settings = settings
        self.node_id = node_id
        self.pool = pool
        self.cache = cache
        self.address = address

    def endpoint_node(self, hook_id: str) -> Tuple[bool, Optional[str]]:
        """(found, node_id) of the endpoints row of HOOK_ID."""
        assert self.pool is not None
        with self.pool.connection() as connection, connection.cursor() as cursor:
            cursor.execute("SELECT node_id FROM endpoints WHERE hook_id = %s", (hook_id,))
            row = cursor.fetchone()
        return (row is not None), (row[0] if row else None)

    def add_endpoint(self, hook_id: str, node_id: str) -> None:
        assert self.pool is not None
        with self.pool.connection() as connection, connection.cursor() as cursor:
            cursor.execute("INSERT INTO endpoints (hook_id, node_id, tenant_id, plugin_id, name) VALUES (%s, %s, %s, %s, %s) "
                           "ON CONFLICT (hook_id) DO UPDATE SET node_id = EXCLUDED.node_id, updated_at = now()",
                           (hook_id, node_id, "difyops-standin", "difyops/standin", "difyops-standin"))

    def node_address(self, node_id: str) -> Optional[Tuple[str, int]]:
        """The address NODE_ID registered in Redis, or None."""
        entry = self.cache.hgetall(node_key(node_id))
        if not entry or not entry.get(b"ip"):
            return None
        return entry[b"ip"].decode(), int(entry.get(b"port") or 0)

    def nodes(self) -> Dict[str, Dict[str, str]]:
        found = {}
        for key in self.cache.scan_iter(match=NODE_KEY_PREFIX + "*", count=100):
            entry = self.cache.hgetall(key)
            found[key.decode()[len(NODE_KEY_PREFIX):]] = {k.decode(): v.decode() for k, v in entry.items()}
        return found

    def pool_status(self) -> Dict[str, int]:
        return self.pool.status() if self.pool is not None else {}


HOP_HEADERS = frozenset(("connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade",
                         "content-length", "host"))


class PluginDaemonHandler(Handler):
    role = "plugin_daemon"
    state: DaemonState
    redirect_timeout_s = REDIRECT_TIMEOUT_S

    def send_json(self, status: int, document: Any, close: bool = False) -> None:
        if self.command != "HEAD":
            super().send_json(status, document, close)
            return
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(json.dumps(document).encode())))
        self.end_headers()

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self.dispatch()

    def do_HEAD(self) -> None:  # noqa: N802
        self.dispatch()

    def do_POST(self) -> None:  # noqa: N802
        self.dispatch()

    def do_PUT(self) -> None:  # noqa: N802
        self.dispatch()

    def do_PATCH(self) -> None:  # noqa: N802
        self.dispatch()

    def do_DELETE(self) -> None:  # noqa: N802
        self.dispatch()

    def do_OPTIONS(self) -> None:  # noqa: N802
        self.dispatch()

    def unauthorized(self) -> None:
        self.send_json(401, daemon_error(-401, "unauthorized", "PluginDaemonUnauthorizedError"), close=True)

    def dispatch(self) -> None:
        parts = urlsplit(self.path)
        path = parts.path
        try:
            if path == "/health/check" and self.command in ("GET", "HEAD"):
                self.send_json(200, {"status": "ok", "pool_status": self.state.pool_status(), "version": DAEMON_VERSION,
                                     "platform": "local", "node_id": self.state.node_id, "host": HOST,
                                     "address": self.state.address, "standin_for": STANDIN_FOR["plugin_daemon"]})
                return
            hook = hook_route(path)
            if hook is not None:
                self.endpoint(hook[0], hook[1], parts.query)
                return
            tenant = plugin_route(path)
            if path.startswith(DAEMON_STANDIN_PREFIX + "/") or tenant is not None:
                if not api_key_ok(self.state.settings.server_key, self.headers.get("X-Api-Key")):
                    self.unauthorized()
                    return
                if path == DAEMON_STANDIN_PREFIX + "/endpoints" and self.command == "POST":
                    self.register_endpoint()
                elif path == DAEMON_STANDIN_PREFIX + "/nodes" and self.command == "GET":
                    self.send_json(200, {"self": self.state.node_id, "nodes": self.state.nodes()})
                elif tenant is not None:
                    received = sum(len(piece) for piece in self.body())
                    self.send_json(200, {"route": "/plugin/%s%s" % tenant, "tenant_id": tenant[0], "path": tenant[1],
                                         "method": self.command, "bytes": received, "node_id": self.state.node_id,
                                         "host": HOST, "standin_for": STANDIN_FOR["plugin_daemon"]})
                else:
                    self.not_found()
                return
            self.not_found()
        except (ValueError, KeyError, TypeError) as exc:
            self.send_json(400, daemon_error(-400, str(exc), "PluginDaemonBadRequestError"), close=True)
        except (BrokenPipeError, ConnectionResetError) as exc:
            log(self.role, "%s %s: the client went away (%s)" % (self.command, self.path, exc))
            self.close_connection = True
        except Exception as exc:  # answered, not raised: the client sees what failed
            log(self.role, "%s %s failed: %r" % (self.command, self.path, exc))
            self.send_json(500, daemon_error(-500, "%s: %s" % (type(exc).__name__, exc), "PluginDaemonInternalServerError"),
                           close=True)

    def register_endpoint(self) -> None:
        request = self.read_json()
        if not isinstance(request, dict) or not isinstance(request.get("hook_id"), str) or not request["hook_id"]:
            raise ValueError('JSON {"hook_id": "...", "node": "<node id>"} is required (node: this node when absent)')
        node = request.get("node") or self.state.node_id
        if not isinstance(node, str):
            raise ValueError("node must be a node id (a string)")
        self.state.add_endpoint(request["hook_id"], node)
        log(self.role, "endpoint %s registered on node %s" % (request["hook_id"], node))
        self.send_json(201, {"hook_id": request["hook_id"], "node": node, "this_node": self.state.node_id})

    def endpoint(self, hook_id: str, path: str, query: str) -> None:
        """The daemon's /e/:hook_id/*path: the endpoints row, then this node or the node running the plugin."""
        body = b"".join(self.body())
        if not self.headers.get("X-Original-Host"):
            self.headers["X-Original-Host"] = self.headers.get("Host") or ""
        found, node = self.state.endpoint_node(hook_id)
        if not found:
            self.send_json(404, daemon_error(-400, "endpoint not found", "PluginDaemonBadRequestError"))
            return
        if not node or node == self.state.node_id:
            self.send_json(200, {"hook_id": hook_id, "path": path, "query": query, "method": self.command, "bytes": len(body),
                                 "node_id": self.state.node_id, "host": HOST, "x_original_host": self.headers.get("X-Original-Host"),
                                 "host_header": self.headers.get("Host"), "redirected_by": self.headers.get(VIA_HEADER)})
            return
        if self.headers.get(VIA_HEADER):
            self.send_json(500, daemon_error(-500, "redirect loop: node %s sent this request on, and its plugin runs on node "
                                             "%s, not here" % (self.headers[VIA_HEADER], node),
                                             "PluginDaemonInternalServerError"))
            return
        address = self.state.node_address(node)
        if address is None:
            self.send_json(404, daemon_error(-500, "no available node, plugin not found on this node: node %s is not "
                                             "registered in Redis (%s)" % (node, node_key(node)),
                                             "PluginDaemonInternalServerError"))
            return
        self.redirect(node, address, body)

    def redirect(self, node: str, address: Tuple[str, int], body: bytes) -> None:
        """Send the request on to the node's registered address and answer its answer (cluster.RedirectRequest)."""
        parts = urlsplit(self.path)
        url = redirect_url(address[0], address[1], parts.path, parts.query)
        headers = {name: value for name, value in self.headers.items() if name.lower() not in HOP_HEADERS}
        headers[VIA_HEADER] = self.state.node_id
        connection = http.client.HTTPConnection(address[0], address[1], timeout=self.redirect_timeout_s)
        try:
            connection.request(self.command, parts.path + ("?" + parts.query if parts.query else ""), body=body or None,
                               headers=headers)
            answer = connection.getresponse()
            content = answer.read()
        except (OSError, http.client.HTTPException) as exc:
            message = "redirect request failed: %s %s: %s: %s (node %s registered %s:%d in Redis; from this node, %s, that " \
                      "address does not answer)" % (self.command, url, type(exc).__name__, exc, node, address[0], address[1], HOST)
            log(self.role, message)
            self.send_json(500, daemon_error(-500, message, "PluginDaemonInternalServerError"))
            return
        finally:
            connection.close()
        log(self.role, "%s %s: redirected to node %s at %s:%d, HTTP %d"
            % (self.command, self.path, node, address[0], address[1], answer.status))
        self.send_response(answer.status)
        for name, value in answer.getheaders():
            if name.lower() not in HOP_HEADERS and name.lower() not in ("server", "date"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(content)


def daemon_connect(settings: DaemonSettings, dbname: str) -> Any:
    pg = require(psycopg2, "python3-psycopg2")
    connection = pg.connect(connect_timeout=5, application_name="difyops-standin-plugin_daemon",
                            **dict(settings.db, dbname=dbname))
    connection.autocommit = True
    return connection


def daemon_database(settings: DaemonSettings) -> Any:
    """Connect to DB_DATABASE like pg.InitPluginDB: when that fails, connect to DB_DEFAULT_DATABASE, create DB_DATABASE
    unless pg_database has it, and connect again. Transient failures are retried for up to 60 s."""
    pg = require(psycopg2, "python3-psycopg2")
    dbname = settings.db["dbname"]
    shown = describe_db(settings.db) + " DB_SSL_MODE=%s" % settings.db["sslmode"]
    deadline = time.monotonic() + wait_s()
    last = ""
    while not STOP.is_set():
        try:
            return daemon_connect(settings, dbname)
        except pg.Error as exc:
            last = " ".join(str(exc).split())
        if missing_database(last, dbname):
            create_database(settings)
            continue
        if "SSL" in last and "support" in last:
            raise ContractError("PostgreSQL refused DB_SSL_MODE=%s (%s): %s" % (settings.db["sslmode"], shown, last))
        for marker, names in FATAL_DB_ERRORS:
            if marker in last:
                raise ContractError("PostgreSQL refused %s (%s): %s" % (shown, names, last))
        if time.monotonic() > deadline:
            raise ContractError("cannot connect to PostgreSQL with %s after %.0f s (DB_HOST/DB_PORT): %s" % (shown, wait_s(), last))
        STOP.wait(2)
    sys.exit(0)


def create_database(settings: DaemonSettings) -> None:
    """What pg.InitPluginDB does when DB_DATABASE does not exist; ContractError says why it could not."""
    pg = require(psycopg2, "python3-psycopg2")
    dbname, default, user = settings.db["dbname"], settings.default_db, settings.db["user"]
    log("plugin_daemon", "DB_DATABASE=%s does not exist: connecting to DB_DEFAULT_DATABASE=%s to create it, as the real daemon "
        "does" % (dbname, default))
    try:
        connection = daemon_connect(settings, default)
    except pg.Error as exc:
        raise ContractError("DB_DATABASE=%s does not exist, and the daemon cannot connect to DB_DEFAULT_DATABASE=%s to create "
                            "it as DB_USERNAME=%s: %s" % (dbname, default, user, " ".join(str(exc).split())))
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,))
            if cursor.fetchone():
                return
            if not plain_identifier(dbname):
                raise ContractError("DB_DATABASE=%r does not exist and the real daemon cannot create it: it runs "
                                    "`CREATE DATABASE %s` unquoted" % (dbname, dbname))
            cursor.execute("CREATE DATABASE %s" % dbname)
            log("plugin_daemon", "created database %s as DB_USERNAME=%s" % (dbname, user))
    except pg.errors.DuplicateDatabase:
        log("plugin_daemon", "database %s was created meanwhile (by another daemon)" % dbname)
    except pg.Error as exc:
        raise ContractError("DB_DATABASE=%s does not exist and DB_USERNAME=%s cannot create it (CREATE DATABASE: %s): the real "
                            "daemon creates its database itself at start, so the role needs CREATEDB or the database must "
                            "exist" % (dbname, user, " ".join(str(exc).split())))
    finally:
        connection.close()


# The daemon's tables, as GORM's AutoMigrate creates them at start (internal/db/init.go). The real columns are
# GORM's models (internal/types/models); these are simplified. endpoints.node_id is the stand-in's shortcut
# for the real lookup (plugin_installations, then the cluster's plugin state in Redis, then the node).
DAEMON_TABLES = {
    "plugins": "plugin_unique_identifier text NOT NULL DEFAULT '', plugin_id text NOT NULL DEFAULT '', "
               "refers integer NOT NULL DEFAULT 0, install_type text NOT NULL DEFAULT '', manifest_type text, declaration text",
    "plugin_installations": "tenant_id text NOT NULL DEFAULT '', plugin_id text NOT NULL DEFAULT '', "
                            "plugin_unique_identifier text NOT NULL DEFAULT '', runtime_type text NOT NULL DEFAULT '', "
                            "endpoints_setups integer NOT NULL DEFAULT 0, endpoints_active integer NOT NULL DEFAULT 0, "
                            "source text, meta text",
    "plugin_declarations": "plugin_unique_identifier text NOT NULL DEFAULT '', plugin_id text NOT NULL DEFAULT '', "
                           "declaration text",
    "endpoints": "hook_id text NOT NULL UNIQUE, tenant_id text NOT NULL DEFAULT '', user_id text NOT NULL DEFAULT '', "
                 "plugin_id text NOT NULL DEFAULT '', name text NOT NULL DEFAULT '', enabled boolean NOT NULL DEFAULT true, "
                 "expired_at timestamptz, settings text, node_id text",
    "serverless_runtimes": "plugin_unique_identifier text NOT NULL DEFAULT '', function_url text, function_name text, "
                           "type text, checksum text, capacity integer NOT NULL DEFAULT 0, declaration text",
    "tool_installations": "tenant_id text NOT NULL DEFAULT '', provider text NOT NULL DEFAULT '', "
                          "plugin_unique_identifier text NOT NULL DEFAULT '', plugin_id text NOT NULL DEFAULT '', "
                          "declaration text",
    "ai_model_installations": "tenant_id text NOT NULL DEFAULT '', provider text NOT NULL DEFAULT '', "
                              "plugin_unique_identifier text NOT NULL DEFAULT '', plugin_id text NOT NULL DEFAULT '', "
                              "declaration text",
    "install_tasks": "status text NOT NULL DEFAULT '', tenant_id text NOT NULL DEFAULT '', total_plugins integer NOT NULL "
                     "DEFAULT 0, completed_plugins integer NOT NULL DEFAULT 0, plugins text",
    "tenant_storages": "tenant_id text NOT NULL DEFAULT '', plugin_id text NOT NULL DEFAULT '', size bigint NOT NULL DEFAULT 0",
    "agent_strategy_installations": "tenant_id text NOT NULL DEFAULT '', provider text NOT NULL DEFAULT '', "
                                    "plugin_unique_identifier text NOT NULL DEFAULT '', plugin_id text NOT NULL DEFAULT '', "
                                    "declaration text",
}


def daemon_migrate(connection: Any) -> List[str]:
    """CREATE TABLE IF NOT EXISTS for every table, under an advisory lock (daemons may start together)."""
    created = []
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(4243)")
        try:
            for table, columns in DAEMON_TABLES.items():
                cursor.execute("SELECT to_regclass(%s) IS NULL", (table,))
                if cursor.fetchone()[0]:
                    created.append(table)
                cursor.execute("CREATE TABLE IF NOT EXISTS %s (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), "
                               "created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now(), "
                               "%s)" % (table, columns))
        finally:
            cursor.execute("SELECT pg_advisory_unlock(4243)")
    return created


def check_inner_api(settings: DaemonSettings, node_id: str) -> None:
    """Call Dify's inner API until it answers: warn while unreachable, stop the daemon (exit 1) when it refuses the key."""
    url = settings.inner_api_url + INNER_PROBE + "?" + urlencode({"node": node_id})
    opener = urlrequest.build_opener(urlrequest.ProxyHandler({}))
    last_warning = 0.0
    while not STOP.is_set():
        status, error = None, None
        try:
            with opener.open(urlrequest.Request(url, headers={"X-Inner-Api-Key": settings.inner_api_key}), timeout=10) as answer:
                status = answer.status
        except urlerror.HTTPError as exc:
            status = exc.code
        except (urlerror.URLError, OSError) as exc:
            error = str(getattr(exc, "reason", exc))
        verdict, message = inner_api_verdict(settings.inner_api_url, status, error)
        if verdict == "ok":
            log("plugin_daemon", message)
            return
        if verdict == "broken":
            fail("plugin_daemon", [message])
            return
        if time.monotonic() - last_warning >= 30:
            warn("plugin_daemon", message)
            last_warning = time.monotonic()
        STOP.wait(3)


def node_heartbeat(state: DaemonState) -> None:
    """Register this node in Redis every 5 s (like the real cluster's node status) and look at the other nodes."""
    key = node_key(state.node_id)
    seen: Dict[str, str] = {}
    failing = False
    while not STOP.is_set():
        try:
            state.cache.hset(key, mapping={"node_id": state.node_id, "ip": state.address or "", "host": HOST,
                                           "port": str(state.settings.port), "last_ping_at": str(int(time.time()))})
            state.cache.expire(key, NODE_TTL_S)
            if failing:
                log("plugin_daemon", "Redis answers again: node %s registered" % state.node_id)
                failing = False
            look_at_nodes(state, seen)
        except Exception as exc:  # Redis may come and go; the heartbeat keeps trying
            if not failing:
                warn("plugin_daemon", "cannot refresh %s in Redis (REDIS_HOST=%s REDIS_PORT=%d): %s: other daemons will "
                     "drop this node after %d s" % (key, state.settings.redis.host, state.settings.redis.port, exc, NODE_TTL_S))
                failing = True
        STOP.wait(HEARTBEAT_S)
    try:
        state.cache.delete(key)
        log("plugin_daemon", "node %s removed from Redis" % state.node_id)
    except Exception as exc:  # the key expires on its own
        log("plugin_daemon", "could not remove %s from Redis: %s (it expires in %d s)" % (key, exc, NODE_TTL_S))


def look_at_nodes(state: DaemonState, seen: Dict[str, str]) -> None:
    """Name every other daemon sharing this Redis once, and whether its registered address answers from here."""
    for node, entry in state.nodes().items():
        address = "%s:%s" % (entry.get("ip"), entry.get("port"))
        if node == state.node_id or seen.get(node) == address:
            continue
        seen[node] = address
        probe = "http://%s/health/check" % address
        opener = urlrequest.build_opener(urlrequest.ProxyHandler({}))
        try:
            with opener.open(probe, timeout=3) as answer:
                answer.read()
            warn("plugin_daemon", "another plugin daemon shares this Redis: node %s (host %s) registered %s, which answers "
                 "from here; /e/ and plugin calls for plugins running there are proxied to it" % (node, entry.get("host"), address))
        except urlerror.HTTPError as exc:
            warn("plugin_daemon", "another plugin daemon shares this Redis: node %s (host %s) registered %s, where something "
                 "other than a plugin daemon answers (GET /health/check: HTTP %d): /e/ and plugin calls for plugins running "
                 "there get that answer" % (node, entry.get("host"), address, exc.code))
        except (urlerror.URLError, OSError) as exc:
            warn("plugin_daemon", "another plugin daemon shares this Redis: node %s (host %s) registered %s, UNREACHABLE from "
                 "this node (%s): /e/ and plugin calls for plugins running there fail here with 'redirect request failed' "
                 "(a container's bridge address is private to its host)" % (node, entry.get("host"), address,
                                                                            getattr(exc, "reason", exc)))


FAILURES: List[str] = []


def fail(role: str, problems: List[str]) -> None:
    """A contract broken after the start (in a thread): print it, stop serving; the daemon then exits 1."""
    report_broken(role, problems)
    FAILURES.extend(problems)
    on_signal(signal.SIGTERM, None)


def run_plugin_daemon(env: Mapping[str, str]) -> None:
    settings, problems, warnings = daemon_settings(env, os.getcwd())
    for caution in warnings:
        warn("plugin_daemon", caution)
    if problems or settings is None:
        refuse("plugin_daemon", problems)
    assert settings is not None
    role = "plugin_daemon"
    if settings.storage_type == "local":
        os.makedirs(settings.storage_root, exist_ok=True)
        check_storage(role, settings.storage_root, DAEMON_VOLUME, "the real daemon runs as root and writes plugins there")
        log(role, "PLUGIN_STORAGE_TYPE=local: %s written and read back as uid %d" % (settings.storage_root, os.getuid()))
    else:
        log(role, "PLUGIN_STORAGE_TYPE=aws_s3: bucket %s at %s (not contacted by the stand-in)"
            % (env.get("PLUGIN_STORAGE_OSS_BUCKET"), env.get("S3_ENDPOINT")))
    try:
        os.makedirs(settings.working_path, exist_ok=True)
        check_storage(role, settings.working_path, owner_hint="PLUGIN_WORKING_PATH", check_mount=False)
    except (OSError, ContractError) as exc:
        refuse(role, ["PLUGIN_WORKING_PATH=%s is not a writable directory: %s" % (settings.working_path, exc)])
    connection = daemon_database(settings)
    created = daemon_migrate(connection)
    version = scalar(connection, "SELECT version()").split(",")[0]
    log(role, "PostgreSQL %s: connected, %s; tables %s"
        % (describe_db(settings.db), version, "created: " + ", ".join(created) if created else "all present"))
    connection.close()
    pool = DbPool(lambda: daemon_connect(settings, settings.db["dbname"]), settings.max_open)
    log(role, "database pool: at most %d connections (DB_MAX_OPEN_CONNS)" % settings.max_open)
    cache = ping_redis(settings.redis, "REDIS_HOST/REDIS_PORT/REDIS_PASSWORD/REDIS_DB")
    log(role, "Redis REDIS_HOST=%s REDIS_PORT=%d REDIS_DB=%d: PONG" % (settings.redis.host, settings.redis.port, settings.redis.db))
    node_id = str(uuid.uuid4())
    addresses = interface_addresses()
    address = first_ipv4(addresses)
    if address is None:
        warn(role, "no non-loopback IPv4 interface address (%s): other daemons cannot send requests to this node" % addresses)
    where = ": inside a container, the container's own address, routable only on this host" if in_container() else ""
    interfaces = ", ".join("%s=%s" % pair for pair in addresses)
    log(role, "node %s registers %s:%d in Redis as %s (the first non-loopback IPv4 interface address of %s; refreshed every "
        "%d s, expires after %d s)%s"
        % (node_id, address, settings.port, node_key(node_id), interfaces, HEARTBEAT_S, NODE_TTL_S, where))
    if settings.remote_installing:
        log(role, "remote plugin debugging: the real daemon listens on %s:%s (the stand-in does not)"
            % (settings.remote_host, settings.remote_port))
    state = DaemonState(settings, node_id, pool, cache, address)
    PluginDaemonHandler.state = state
    # Its own loop, not serve(): a thread may stop the daemon before serve_forever would have started.
    server = Server(("0.0.0.0", settings.port), PluginDaemonHandler)
    server.timeout = 0.5
    log(role, "serving on 0.0.0.0:%d (stand-in for %s)" % (settings.port, standin_for(role)))
    heartbeat = threading.Thread(target=node_heartbeat, args=(state,), name="heartbeat")
    heartbeat.start()
    threading.Thread(target=check_inner_api, args=(settings, node_id), name="inner-api", daemon=True).start()
    try:
        while not STOP.is_set():
            server.handle_request()
    finally:
        STOP.set()
        server.server_close()
        heartbeat.join(10)
        pool.close()
    log(role, "stopped")
    if FAILURES:
        sys.exit(1)


# ----------------------------------------------------------------------------------------------------------
# agent_backend and local_sandbox (langgenius/dify-agent-backend and dify-agent-local-sandbox 1.16.1)
# ----------------------------------------------------------------------------------------------------------

def unauthorized(handler: "Handler", service: str, variable: str) -> None:
    """401 naming SERVICE and the VARIABLE its token comes from. A small body is read first (closing a socket with
    unread data resets it, and the client could lose the answer); a large one closes the connection."""
    drained = int(handler.headers.get("Content-Length") or 0) <= CHUNK and "chunked" not in (
        handler.headers.get("Transfer-Encoding") or "").lower()
    if drained:
        try:
            for _piece in handler.body():
                pass
        except (ValueError, OSError):
            drained = False
    body = json.dumps({"code": "unauthorized", "status": 401, "refused_by": service, "host": HOST,
                       "message": "%s wants `Authorization: Bearer <%s>`" % (service, variable)}).encode()
    handler.send_response(401)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("WWW-Authenticate", "Bearer")
    handler.send_header("Content-Length", str(len(body)))
    if not drained:
        handler.send_header("Connection", "close")
        handler.close_connection = True
    handler.end_headers()
    handler.wfile.write(body)


def clip(data: bytes) -> str:
    text = data[:OUTPUT_LIMIT].decode(errors="replace")
    return text + ("\n[... %d bytes cut]" % (len(data) - OUTPUT_LIMIT) if len(data) > OUTPUT_LIMIT else "")


def run_shell(command: str, timeout: float) -> Dict[str, Any]:
    """COMMAND through sh -c in the home directory, with this process's environment (HTTP(S)_PROXY included)."""
    started = time.time()
    try:
        done = subprocess.run(["sh", "-c", command], cwd=os.path.expanduser("~"), capture_output=True, timeout=timeout,
                              check=False)
        result = {"exit_code": done.returncode, "stdout": clip(done.stdout), "stderr": clip(done.stderr)}
    except subprocess.TimeoutExpired as exc:
        result = {"exit_code": None, "stdout": clip(exc.stdout or b""), "stderr": "timed out after %g s" % timeout}
    result.update(uid=os.getuid(), elapsed_s=round(time.time() - started, 3), host=HOST)
    return result


def fetch_through_proxy(url: str, settings: LocalSandboxSettings, timeout: float = FETCH_TIMEOUT_S) -> Tuple[int, Dict[str, Any]]:
    """GET URL the way code in the sandbox does: through HTTP(S)_PROXY unless NO_PROXY names the host. (200,
    the outcome) when the proxy (or the server) answered, whatever its status; (502, ...) when nothing answered."""
    proxy = proxy_for(url, settings)
    scheme = urlsplit(url).scheme
    document: Dict[str, Any] = {"url": url, "proxy": proxy, "host": HOST, "status": None, "headers": {}, "body": "",
                                "error": None}
    opener = urlrequest.build_opener(urlrequest.ProxyHandler({scheme: proxy} if proxy else {}))
    try:
        with opener.open(urlrequest.Request(url, headers={"User-Agent": "difyops-standin-local-sandbox"}),
                         timeout=timeout) as answer:
            document.update(status=answer.status, body=clip(answer.read(4096)),
                            headers={name: answer.headers.get(name) for name in PROXY_HEADERS if answer.headers.get(name)})
    except urlerror.HTTPError as exc:
        document.update(status=exc.code, body=clip(exc.read(4096)),
                        headers={name: exc.headers.get(name) for name in PROXY_HEADERS if exc.headers.get(name)})
    except (urlerror.URLError, OSError) as exc:
        reason = str(getattr(exc, "reason", exc))
        # An https URL goes through CONNECT; a proxy that refuses the tunnel answers with its status there.
        tunnel = re.search(r"Tunnel connection failed: (\d{3})", reason)
        document.update(error=reason, status=int(tunnel.group(1)) if tunnel else None)
        if not tunnel:
            return 502, document
    return 200, document


class LocalSandboxHandler(Handler):
    role = "local_sandbox"
    settings: LocalSandboxSettings

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        if urlsplit(self.path).path == "/healthz":
            self.send_json(200, {"status": "ok", "host": HOST, "standin_for": STANDIN_FOR["local_sandbox"]})
            return
        self.not_found()

    def do_POST(self) -> None:  # noqa: N802
        path = urlsplit(self.path).path
        if path not in (SHELLCTL_EXEC_PATH, SHELLCTL_FETCH_PATH):
            self.not_found()
            return
        if self.settings.token and not bearer_ok(self.settings.token, self.headers.get("Authorization")):
            log(self.role, "%s %s: refused, no `Authorization: Bearer <SHELLCTL_AUTH_TOKEN>`" % (self.command, path))
            unauthorized(self, "local_sandbox", "SHELLCTL_AUTH_TOKEN")
            return
        try:
            request = self.read_json()
            if not isinstance(request, dict):
                raise ValueError("a JSON object is required")
            if path == SHELLCTL_EXEC_PATH:
                command = request.get("command")
                if not isinstance(command, str) or not command:
                    raise ValueError("command (a shell command line) is required")
                result = run_shell(command, SHELL_TIMEOUT_S)
                log(self.role, "ran %r: exit %s" % (command[:80], result["exit_code"]))
                self.send_json(200, result)
                return
            url = request.get("url")
            if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
                raise ValueError("url (an absolute http(s) URL) is required")
        except ValueError as exc:
            self.send_json(400, {"code": "invalid_param", "message": str(exc), "status": 400}, close=True)
            return
        status, document = fetch_through_proxy(url, self.settings)
        log(self.role, "fetched %s via %s: %s %s" % (url, document["proxy"] or "no proxy (NO_PROXY)", document["status"],
                                                     document["error"] or ""))
        self.send_json(status, document)


def run_local_sandbox(env: Mapping[str, str]) -> None:
    role = "local_sandbox"
    settings, problems, warnings = local_sandbox_settings(env)
    for caution in warnings:
        warn(role, caution)
    if problems or settings is None:
        refuse(role, problems)
    assert settings is not None
    LocalSandboxHandler.settings = settings
    log(role, "shellctl: %s; egress through HTTP_PROXY=%s HTTPS_PROXY=%s (NO_PROXY=%s); path isolation %s (the stand-in "
        "has no Landlock: commands run as uid %d in %s)"
        % ("Bearer SHELLCTL_AUTH_TOKEN required" if settings.token else "NO token", settings.http_proxy,
           settings.https_proxy, settings.no_proxy or "none", "on" if settings.path_isolation else "off", os.getuid(),
           os.path.expanduser("~")))
    serve(role, LocalSandboxHandler, SHELLCTL_PORT)


class AgentBackendHandler(Handler):
    role = "agent_backend"
    settings: AgentSettings
    store: Any = None

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        path = urlsplit(self.path).path
        if path == "/health":
            self.send_json(200, {"status": "ok", "version": AGENT_VERSION + "-standin", "host": HOST,
                                 "standin_for": STANDIN_FOR["agent_backend"]})
            return
        if not self.authorized():
            return
        self.not_found()

    def do_POST(self) -> None:  # noqa: N802
        if not self.authorized():
            return
        if urlsplit(self.path).path != AGENT_RUN_PATH:
            self.not_found()
            return
        try:
            request = self.read_json()
            command = request.get("command") if isinstance(request, dict) else None
            if command is not None and (not isinstance(command, str) or not command):
                raise ValueError("command must be a non-empty string")
        except ValueError as exc:
            self.send_json(400, {"code": "invalid_param", "message": str(exc), "status": 400}, close=True)
            return
        self.run(command or AGENT_DEFAULT_COMMAND)

    def authorized(self) -> bool:
        """Everything but /health wants `Authorization: Bearer <DIFY_AGENT_API_TOKEN>` (the api's
        AGENT_BACKEND_API_TOKEN); 401 otherwise."""
        if bearer_ok(self.settings.api_token, self.headers.get("Authorization")):
            return True
        log(self.role, "%s %s: refused, no `Authorization: Bearer <DIFY_AGENT_API_TOKEN>`" % (self.command, self.path))
        unauthorized(self, "agent_backend", "DIFY_AGENT_API_TOKEN")
        return False

    def run(self, command: str) -> None:
        settings = self.settings
        url = settings.shellctl_url + SHELLCTL_EXEC_PATH
        headers = {"Authorization": "Bearer %s" % settings.shellctl_token} if settings.shellctl_token else {}
        status, answer, error = json_call(url, {"command": command}, headers, SHELL_TIMEOUT_S + 5)
        if status is None:
            self.send_json(502, {"code": "shellctl_unreachable", "status": 502, "host": HOST,
                                 "message": "no answer from local_sandbox's shellctl at DIFY_AGENT_SHELLCTL_ENTRYPOINT=%s: %s"
                                 % (settings.shellctl_url, error)})
            return
        if status == 401:
            empty = "" if settings.shellctl_token else "; it is empty here"
            self.send_json(401, {"code": "unauthorized", "status": 401, "refused_by": "local_sandbox", "host": HOST,
                                 "message": "local_sandbox's shellctl refused DIFY_AGENT_SHELLCTL_AUTH_TOKEN (it must equal "
                                 "local_sandbox's SHELLCTL_AUTH_TOKEN)%s" % empty})
            return
        if status != 200 or not isinstance(answer, dict):
            self.send_json(502, {"code": "shellctl_failed", "status": 502, "host": HOST,
                                 "message": "local_sandbox's shellctl at %s answered %d: %s" % (url, status, answer or error)})
            return
        run_id = str(uuid.uuid4())
        key = AGENT_RUN_KEY % (settings.redis_prefix, run_id)
        document = {"run_id": run_id, "agent_backend": HOST, "command": command, "local_sandbox": answer,
                    "created_at": time.time()}
        try:
            self.store.setex(key, settings.retention_s, json.dumps(document))
        except Exception as exc:  # the client sees what failed
            self.send_json(503, {"code": "store_failed", "status": 503, "host": HOST,
                                 "message": "cannot keep the run in Redis (DIFY_AGENT_REDIS_URL=%s): %s"
                                 % (settings.redis_url, exc)})
            return
        log(self.role, "run %s: shellctl exit %s, kept as %s for %d s"
            % (run_id, answer.get("exit_code"), key, settings.retention_s))
        self.send_json(200, dict(document, redis_key=key, retention_s=settings.retention_s))


def run_agent_backend(env: Mapping[str, str]) -> None:
    role = "agent_backend"
    settings, problems, warnings = agent_backend_settings(env)
    for caution in warnings:
        warn(role, caution)
    if problems or settings is None:
        refuse(role, problems)
    assert settings is not None
    client = ping_redis(settings.redis, "DIFY_AGENT_REDIS_URL")
    node = AGENT_NODE_KEY % (settings.redis_prefix, HOST)
    client.setex(node, 3600, json.dumps({"host": HOST, "started_at": time.time()}))
    log(role, "Redis DIFY_AGENT_REDIS_URL=%s: PONG, wrote %s" % (settings.redis_url, node))
    log(role, "plugin daemon %s, Dify inner API %s, shellctl %s (%s), Agent Stub %s (not served by the stand-in)"
        % (settings.plugin_daemon_url, settings.inner_api_url, settings.shellctl_url,
           "Bearer DIFY_AGENT_SHELLCTL_AUTH_TOKEN" if settings.shellctl_token else "no token", settings.stub_url or "unset"))
    AgentBackendHandler.settings = settings
    AgentBackendHandler.store = client
    serve(role, AgentBackendHandler, AGENT_PORT)


# ----------------------------------------------------------------------------------------------------------

def main(argv: List[str]) -> int:
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    env = dict(os.environ)
    try:
        role = select_role(argv[1] if len(argv) > 1 else "dify-api", env.get("MODE"))
    except ContractError as exc:
        refuse(argv[1] if len(argv) > 1 and argv[1] in ("web", "sandbox", "plugin_daemon", "agent_backend", "local_sandbox")
               else "api", [str(exc)])
        return 1
    runners = {"api": run_api, "worker": run_worker, "beat": run_beat, "web": run_web, "sandbox": run_sandbox,
               "plugin_daemon": run_plugin_daemon, "agent_backend": run_agent_backend, "local_sandbox": run_local_sandbox}
    try:
        runners[role](env)
    except ContractError as exc:
        refuse(role, [str(exc)])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The contract checks of tests/standins/dify/dify_standin.py, the TEST STAND-IN for Dify's api, worker,
worker_beat, web, sandbox and plugin daemon images: what each refuses, with the variable it names, and the
shapes it shares with Dify (the code executor's request, the sandbox's answer, signed file links, server-sent
events, the plugin daemon's errors and its redirects between nodes). Runs without Debian's psycopg2/redis
modules; the sandbox, api and plugin daemon handlers are exercised in-process."""

from __future__ import annotations

import base64
import hashlib
import hmac
import importlib.util
import io
import json
import os
import pathlib
import re
import sys
import threading
import time
from urllib import request as urlrequest

import jinja2
import pytest
import yaml

from ansible_collections.difyops.dify.plugins.filter.compose import compose_project
from ansible_collections.difyops.dify.plugins.plugin_utils.sizing.fleet import plan_fleet

REPO = pathlib.Path(__file__).resolve().parents[3]
SPEC = importlib.util.spec_from_file_location("dify_standin", REPO / "tests" / "standins" / "dify" / "dify_standin.py")
standin = importlib.util.module_from_spec(SPEC)
sys.modules["dify_standin"] = standin
SPEC.loader.exec_module(standin)

PUBLIC = "https://dify.example.com"
GOOD_ENV = {name: PUBLIC for name in standin.PUBLIC_URLS}
GOOD_ENV.update(ENDPOINT_URL_TEMPLATE=PUBLIC + "/e/{hook_id}", INTERNAL_FILES_URL="http://api:5001")
# What the real dify-api image bakes into its environment.
BAKED = {"CONSOLE_API_URL": "http://127.0.0.1:5001", "CONSOLE_WEB_URL": "http://127.0.0.1:3000",
         "SERVICE_API_URL": "http://127.0.0.1:5001", "APP_WEB_URL": "http://127.0.0.1:3000"}
SANDBOX_ENV = {"API_KEY": "k" * 48, "GIN_MODE": "release", "WORKER_TIMEOUT": "15", "ENABLE_NETWORK": "true",
               "HTTP_PROXY": "http://ssrf_proxy:3128", "HTTPS_PROXY": "http://ssrf_proxy:3128", "SANDBOX_PORT": "8194"}


def image_layout(path):
    """executable_problem as it answers in the sandbox image: only /opt/python/bin/python3 runs."""
    return None if path == "/opt/python/bin/python3" else "does not exist in this image"


def collection_sandbox_config():
    """The collection's own sandbox config, rendered from the dify_stack role's template."""
    text = (REPO / "roles" / "dify_stack" / "templates" / "sandbox-config.yaml.j2").read_text(encoding="utf-8")
    # Dify 1.13.3's sandbox (0.2.14), whose config names its interpreter.
    bundle = {"sandbox": {"python_path": "/opt/python/bin/python3"}}
    rendered = jinja2.Environment(undefined=jinja2.StrictUndefined).from_string(text).render(
        ansible_managed="managed", _dify_stack_bundle=bundle)
    return yaml.safe_load(rendered)


# --- URLs ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "localhost", "LOCALHOST.", "api.localhost", "::1", "[::1]",
                                  "0.0.0.0", "::", "::ffff:127.0.0.1", "ip6-localhost"])
def test_loopback_and_unspecified_hosts(host):
    assert standin.is_local_host(host)


@pytest.mark.parametrize("host", ["203.0.113.10", "dify.example.com", "api", "2001:db8::1", "10.0.0.1", "localhost-1.example"])
def test_reachable_hosts(host):
    assert not standin.is_local_host(host)


def test_public_urls_of_a_deployment_pass():
    assert standin.app_url_problems(GOOD_ENV) == []
    ip_env = {name: "http://203.0.113.10" for name in standin.PUBLIC_URLS}
    ip_env.update(ENDPOINT_URL_TEMPLATE="http://203.0.113.10/e/{hook_id}", INTERNAL_FILES_URL="http://api:5001")
    assert standin.app_url_problems(ip_env) == []


def test_the_images_baked_defaults_are_refused_by_name():
    problems = standin.app_url_problems(dict(GOOD_ENV, **BAKED))
    assert [p.split("=")[0] for p in problems] == list(BAKED)
    assert all("loopback" in p and "127.0.0.1" in p for p in problems)


@pytest.mark.parametrize("name", standin.PUBLIC_URLS)
@pytest.mark.parametrize("value, words", [("", "is empty"), (None, "is unset"), ("dify.example.com", "not an absolute"),
                                          ("ftp://dify.example.com", "not an absolute"), ("http://localhost", "loopback"),
                                          ("http://[::1]:5001", "loopback"), ("http://0.0.0.0", "loopback"),
                                          ("http://dify.example.com:99999", "invalid port")])
def test_every_public_url_is_checked(name, value, words):
    env = dict(GOOD_ENV)
    if value is None:
        del env[name]
    else:
        env[name] = value
    problems = standin.app_url_problems(env)
    assert len(problems) == 1 and problems[0].startswith(name) and words in problems[0]


@pytest.mark.parametrize("value, words", [(None, "unset"), ("https://dify.example.com/e/", "no {hook_id}"),
                                          ("http://localhost/e/{hook_id}", "loopback"), ("/e/{hook_id}", "not an absolute")])
def test_endpoint_url_template(value, words):
    env = dict(GOOD_ENV)
    env.pop("ENDPOINT_URL_TEMPLATE")
    if value is not None:
        env["ENDPOINT_URL_TEMPLATE"] = value
    (problem,) = standin.app_url_problems(env)
    assert problem.startswith("ENDPOINT_URL_TEMPLATE") and words in problem


@pytest.mark.parametrize("value", [None, "", "api:5001", "http://127.0.0.1:5001"])
def test_internal_files_url(value):
    env = dict(GOOD_ENV)
    env.pop("INTERNAL_FILES_URL")
    if value is not None:
        env["INTERNAL_FILES_URL"] = value
    (problem,) = standin.app_url_problems(env)
    assert problem.startswith("INTERNAL_FILES_URL")


def test_trailing_slashes_are_warned_about():
    assert standin.url_warnings(dict(GOOD_ENV, FILES_URL=PUBLIC + "/")) == [
        "FILES_URL='https://dify.example.com/' ends with '/': Dify appends '/files/...' and similar paths to it"]


@pytest.mark.parametrize("env, names", [
    ({"CONSOLE_API_URL": "", "APP_API_URL": ""}, []),                       # what the collection sets: same origin
    ({}, []),
    ({"CONSOLE_API_URL": PUBLIC, "APP_API_URL": PUBLIC}, []),
    ({"CONSOLE_API_URL": "http://127.0.0.1:5001", "APP_API_URL": "http://127.0.0.1:5001"}, ["CONSOLE_API_URL", "APP_API_URL"]),
    ({"CONSOLE_API_URL": "", "APP_API_URL": "api:5001"}, ["APP_API_URL"]),
])
def test_web_urls(env, names):
    assert [p.split("=")[0] for p in standin.web_url_problems(env)] == names


def test_uninterpolated_compose_references_are_named():
    env = {"SECRET_KEY": "${SECRET_KEY:?SECRET_KEY is missing from .env}", "DB_HOST": "db_postgres"}
    assert standin.uninterpolated(env, ("SECRET_KEY", "DB_HOST", "UNSET")) == [
        "SECRET_KEY holds an uninterpolated Compose reference ${SECRET_KEY:?SECRET_KEY is missing from .env}: "
        "Compose did not fill it in"]


# --- numbers, roles, databases, Redis --------------------------------------------------------------------

def test_integers_name_the_variable():
    assert standin.integer({"X": " 7 "}, "X") == 7
    assert standin.integer({"X": ""}, "X", 3) == 3
    with pytest.raises(standin.ContractError, match="^X='seven' is not an integer$"):
        standin.integer({"X": "seven"}, "X")
    with pytest.raises(standin.ContractError, match="^X=0 is below 1$"):
        standin.integer({"X": "0"}, "X", minimum=1)


@pytest.mark.parametrize("value, expected", [("true", True), ("1", True), ("True", True), ("TRUE", True), ("t", True),
                                             ("false", False), ("0", False), ("yes", None), ("", None), (None, None)])
def test_enable_network_is_read_like_go(value, expected):
    assert standin.parse_go_bool(value) is expected


@pytest.mark.parametrize("role, mode, expected", [("dify-api", None, "api"), ("dify-api", "", "api"), ("dify-api", "api", "api"),
                                                  ("dify-api", "worker", "worker"), ("dify-api", "beat", "beat"),
                                                  ("web", "worker", "web"), ("sandbox", None, "sandbox")])
def test_roles(role, mode, expected):
    assert standin.select_role(role, mode) == expected


def test_unknown_mode_is_refused():
    with pytest.raises(standin.ContractError, match="^MODE='job'"):
        standin.select_role("dify-api", "job")


def test_database_settings():
    env = {"DB_TYPE": "postgresql", "DB_HOST": "db_postgres", "DB_PORT": "5432", "DB_USERNAME": "dify",
           "DB_PASSWORD": "pw", "DB_DATABASE": "dify"}
    assert standin.db_settings(env) == {"host": "db_postgres", "port": 5432, "user": "dify", "password": "pw", "dbname": "dify"}
    assert "pw" not in standin.describe_db(standin.db_settings(env))
    with pytest.raises(standin.ContractError, match="^DB_HOST, DB_DATABASE empty or unset"):
        standin.db_settings(dict(env, DB_HOST="", DB_DATABASE=""))
    with pytest.raises(standin.ContractError, match="^DB_TYPE='mysql'"):
        standin.db_settings(dict(env, DB_TYPE="mysql"))
    with pytest.raises(standin.ContractError, match="^DB_PORT='five'"):
        standin.db_settings(dict(env, DB_PORT="five"))


def test_the_collections_broker_url_parses():
    target = standin.parse_redis_url("CELERY_BROKER_URL", "redis://:s3cretS3cret@redis:6379/1")
    assert target == standin.RedisTarget("redis", 6379, "s3cretS3cret", 1, False)
    assert standin.parse_redis_url("B", "rediss://10.0.0.5:6380").port == 6380
    assert standin.parse_redis_url("B", "redis://:p%2Fw@r:1/2").password == "p/w"


@pytest.mark.parametrize("url, words", [(None, "empty or unset"), ("amqp://guest@rabbit//", "not a redis:// URL"),
                                        ("redis://:pa/ss@redis:6379/1", "invalid port"),
                                        ("redis://:pa#ss@redis:6379/1", "invalid port"),
                                        ("redis://:secret@redis:6379/one", "database number"),
                                        ("redis://:secret@:6379/1", "names no host")])
def test_broken_broker_urls_are_named_without_their_password(url, words):
    with pytest.raises(standin.ContractError) as exc:
        standin.parse_redis_url("CELERY_BROKER_URL", url)
    assert str(exc.value).startswith("CELERY_BROKER_URL") and words in str(exc.value)
    assert "secret" not in str(exc.value)


def test_broker_next_to_the_cache():
    cache = standin.RedisTarget("redis", 6379, "pw", 0, False)
    assert standin.broker_problems(cache, cache._replace(db=1)) == ([], [])
    problems, _warnings = standin.broker_problems(cache, cache._replace(db=1, password="other"))
    assert problems and "REDIS_PASSWORD" in problems[0] and "pw" not in problems[0].replace("password", "")
    assert "same as REDIS_DB" in standin.broker_problems(cache, cache)[1][0]
    assert standin.broker_problems(cache, standin.RedisTarget("10.0.0.9", 6379, "x", 0, False)) == ([], [])


def test_redis_from_env():
    env = {"REDIS_HOST": "redis", "REDIS_PORT": "6379", "REDIS_PASSWORD": "pw", "REDIS_DB": "0"}
    assert standin.redis_from_env(env) == standin.RedisTarget("redis", 6379, "pw", 0, False)
    with pytest.raises(standin.ContractError, match="^REDIS_HOST"):
        standin.redis_from_env(dict(env, REDIS_HOST=""))
    with pytest.raises(standin.ContractError, match="^REDIS_DB='zero'"):
        standin.redis_from_env(dict(env, REDIS_DB="zero"))


# --- storage and pools -----------------------------------------------------------------------------------

@pytest.mark.parametrize("env, problem", [
    ({"STORAGE_TYPE": "opendal", "OPENDAL_SCHEME": "fs", "OPENDAL_FS_ROOT": "storage"}, None),
    ({}, None),
    ({"OPENDAL_FS_ROOT": "/app/api/storage/files"}, None),
    ({"OPENDAL_FS_ROOT": "/tmp/storage"}, "OPENDAL_FS_ROOT='/tmp/storage' resolves to /tmp/storage"),
    ({"OPENDAL_FS_ROOT": "../storage"}, "OPENDAL_FS_ROOT='../storage' resolves to /app/storage"),
    ({"STORAGE_TYPE": "s3", "S3_ENDPOINT": "https://s3.example.com", "S3_BUCKET_NAME": "dify"}, None),
    ({"STORAGE_TYPE": "s3", "S3_ENDPOINT": ""}, "STORAGE_TYPE=s3 but S3_ENDPOINT, S3_BUCKET_NAME empty or unset"),
])
def test_storage_roots(env, problem):
    found = standin.storage_root_problem(env)
    assert (found is None) if problem is None else found.startswith(problem)


def test_pool_against_the_api_greenlets():
    env = {"SQLALCHEMY_POOL_SIZE": "4", "SQLALCHEMY_MAX_OVERFLOW": "2", "SERVER_WORKER_CONNECTIONS": "10"}
    assert standin.pool_warning(env, "api") == (
        "SQLALCHEMY_POOL_SIZE (4) + SQLALCHEMY_MAX_OVERFLOW (2) = 6 < SERVER_WORKER_CONNECTIONS (10): greenlets will wait "
        "for database connections (QueuePool limit reached)")
    assert standin.pool_warning(dict(env, SERVER_WORKER_CONNECTIONS="6"), "api") is None
    assert standin.pool_warning({"SQLALCHEMY_POOL_SIZE": "4"}, "api") is None        # not all set
    assert standin.pool_warning(env, "beat") is None
    with pytest.raises(standin.ContractError, match="^SQLALCHEMY_MAX_OVERFLOW='ten'"):
        standin.pool_warning(dict(env, SQLALCHEMY_MAX_OVERFLOW="ten"), "api")


def test_pool_against_the_celery_concurrency():
    env = {"SQLALCHEMY_POOL_SIZE": "2", "SQLALCHEMY_MAX_OVERFLOW": "1", "CELERY_WORKER_AMOUNT": "4"}
    assert "< CELERY_WORKER_AMOUNT (4)" in standin.pool_warning(env, "worker")
    scaled = dict(env, CELERY_AUTO_SCALE="true", CELERY_MAX_WORKERS="8", CELERY_WORKER_AMOUNT="1")
    assert "< CELERY_MAX_WORKERS (8)" in standin.pool_warning(scaled, "worker")


def test_connections_against_max_connections():
    env = {"SERVER_WORKER_AMOUNT": "4", "SQLALCHEMY_POOL_SIZE": "30", "SQLALCHEMY_MAX_OVERFLOW": "10"}
    assert "= 160 exceeds PostgreSQL's max_connections (100)" in standin.connections_warning(env, 100)
    assert standin.connections_warning(env, 200) is None


# --- routes, events, files -------------------------------------------------------------------------------

@pytest.mark.parametrize("path, route", [("/console/api", "/console/api"), ("/console/api/apps", "/console/api"),
                                         ("/api/meta", "/api"), ("/v1/workflows/run", "/v1"), ("/files/x/file-preview", "/files"),
                                         ("/mcp/server/abc/mcp", "/mcp"), ("/triggers/webhook/1", "/triggers"),
                                         ("/apis", None), ("/explore/apps", None), ("/", None), ("/e/hook", None),
                                         ("/v10", None)])
def test_api_routes_are_the_gateways(path, route):
    assert standin.api_route(path) == route


@pytest.mark.parametrize("path, kind", [("/", "page"), ("/explore", "page"), ("/explore/apps", "page"), ("/signin", "page"),
                                        ("/_next/static/chunks/main.js", "static"), ("/console/api/setup", None),
                                        ("/v1/chat-messages", None), ("/e/hook", None), ("/explorer", None)])
def test_web_pages(path, kind):
    assert standin.web_page(path) == kind


@pytest.mark.parametrize("env, header, ok", [
    ({"INNER_API_KEY_FOR_PLUGIN": "inner", "PLUGIN_DAEMON_KEY": "daemon"}, "inner", True),
    ({"INNER_API_KEY_FOR_PLUGIN": "inner", "PLUGIN_DAEMON_KEY": "daemon"}, "other", False),
    ({"INNER_API_KEY_FOR_PLUGIN": "inner", "PLUGIN_DAEMON_KEY": "daemon"}, None, False),
    ({"INNER_API_KEY_FOR_PLUGIN": "inner", "PLUGIN_DAEMON_KEY": ""}, "inner", False),
    ({"INNER_API_KEY_FOR_PLUGIN": "", "PLUGIN_DAEMON_KEY": "daemon"}, "", False),
])
def test_the_plugin_daemons_inner_api_key(env, header, ok):
    assert standin.inner_key_ok(env, header) is ok


def test_server_sent_events_are_data_lines():
    assert standin.sse_event({"event": "workflow_started"}) == b'data: {"event": "workflow_started"}\n\n'


def test_file_links_are_signed_like_difys():
    url = standin.signed_file_url("https://dify.example.com", "key", "f" * 8, 1700000000, "ab" * 16)
    digest = hmac.new(b"key", ("file-preview|%s|1700000000|%s" % ("f" * 8, "ab" * 16)).encode(), hashlib.sha256).digest()
    sign = base64.urlsafe_b64encode(digest).decode().replace("=", "%3D")
    assert url == "https://dify.example.com/files/ffffffff/file-preview?timestamp=1700000000&nonce=%s&sign=%s" % ("ab" * 16, sign)


def test_file_signatures_are_checked():
    query = {"timestamp": ["1000"], "nonce": ["n"], "sign": [standin.file_signature("key", "id", "1000", "n")]}
    assert standin.signature_valid("key", "id", query, 1100, 300)
    assert not standin.signature_valid("key", "id", query, 1400, 300)             # expired
    assert not standin.signature_valid("other", "id", query, 1100, 300)
    assert not standin.signature_valid("key", "id2", query, 1100, 300)
    assert not standin.signature_valid("key", "id", {"timestamp": ["x"]}, 1100, 300)


def test_rss_from_proc_status():
    assert standin.parse_vm_rss("Name:\tpython3\nVmRSS:\t   43128 kB\nRssAnon:\t1 kB\n") == 43128
    assert standin.parse_vm_rss("Name:\tkthreadd\n") == 0


# --- the code executor and the sandbox -------------------------------------------------------------------

def test_the_api_asks_the_sandbox_like_difys_code_executor():
    url, headers, body = standin.sandbox_request("http://sandbox:8194/", "key", "print(1)")
    assert url == "http://sandbox:8194/v1/sandbox/run"
    assert headers["X-Api-Key"] == "key"
    assert json.loads(body) == {"language": "python3", "code": "print(1)", "preload": "", "enable_network": True}


@pytest.mark.parametrize("status, body, expected", [
    (200, b'{"code": 0, "message": "success", "data": {"error": "", "stdout": "42\\n"}}', ("42\n", None)),
    (200, b'{"code": 0, "message": "success", "data": {"error": "Traceback", "stdout": ""}}', ("", "Traceback")),
    (200, b'{"code": -400, "message": "network is disabled", "data": null}', ("", "Got error code: -400. Got error msg: network is disabled")),
    (503, b"", ("", "Code execution service is unavailable")),
    (500, b"", ("", "Failed to execute code, got status code 500, please check if the sandbox service is running")),
])
def test_sandbox_answers_read_like_difys_code_executor(status, body, expected):
    assert standin.sandbox_outcome(status, body) == expected


def test_a_refused_key_names_both_settings():
    _stdout, error = standin.sandbox_outcome(401, b"")
    assert "CODE_EXECUTION_API_KEY" in error and "API_KEY" in error


def test_the_collections_sandbox_config_fits_the_image():
    settings, problems, warnings = standin.sandbox_settings(collection_sandbox_config(), SANDBOX_ENV, image_layout)
    assert (problems, warnings) == ([], [])
    assert settings.python_path == "/opt/python/bin/python3" and settings.port == 8194 and settings.worker_timeout == 15
    assert settings.http_proxy == settings.https_proxy == "http://ssrf_proxy:3128"


def test_upstreams_own_config_fits_the_image():
    text = (REPO.parent / "shared" / "reference" / "upstream-raw" / "1.13.3" / "docker" / "volumes" / "sandbox" / "conf" / "config.yaml")
    if not text.exists():
        pytest.skip("shared/reference is not beside this checkout")
    _settings, problems, warnings = standin.sandbox_settings(yaml.safe_load(text.read_text(encoding="utf-8")), SANDBOX_ENV,
                                                             image_layout)
    assert problems == [] and warnings == ["app.key in /conf/config.yaml differs from API_KEY; API_KEY wins, as in the real sandbox"]


def test_usr_local_bin_python3_is_refused():
    config = dict(collection_sandbox_config(), python_path="/usr/local/bin/python3")
    settings, problems, _warnings = standin.sandbox_settings(config, SANDBOX_ENV, image_layout)
    assert settings is None
    (problem,) = problems
    assert problem.startswith("python_path: /usr/local/bin/python3 in /conf/config.yaml does not exist in this image")
    assert "/opt/python/bin/python3" in problem and "#34634" in problem


@pytest.mark.parametrize("change, env_change, words", [
    ({"app": {"port": 8194}}, {"SANDBOX_PORT": "8195"}, "app.port=8194 in /conf/config.yaml differs from SANDBOX_PORT=8195"),
    ({"app": {"port": "x"}}, {}, "app.port='x'"),
    ({}, {"API_KEY": ""}, "API_KEY is empty or unset"),
    ({}, {"ENABLE_NETWORK": "false"}, "ENABLE_NETWORK='false' is not true"),
    ({}, {"ENABLE_NETWORK": None}, "ENABLE_NETWORK=None is not true"),
    ({}, {"WORKER_TIMEOUT": "soon"}, "WORKER_TIMEOUT='soon'"),
    ({"max_workers": 0}, {}, "max_workers=0"),
    ({"python_path": None}, {}, "python_path is missing"),
    ({"proxy": {"http": "ssrf_proxy:3128"}}, {"HTTP_PROXY": ""}, "proxy.http in /conf/config.yaml='ssrf_proxy:3128'"),
    ({}, {"HTTPS_PROXY": "squid"}, "HTTPS_PROXY='squid'"),
])
def test_sandbox_refusals_name_the_key(change, env_change, words):
    config = dict(collection_sandbox_config(), **change)
    env = dict(SANDBOX_ENV)
    for name, value in env_change.items():
        if value is None:
            env.pop(name)
        else:
            env[name] = value
    settings, problems, _warnings = standin.sandbox_settings(config, env, image_layout)
    assert settings is None and len(problems) == 1 and problems[0].startswith(words), problems


@pytest.mark.parametrize("config, words", [([1, 2], "/conf/config.yaml is not a YAML mapping"),
                                           ({"python_path": "/opt/python/bin/python3"}, "app: is missing")])
def test_sandbox_config_shape(config, words):
    assert standin.sandbox_settings(config, SANDBOX_ENV, image_layout)[1][0].startswith(words)


def test_the_environment_overrides_the_config():
    config = dict(collection_sandbox_config(), enable_network=False, worker_timeout=5)
    settings, problems, warnings = standin.sandbox_settings(config, dict(SANDBOX_ENV, WORKER_TIMEOUT="9"), image_layout)
    assert problems == [] and settings.worker_timeout == 9 and settings.enable_network
    assert warnings == ["enable_network: false in /conf/config.yaml (ENABLE_NETWORK=true overrides it)"]


def test_interpreter_paths(tmp_path):
    script = tmp_path / "python3"
    script.write_text("#!/bin/sh\n")
    assert standin.executable_problem(str(tmp_path / "none")) == "does not exist in this image"
    assert standin.executable_problem(str(tmp_path)) == "is not a file"
    script.chmod(0o644)
    if os.geteuid() != 0:   # root may execute anything with an x bit only; 0644 has none
        assert standin.executable_problem(str(script)) == "is not executable"
    script.chmod(0o755)
    assert standin.executable_problem(str(script)) is None
    (tmp_path / "dangling").symlink_to(tmp_path / "gone")
    assert standin.executable_problem(str(tmp_path / "dangling")).startswith("is a dangling link")


def test_code_gets_the_proxy_only_with_the_network():
    settings = standin.SandboxSettings(8194, "k", sys.executable, 2, 1, 1, True, "http://ssrf_proxy:3128", "http://ssrf_proxy:3128")
    env = standin.sandbox_child_env(settings, True)
    assert env["HTTP_PROXY"] == env["https_proxy"] == "http://ssrf_proxy:3128"
    assert "HTTP_PROXY" not in standin.sandbox_child_env(settings, False)


def sandbox_settings_for_tests(timeout=5):
    return standin.SandboxSettings(0, "test-key", sys.executable, timeout, 2, 4, True, "", "")


def test_code_runs_with_python_path_and_answers_like_the_sandbox():
    answer = standin.execute(sandbox_settings_for_tests(), "import sys\nprint(sys.argv[0].endswith('main.py'))", "x = 1", True)
    assert answer == {"code": 0, "message": "success", "data": {"error": "", "stdout": "True\n"}}
    failed = standin.execute(sandbox_settings_for_tests(), "raise SystemExit(3)", "", True)
    assert failed["data"]["error"].endswith("error: exit status 3\n")


def test_code_past_worker_timeout_is_killed():
    started = time.monotonic()
    answer = standin.execute(sandbox_settings_for_tests(timeout=1), "import time\nprint('a', flush=True)\ntime.sleep(30)", "", True)
    assert answer["data"]["error"] == "error: timeout\n" and time.monotonic() - started < 10


# --- request bodies --------------------------------------------------------------------------------------

def test_bodies_stream_by_content_length():
    pieces = list(standin.iter_body(io.BytesIO(b"x" * 10 + b"next request"), {"Content-Length": "10"}, chunk=4))
    assert [len(p) for p in pieces] == [4, 4, 2]


def test_bodies_stream_chunked():
    raw = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: x\r\n\r\nnext"
    stream = io.BytesIO(raw)
    assert b"".join(standin.iter_body(stream, {"Transfer-Encoding": "chunked"})) == b"hello world"
    assert stream.read() == b"next"


def test_short_bodies_are_errors():
    with pytest.raises(ValueError, match="ended 5 bytes early"):
        list(standin.iter_body(io.BytesIO(b"12345"), {"Content-Length": "10"}))


def test_sandbox_workers_are_served_in_arrival_order():
    """Like the real sandbox's buffered channel: waiters are served first in, first out, and a run that
    arrives while others wait never takes a freed worker before them (threading.Semaphore lets it)."""
    config = dict(collection_sandbox_config(), max_workers=2)
    settings, problems, _warnings = standin.sandbox_settings(config, SANDBOX_ENV, lambda _path: None)
    assert settings is not None and not problems
    workers = standin.sandbox_workers(settings)
    assert workers.acquire() and workers.acquire()
    order = []
    gate = threading.Event()

    def run(name):
        with workers:
            order.append(name)
            gate.wait(5)

    threads = []
    for name in ("first", "second", "third"):
        threads.append(threading.Thread(target=run, args=(name,), daemon=True))
        threads[-1].start()
        deadline = time.monotonic() + 5
        while len(workers.waiters) < len(threads) and time.monotonic() < deadline:
            time.sleep(0.005)
        assert len(workers.waiters) == len(threads), "%s never waited for a worker" % name
    # One worker freed: it passes from run to run, each handing it to the next in line.
    workers.release()
    assert not workers.acquire(blocking=False), "a newcomer took the worker a waiting run was owed"
    gate.set()
    for thread in threads:
        thread.join(5)
    assert order == ["first", "second", "third"]
    assert workers.acquire(blocking=False), "the worker was not given back after the last run"
    assert not workers.acquire(blocking=False), "more workers than max_workers"


# --- the api and the sandbox over HTTP, in-process ---------------------------------------------------------

@pytest.fixture(name="sandbox_url")
def sandbox_url_fixture():
    handler = type("TestSandbox", (standin.SandboxHandler,), {
        "settings": sandbox_settings_for_tests(), "workers": standin.FifoSemaphore(2), "pending": [0],
        "pending_lock": threading.Lock(), "run_uid": None, "log_message": lambda *args: None})
    server = standin.Server(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield "http://127.0.0.1:%d" % server.server_address[1]
    server.shutdown()


def post(url, document, headers=None):
    req = urlrequest.Request(url, data=json.dumps(document).encode(), headers=dict(headers or {}), method="POST")
    opener = urlrequest.build_opener(urlrequest.ProxyHandler({}))
    try:
        answer = opener.open(req, timeout=30)  # left open: the caller reads the body
        return answer.status, answer.headers, answer
    except urlrequest.HTTPError as exc:
        return exc.code, exc.headers, exc


def test_the_sandbox_wants_its_key(sandbox_url):
    status, _headers, _body = post(sandbox_url + "/v1/sandbox/run", {"language": "python3", "code": "print(1)"})
    assert status == 401
    state = standin.ApiState({"CODE_EXECUTION_ENDPOINT": sandbox_url, "CODE_EXECUTION_API_KEY": "wrong"}, None)
    assert "CODE_EXECUTION_API_KEY" in state.run_code("print(1)")[1]


def test_the_api_runs_code_through_the_sandbox(sandbox_url):
    state = standin.ApiState({"CODE_EXECUTION_ENDPOINT": sandbox_url, "CODE_EXECUTION_API_KEY": "test-key"}, None)
    assert state.run_code("print(6 * 7)") == ("42\n", None)
    assert standin.ApiState({"CODE_EXECUTION_ENDPOINT": "http://127.0.0.1:9"}, None).run_code("1")[1].startswith(
        "Failed to execute code, which is likely a network issue")


def test_the_api_over_http(sandbox_url):
    state = standin.ApiState({"CODE_EXECUTION_ENDPOINT": sandbox_url, "CODE_EXECUTION_API_KEY": "test-key",
                              "INNER_API_KEY_FOR_PLUGIN": "inner", "PLUGIN_DAEMON_KEY": "daemon"}, None)
    state.pause_s = 0.3
    handler = type("TestApi", (standin.ApiHandler,), {"state": state, "log_message": lambda *args: None})
    server = standin.Server(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        api = "http://127.0.0.1:%d" % server.server_address[1]
        status, headers, body = post(api + "/v1/workflows/run", {"inputs": {"code": "print('hi')"}, "response_mode": "streaming"})
        assert status == 200 and headers["Content-Type"].startswith("text/event-stream")
        assert "X-Accel-Buffering" not in headers
        events = []
        for line in body:
            if line.startswith(b"data: "):
                events.append((json.loads(line[6:]), time.time()))
        assert [event["event"] for event, _arrived in events] == ["workflow_started", "node_finished", "workflow_finished"]
        assert events[0][1] < events[2][0]["sent_at"]          # the first arrived before the last was sent
        assert events[2][0]["data"]["outputs"]["stdout"] == "hi\n"
        status, _headers, body = post(api + "/v1/workflows/run", {"inputs": {"code": "print('hi')"}, "response_mode": "blocking"})
        assert status == 200 and json.load(body)["data"]["outputs"]["stdout"] == "hi\n"
        status, _headers, body = post(api + "/v1/workflows/run", {"inputs": {}})
        assert status == 400 and "inputs.code" in json.load(body)["message"]
        assert post(api + "/inner/api/invoke/llm", {}, {"X-Inner-Api-Key": "inner"})[0] == 200
        status, _headers, body = post(api + "/inner/api/invoke/llm", {}, {"X-Inner-Api-Key": "daemon"})
        assert status == 404 and "INNER_API_KEY_FOR_PLUGIN" in json.load(body)["message"]
        assert post(api + "/explore/apps", {})[0] == 404
    finally:
        server.shutdown()


# --- the plugin daemon -------------------------------------------------------------------------------------

def filled(env):
    """A Compose environment as Compose hands it over: every ${NAME:?...} reference replaced by a value."""
    return {name: re.sub(r"\$\{(\w+):\?[^}]*\}", lambda match: "value-of-" + match.group(1), str(value))
            for name, value in env.items()}


def collection_daemon_env(plan=None, options=None):
    plan = plan or plan_fleet([{"name": "one", "vcpus": 4, "memory_mb": 16000, "address": "192.0.2.10",
                                "components": ["gateway", "app", "database", "redis", "vector_store"]}], {})
    host = sorted(name for name, host_plan in plan["hosts"].items() if "plugin_daemon" in host_plan["services"])[0]
    return compose_project(plan, host, options)["compose"]["services"]["plugin_daemon"]["environment"]


DAEMON_ENV = {"SERVER_KEY": "daemon-key", "DIFY_INNER_API_URL": "http://api:5001", "DIFY_INNER_API_KEY": "inner-key",
              "DB_USERNAME": "dify", "DB_PASSWORD": "pw", "DB_HOST": "db_postgres", "DB_PORT": "5432",
              "DB_DATABASE": "dify_plugin", "REDIS_HOST": "redis", "REDIS_PORT": "6379", "REDIS_PASSWORD": "rpw",
              "PLUGIN_WORKING_PATH": "/app/storage/cwd", "PLUGIN_REMOTE_INSTALLING_HOST": "0.0.0.0",
              "PLUGIN_REMOTE_INSTALLING_PORT": "5003"}


def daemon_problems(env, **changes):
    env = dict(env)
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return standin.daemon_settings(env)


def test_the_collections_plugin_daemon_environment_fits_the_daemon():
    env = collection_daemon_env()
    settings, problems, warnings = standin.daemon_settings(filled(env))
    assert (problems, warnings) == ([], [])
    assert settings.port == 5002 and settings.db["dbname"] == "dify_plugin" and settings.db["sslmode"] == "disable"
    assert settings.storage_type == "local" and settings.storage_root == "/app/storage"
    assert settings.working_path == "/app/storage/cwd" and settings.remote_installing
    # The pool the plan counts in max_connections, not the daemon's default of 30.
    assert settings.max_open == int(env["DB_MAX_OPEN_CONNS"]) < 30
    assert settings.default_db == "postgres" and settings.redis.db == 0


def test_the_collections_s3_plugin_storage_fits_the_daemon():
    plan = plan_fleet([
        {"name": "gw", "vcpus": 2, "memory_mb": 4000, "components": ["gateway"], "address": "10.0.0.1"},
        {"name": "app1", "vcpus": 8, "memory_mb": 32000, "components": ["app"], "address": "10.0.0.2"},
        {"name": "app2", "vcpus": 8, "memory_mb": 32000, "components": ["app"], "address": "10.0.0.3"},
        {"name": "data", "vcpus": 8, "memory_mb": 32000, "components": ["database", "redis", "vector_store"],
         "address": "10.0.0.4"}], {"object_storage": True})
    env = collection_daemon_env(plan, {"object_storage": {"endpoint": "https://s3.example", "bucket": "dify"}})
    settings, problems, _warnings = standin.daemon_settings(filled(env))
    assert problems == [] and settings.storage_type == "aws_s3" and settings.storage_root is None
    # Unfilled, the secrets are refused by name, as Compose would have to interpolate them.
    _settings, problems, _warnings = standin.daemon_settings(env)
    assert {p.split(" ")[0] for p in problems} >= {"SERVER_KEY", "DB_PASSWORD", "AWS_ACCESS_KEY", "AWS_SECRET_KEY"}
    assert all("uninterpolated Compose reference" in p for p in problems)


@pytest.mark.parametrize("name", [name for name, _field in standin.DAEMON_REQUIRED])
def test_every_required_daemon_setting_is_named(name):
    settings, problems, _warnings = daemon_problems(DAEMON_ENV, **{name: ""})
    assert settings is None
    assert any(p.startswith(name + " is empty or unset: the real daemon panics") for p in problems), problems


def test_remote_installing_is_on_by_default_and_needs_its_host():
    _settings, (problem,), _warnings = daemon_problems(DAEMON_ENV, PLUGIN_REMOTE_INSTALLING_HOST=None)
    assert problem.startswith("PLUGIN_REMOTE_INSTALLING_HOST is empty or unset while PLUGIN_REMOTE_INSTALLING_ENABLED is true")
    assert problem.endswith("plugin remote installing host is empty")
    _settings, (problem,), _warnings = daemon_problems(DAEMON_ENV, PLUGIN_REMOTE_INSTALLING_PORT="0")
    assert problem.startswith("PLUGIN_REMOTE_INSTALLING_PORT") and "plugin remote installing port is empty" in problem
    settings, problems, _warnings = daemon_problems(DAEMON_ENV, PLUGIN_REMOTE_INSTALLING_ENABLED="false",
                                                    PLUGIN_REMOTE_INSTALLING_HOST=None, PLUGIN_REMOTE_INSTALLING_PORT=None)
    assert problems == [] and not settings.remote_installing
    _settings, (problem,), _warnings = daemon_problems(DAEMON_ENV, PLUGIN_REMOTE_INSTALLING_ENABLED="yes")
    assert problem.startswith("PLUGIN_REMOTE_INSTALLING_ENABLED='yes' is not a Go boolean")


@pytest.mark.parametrize("changes, words", [
    ({"DB_SSL_MODE": "verify-full"}, "DB_SSL_MODE='verify-full': the real daemon accepts only disable or require"),
    ({"DB_TYPE": "mysql"}, "DB_TYPE='mysql'"),
    ({"SERVER_PORT": "70000"}, "SERVER_PORT=70000 is not a port"),
    ({"DB_PORT": "five"}, "DB_PORT='five' is not an integer: the real daemon panics"),
    ({"REDIS_DB": "-1"}, "REDIS_DB=-1 is below 0"),
    ({"DB_MAX_OPEN_CONNS": "many"}, "DB_MAX_OPEN_CONNS='many'"),
    ({"MAX_PLUGIN_PACKAGE_SIZE": "50MB"}, "MAX_PLUGIN_PACKAGE_SIZE='50MB'"),
    ({"DIFY_INNER_API_URL": "api:5001"}, "DIFY_INNER_API_URL='api:5001' is not an absolute http(s) URL"),
    ({"DIFY_INNER_API_URL": "http://127.0.0.1:5001"}, "DIFY_INNER_API_URL='http://127.0.0.1:5001' points at 127.0.0.1"),
    ({"PLUGIN_STORAGE_LOCAL_ROOT": "/srv/plugins"}, "PLUGIN_STORAGE_LOCAL_ROOT='/srv/plugins' resolves to /srv/plugins, outside"),
    ({"PLUGIN_STORAGE_LOCAL_ROOT": "../storage"}, "PLUGIN_STORAGE_LOCAL_ROOT='../storage' resolves to /storage"),
    ({"PLUGIN_STORAGE_TYPE": "aws_s3", "S3_ENDPOINT": "https://s3.example"},
     "PLUGIN_STORAGE_TYPE=aws_s3 but PLUGIN_STORAGE_OSS_BUCKET, AWS_ACCESS_KEY, AWS_SECRET_KEY empty or unset"),
    ({"PLUGIN_STORAGE_TYPE": "gcs"}, "PLUGIN_STORAGE_TYPE='gcs': the deployment writes local or aws_s3"),
    ({"PLUGIN_STORAGE_TYPE": "ftp"}, "PLUGIN_STORAGE_TYPE='ftp' is none of the real daemon's storage types"),
    ({"DB_PASSWORD": "${DB_PASSWORD:?DB_PASSWORD is missing from .env}"}, "DB_PASSWORD holds an uninterpolated Compose reference"),
])
def test_daemon_refusals_name_the_variable(changes, words):
    settings, problems, _warnings = daemon_problems(DAEMON_ENV, **changes)
    assert settings is None and len(problems) == 1 and problems[0].startswith(words), problems


def test_daemon_defaults_and_warnings():
    settings, problems, warnings = daemon_problems(DAEMON_ENV, SERVER_PORT="0", PLUGIN_STORAGE_LOCAL_ROOT="storage/plugins",
                                                   DB_MAX_OPEN_CONNS="0", DB_DEFAULT_DATABASE="template1",
                                                   PLUGIN_WORKING_PATH="cwd", DB_SSL_MODE="require")
    assert problems == []
    assert settings.port == 5002 and settings.storage_root == "/app/storage/plugins" and settings.default_db == "template1"
    assert settings.max_open == standin.UNLIMITED and settings.db["sslmode"] == "require"
    assert [w.split(":")[0] for w in warnings] == ["DB_MAX_OPEN_CONNS=0", "PLUGIN_WORKING_PATH='cwd' resolves to /app/cwd, outside the volume /app/storage"]


def test_databases_the_daemon_creates():
    assert standin.missing_database('FATAL:  database "dify_plugin" does not exist', "dify_plugin")
    assert not standin.missing_database('FATAL:  role "dify" does not exist', "dify_plugin")
    assert not standin.missing_database('FATAL:  database "dify" does not exist', "dify_plugin")
    assert standin.plain_identifier("dify_plugin")
    assert not standin.plain_identifier("Dify-Plugin") and not standin.plain_identifier("1plugin")


def test_the_daemons_tables():
    assert sorted(standin.DAEMON_TABLES) == sorted([
        "plugins", "plugin_installations", "plugin_declarations", "endpoints", "serverless_runtimes", "tool_installations",
        "ai_model_installations", "install_tasks", "tenant_storages", "agent_strategy_installations"])
    assert "hook_id text NOT NULL UNIQUE" in standin.DAEMON_TABLES["endpoints"]


@pytest.mark.parametrize("addresses, expected", [
    ([("lo", "127.0.0.1"), ("eth0", "10.89.0.5"), ("eth1", "192.0.2.7")], "10.89.0.5"),
    ([("lo", "127.0.0.1")], None),
    ([], None),
    ([("dummy", "0.0.0.0"), ("eth0", "172.17.0.2")], "172.17.0.2"),
])
def test_the_node_registers_its_first_non_loopback_ipv4_address(addresses, expected):
    assert standin.first_ipv4(addresses) == expected


def test_this_machine_has_interface_addresses():
    assert ("lo", "127.0.0.1") in standin.interface_addresses()


@pytest.mark.parametrize("path, expected", [("/e/abc/hello", ("abc", "/hello")), ("/e/abc", ("abc", "/")),
                                            ("/e/abc/", ("abc", "/")), ("/e/abc/a/b", ("abc", "/a/b")),
                                            ("/e/", None), ("/endpoint/abc", None), ("/plugin/t/e/x", None)])
def test_endpoint_routes(path, expected):
    assert standin.hook_route(path) == expected


@pytest.mark.parametrize("path, expected", [("/plugin/t1/dispatch/tool/invoke", ("t1", "/dispatch/tool/invoke")),
                                            ("/plugin/t1", ("t1", "/")), ("/plugins/t1/x", None), ("/plugin/", None)])
def test_plugin_routes(path, expected):
    assert standin.plugin_route(path) == expected


def test_daemon_keys_and_addresses():
    assert standin.api_key_ok("key", "key") and not standin.api_key_ok("key", "other")
    assert not standin.api_key_ok("key", None) and not standin.api_key_ok("", "")
    assert standin.node_key("n1") == "plugin_daemon:nodes:n1"
    assert standin.redirect_url("10.89.0.5", 5002, "/e/h/x", "a=1") == "http://10.89.0.5:5002/e/h/x?a=1"
    assert standin.redirect_url("10.89.0.5", 5002, "/e/h/x", "") == "http://10.89.0.5:5002/e/h/x"


@pytest.mark.parametrize("status, error, verdict, words", [
    (200, None, "ok", "accepts DIFY_INNER_API_KEY"),
    (404, None, "broken", "answered 404 to X-Inner-Api-Key = DIFY_INNER_API_KEY"),
    (401, None, "broken", "INNER_API_KEY_FOR_PLUGIN"),
    (None, "[Errno 111] Connection refused", "waiting", "is unreachable: [Errno 111] Connection refused"),
    (502, None, "waiting", "answered HTTP 502; retrying"),
])
def test_the_inner_api_answers(status, error, verdict, words):
    found, message = standin.inner_api_verdict("http://api:5001", status, error)
    assert found == verdict and words in message and "DIFY_INNER_API_" in message


# --- the daemon's database pool ----------------------------------------------------------------------------

class FakeConnection:
    def __init__(self, number):
        self.number = number
        self.closed = 0

    def close(self):
        self.closed = 1


def test_the_pool_opens_at_most_max_open_connections():
    opened = []
    pool = standin.DbPool(lambda: opened.append(FakeConnection(len(opened))) or opened[-1], 2, busy_wait_s=0.3)
    first, second = pool.acquire(), pool.acquire()
    with pytest.raises(TimeoutError, match="DB_MAX_OPEN_CONNS=2"):
        pool.acquire()
    threading.Timer(0.1, pool.release, (first,)).start()
    assert pool.acquire() is first                      # reused once released, not a third connection
    assert len(opened) == 2 and pool.status()["db_open"] == 2 and pool.status()["db_peak"] == 2
    pool.release(first)
    with pytest.raises(RuntimeError):
        with pool.connection() as connection:
            assert connection is first
            raise RuntimeError("query failed")
    assert pool.status()["db_idle"] == 1                # a failed query on a live connection keeps it
    second.closed = 1
    pool.release(second, broken=True)                   # a broken connection is dropped, not reused
    assert pool.status()["db_open"] == 1
    with pytest.raises(RuntimeError):
        with pool.connection() as connection:
            connection.closed = 1
            raise RuntimeError("connection lost")
    assert pool.status()["db_open"] == 0
    with pool.connection() as connection:
        assert connection.number == 2                   # a new one
    pool.close()
    assert pool.status()["db_open"] == 0


def test_the_pool_gives_back_its_slot_when_connecting_fails():
    def refuse():
        raise OSError("connection refused")
    pool = standin.DbPool(refuse, 1, busy_wait_s=0.1)
    for _attempt in range(3):
        with pytest.raises(OSError):
            pool.acquire()
    assert pool.status()["db_open"] == 0


# --- the daemon over HTTP, in-process: two nodes sharing one database and one Redis -------------------------

class MemoryState(standin.DaemonState):
    """DaemonState with its endpoints table and Redis in dictionaries shared by several nodes."""

    def __init__(self, node_id, endpoints, registry):
        settings, _problems, _warnings = standin.daemon_settings(DAEMON_ENV)
        super().__init__(settings, node_id, None, None, "127.0.0.1")
        self.endpoints = endpoints
        self.registry = registry

    def endpoint_node(self, hook_id):
        return hook_id in self.endpoints, self.endpoints.get(hook_id)

    def add_endpoint(self, hook_id, node_id):
        self.endpoints[hook_id] = node_id

    def node_address(self, node_id):
        return self.registry.get(node_id)

    def nodes(self):
        return {node: {"ip": ip, "port": str(port)} for node, (ip, port) in self.registry.items()}


@pytest.fixture(name="daemons")
def daemons_fixture():
    endpoints, registry, servers = {}, {}, {}
    for node in ("node-a", "node-b"):
        handler = type("TestDaemon", (standin.PluginDaemonHandler,), {
            "state": MemoryState(node, endpoints, registry), "log_message": lambda *args: None, "redirect_timeout_s": 3.0})
        server = standin.Server(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        registry[node] = ("127.0.0.1", server.server_address[1])
        servers[node] = server
    yield {node: "http://127.0.0.1:%d" % server.server_address[1] for node, server in servers.items()}, endpoints, registry
    for server in servers.values():
        server.shutdown()


def call(method, url, document=None, headers=None):
    data = json.dumps(document).encode() if document is not None else None
    req = urlrequest.Request(url, data=data, headers=dict(headers or {}), method=method)
    opener = urlrequest.build_opener(urlrequest.ProxyHandler({}))
    try:
        with opener.open(req, timeout=30) as answer:
            return answer.status, answer.read()
    except urlrequest.HTTPError as exc:
        return exc.code, exc.read()


def test_the_daemons_health_and_keys(daemons):
    urls, _endpoints, _registry = daemons
    status, body = call("GET", urls["node-a"] + "/health/check")
    health = json.loads(body)
    assert status == 200 and health["status"] == "ok" and health["version"] == "0.5.3-standin"
    assert health["platform"] == "local" and health["node_id"] == "node-a" and "pool_status" in health
    assert call("HEAD", urls["node-a"] + "/health/check") == (200, b"")
    status, body = call("POST", urls["node-a"] + "/plugin/tenant-1/dispatch/tool/invoke", {"x": 1})
    unauthorized = {"code": -401, "message": "unauthorized", "error_type": "PluginDaemonUnauthorizedError", "data": None}
    assert status == 401 and json.loads(body) == unauthorized
    assert call("GET", urls["node-a"] + "/plugin/tenant-1/management/list", headers={"X-Api-Key": "wrong"})[0] == 401
    status, body = call("POST", urls["node-a"] + "/plugin/tenant-1/dispatch/tool/invoke", {"x": 1},
                        {"X-Api-Key": "daemon-key"})
    route = json.loads(body)
    assert status == 200 and route["route"] == "/plugin/tenant-1/dispatch/tool/invoke" and route["tenant_id"] == "tenant-1"
    assert route["bytes"] == len(b'{"x": 1}')
    assert call("POST", urls["node-a"] + "/difyops-standin/endpoints", {"hook_id": "h"})[0] == 401
    status, body = call("GET", urls["node-a"] + "/difyops-standin/nodes", headers={"X-Api-Key": "daemon-key"})
    assert status == 200 and set(json.loads(body)["nodes"]) == {"node-a", "node-b"}
    assert call("GET", urls["node-a"] + "/console/api/setup")[0] == 404


def test_endpoints_answer_on_their_node_and_are_proxied_to_it(daemons):
    urls, endpoints, registry = daemons
    key = {"X-Api-Key": "daemon-key"}
    status, body = call("GET", urls["node-a"] + "/e/missing/x")
    assert status == 404 and json.loads(body)["message"] == "endpoint not found"
    assert call("POST", urls["node-a"] + "/difyops-standin/endpoints", {"hook_id": "local"}, key)[0] == 201
    assert call("POST", urls["node-a"] + "/difyops-standin/endpoints", {"hook_id": "remote", "node": "node-b"}, key)[0] == 201
    assert call("POST", urls["node-a"] + "/difyops-standin/endpoints", {"node": "node-b"}, key)[0] == 400
    assert endpoints == {"local": "node-a", "remote": "node-b"}
    status, body = call("POST", urls["node-a"] + "/e/local/hello?q=1", {"a": 1}, {"Host": "dify.example.com"})
    answer = json.loads(body)
    assert status == 200 and answer["node_id"] == "node-a" and answer["path"] == "/hello" and answer["method"] == "POST"
    assert answer["x_original_host"] == "dify.example.com" and answer["query"] == "q=1"
    status, body = call("PUT", urls["node-a"] + "/e/remote/hook/path?x=2", {"b": 2}, {"Host": "dify.example.com"})
    answer = json.loads(body)
    assert status == 200 and answer["node_id"] == "node-b" and answer["redirected_by"] == "node-a"
    assert answer["x_original_host"] == "dify.example.com" and answer["path"] == "/hook/path" and answer["method"] == "PUT"
    assert answer["bytes"] == len(b'{"b": 2}') and answer["query"] == "x=2"
    # The node's registered address stops answering: the real daemon's 500 and message, naming the address.
    registry["node-b"] = ("127.0.0.1", 9)
    status, body = call("GET", urls["node-a"] + "/e/remote/x")
    message = json.loads(body)["message"]
    assert status == 500 and message.startswith("redirect request failed: GET http://127.0.0.1:9/e/remote/x")
    assert "node node-b registered 127.0.0.1:9 in Redis" in message
    del registry["node-b"]
    status, body = call("GET", urls["node-a"] + "/e/remote/x")
    assert status == 404 and "node node-b is not registered in Redis (plugin_daemon:nodes:node-b)" in json.loads(body)["message"]


def test_other_nodes_are_named_with_whether_their_address_answers(daemons, monkeypatch):
    urls, endpoints, registry = daemons
    registry["dead"] = ("127.0.0.1", 9)
    said = []
    monkeypatch.setattr(standin, "warn", lambda role, message: said.append(message))
    state = MemoryState("node-a", endpoints, registry)
    seen = {}
    standin.look_at_nodes(state, seen)
    standin.look_at_nodes(state, seen)                  # each node and address once
    assert len(said) == 2 and set(seen) == {"node-b", "dead"}
    (alive,) = [m for m in said if "node node-b" in m]
    (dead,) = [m for m in said if "node dead" in m]
    assert "which answers from here" in alive and urls["node-b"].split("//")[1] in alive
    assert "registered 127.0.0.1:9, UNREACHABLE from this node" in dead and "redirect request failed" in dead


def test_the_daemon_stops_on_a_refused_inner_api_key(monkeypatch):
    api_state = standin.ApiState({"INNER_API_KEY_FOR_PLUGIN": "inner-key", "PLUGIN_DAEMON_KEY": "daemon-key"}, None)
    handler = type("TestApi", (standin.ApiHandler,), {"state": api_state, "log_message": lambda *args: None})
    server = standin.Server(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    said = []
    monkeypatch.setattr(standin, "log", lambda role, message: said.append(("log", message)))
    monkeypatch.setattr(standin, "fail", lambda role, problems: said.append(("fail", problems[0])))
    try:
        settings, _problems, _warnings = standin.daemon_settings(DAEMON_ENV)
        settings = settings._replace(inner_api_url="http://127.0.0.1:%d" % server.server_address[1])
        standin.check_inner_api(settings, "node-a")
        assert said[-1][0] == "log" and "accepts DIFY_INNER_API_KEY" in said[-1][1]
        standin.check_inner_api(settings._replace(inner_api_key="wrong"), "node-a")
        assert said[-1][0] == "fail" and "answered 404" in said[-1][1]
    finally:
        server.shutdown()


def test_the_daemon_waits_for_an_unreachable_api(monkeypatch):
    stop, said = threading.Event(), []
    monkeypatch.setattr(standin, "STOP", stop)
    monkeypatch.setattr(standin, "warn", lambda role, message: (said.append(message), stop.set()))
    settings, _problems, _warnings = standin.daemon_settings(DAEMON_ENV)
    standin.check_inner_api(settings._replace(inner_api_url="http://127.0.0.1:9"), "node-a")
    assert len(said) == 1 and "DIFY_INNER_API_URL (http://127.0.0.1:9) is unreachable" in said[0]


def test_the_plugin_daemon_role():
    assert standin.select_role("plugin_daemon", "worker") == "plugin_daemon"
    assert standin.standin_for("plugin_daemon") == "langgenius/dify-plugin-daemon:0.5.3-local"
    with pytest.raises(standin.ContractError, match="plugin_daemon"):
        standin.select_role("daemon", None)


# --- the api under load: greenlets and the SQLAlchemy pool ---------------------------------------------------

def capacity_env(greenlets, pool, overflow=0, processes=1, timeout=0.5):
    return {"SERVER_WORKER_AMOUNT": str(processes), "SERVER_WORKER_CONNECTIONS": str(greenlets),
            "SQLALCHEMY_POOL_SIZE": str(pool), "SQLALCHEMY_MAX_OVERFLOW": str(overflow),
            "SQLALCHEMY_POOL_TIMEOUT": str(timeout)}


def test_capacity_defaults_are_difys():
    capacity = standin.ApiCapacity({})
    assert (capacity.processes, capacity.greenlets, capacity.pool_size, capacity.overflow, capacity.pool_timeout) == (1, 10, 30, 10, 30.0)
    with pytest.raises(standin.ContractError, match="SQLALCHEMY_POOL_TIMEOUT"):
        standin.ApiCapacity({"SQLALCHEMY_POOL_TIMEOUT": "soon"})


def hold_connections(capacity, slots, hold_s):
    """Every slot checks a connection out at once and holds it HOLD_S s; the messages of the timeouts."""
    failures = []

    def hold(slot):
        try:
            with capacity.connection(slot):
                time.sleep(hold_s)
        except standin.PoolTimeout as exc:
            failures.append(str(exc))
    threads = [threading.Thread(target=hold, args=(slot,)) for slot in slots]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return failures


def test_a_pool_smaller_than_the_greenlets_times_out_like_sqlalchemy():
    capacity = standin.ApiCapacity(capacity_env(greenlets=4, pool=1, overflow=1, timeout=0.3))
    failures = hold_connections(capacity, range(4), 1.0)
    assert len(failures) == 2 and capacity.timeouts == 2
    assert failures[0].startswith("QueuePool limit of size 1 overflow 1 reached, connection timed out, timeout 0.30")


def test_a_pool_at_least_the_greenlets_never_times_out():
    capacity = standin.ApiCapacity(capacity_env(greenlets=4, pool=3, overflow=1, processes=2, timeout=0.1))
    assert hold_connections(capacity, range(8), 0.5) == []       # two processes, each with its own pool of 4


def test_each_process_has_its_own_pool():
    capacity = standin.ApiCapacity(capacity_env(greenlets=2, pool=1, processes=2, timeout=0.1))
    assert hold_connections(capacity, [0, 2], 0.3) == []         # slots 0 and 2: processes 0 and 1
    assert len(hold_connections(capacity, [0, 1], 0.3)) == 1     # slots 0 and 1: both in process 0


@pytest.fixture(name="api_server")
def api_server_fixture(sandbox_url):
    servers = []

    def start(env):
        state = standin.ApiState(dict(env, CODE_EXECUTION_ENDPOINT=sandbox_url, CODE_EXECUTION_API_KEY="test-key"), None)
        handler = type("TestApi", (standin.ApiHandler,), {"state": state, "log_message": lambda *args: None})
        server = standin.ApiServer(("127.0.0.1", 0), handler, standin.ApiCapacity(env))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return "http://127.0.0.1:%d" % server.server_address[1]
    yield start
    for server in servers:
        server.shutdown()


def run_at_once(url, clients, code):
    """CLIENTS blocking workflow runs at once: (status, message) of each, and the seconds they all took."""
    answers = []

    def one():
        status, _headers, body = post(url + "/v1/workflows/run", {"inputs": {"code": code}, "response_mode": "blocking"})
        answers.append((status, json.load(body).get("message")))
    threads = [threading.Thread(target=one) for _client in range(clients)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers, time.monotonic() - started


def test_the_api_answers_500_when_its_pool_is_exhausted(api_server):
    api = api_server(capacity_env(greenlets=4, pool=1, timeout=0.3))
    answers, _took = run_at_once(api, 4, "import time; time.sleep(1)")
    assert sorted(status for status, _message in answers) == [200, 500, 500, 500]
    assert all(message.startswith("QueuePool limit of size 1 overflow 0 reached, connection timed out, timeout 0.30")
               for status, message in answers if status == 500)


def test_a_pool_as_large_as_the_greenlets_serves_every_request(api_server):
    api = api_server(capacity_env(greenlets=4, pool=4, timeout=0.3))
    answers, _took = run_at_once(api, 8, "import time; time.sleep(0.3)")
    assert [status for status, _message in answers] == [200] * 8


def test_the_api_serves_at_most_its_greenlets_at_once(api_server):
    # Two greenlets, four clients of 0.6 s: two rounds (the sandbox fixture runs two at once, so it is not the limit).
    api = api_server(capacity_env(greenlets=2, pool=2, timeout=5))
    answers, took = run_at_once(api, 4, "import time; time.sleep(0.6)")
    assert [status for status, _message in answers] == [200] * 4
    assert took >= 1.2


# Provider credentials (issue 18, item 9: the restore drill) -------------------------------------------------

def test_a_sealed_credential_opens_only_with_the_same_secret_key_and_tenant_key():
    token = standin.seal("secret-key-1", b"tenant key", "sk-0123")
    assert standin.unseal("secret-key-1", b"tenant key", token) == "sk-0123"
    assert "sk-0123" not in base64.b64decode(token).decode("latin-1")
    # Another SECRET_KEY (a rotated key) or another private key (storage restored without privkeys/) fails loudly.
    for key, tenant in (("secret-key-2", b"tenant key"), ("secret-key-1", b"another key")):
        with pytest.raises(ValueError, match="SECRET_KEY or the tenant's private key"):
            standin.unseal(key, tenant, token)
    with pytest.raises(ValueError, match="truncated"):
        standin.unseal("secret-key-1", b"tenant key", base64.b64encode(b"short").decode())


def test_sealing_is_randomised_and_covers_long_values():
    value = "x" * 1000
    first, second = standin.seal("k", b"t", value), standin.seal("k", b"t", value)
    assert first != second
    assert standin.unseal("k", b"t", first) == standin.unseal("k", b"t", second) == value
    assert standin.seal("k", b"t", value, nonce=b"\0" * 16) == standin.seal("k", b"t", value, nonce=b"\0" * 16)
    assert standin.CREDENTIALS_PATH.startswith(standin.STANDIN_PREFIX)
    assert standin.api_route(standin.CREDENTIALS_PATH) == "/console/api"

# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Dify 1.16.1 agent roles of tests/standins/dify/dify_standin.py, the TEST STAND-IN for
langgenius/dify-agent-backend:1.16.1 and langgenius/dify-agent-local-sandbox:1.16.1, and the api's side of them:
the secret and token checks (with what each refusal names, never the secret), the settings each role refuses, and
the chain api -> agent_backend -> local_sandbox over HTTP, in-process, with the tokens right and wrong. Runs
without Debian's redis module (a dictionary stands in for Redis)."""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import pathlib
import secrets
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler
from urllib import request as urlrequest

import pytest

REPO = pathlib.Path(__file__).resolve().parents[3]
PROGRAM = REPO / "tests" / "standins" / "dify" / "dify_standin.py"
SPEC = importlib.util.spec_from_file_location("dify_agent_standin", PROGRAM)
standin = importlib.util.module_from_spec(SPEC)
sys.modules["dify_agent_standin"] = standin
SPEC.loader.exec_module(standin)

SECRET = "DIFY_AGENT_SERVER_SECRET_KEY"
HINT = "secrets.token_urlsafe(32)"
GOOD_SECRET = secrets.token_urlsafe(32)
API_TOKEN = secrets.token_urlsafe(32)
SHELL_TOKEN = secrets.token_urlsafe(32)
# The agent backend's environment as upstream's Compose hands it over, with the development defaults replaced.
AGENT_ENV = {"DIFY_AGENT_REDIS_URL": "redis://:redis-pw@redis:6379/2", "DIFY_AGENT_REDIS_PREFIX": "dify-agent",
             "DIFY_AGENT_PLUGIN_DAEMON_URL": "http://plugin_daemon:5002", "DIFY_AGENT_PLUGIN_DAEMON_API_KEY": "daemon-key",
             "DIFY_AGENT_INNER_API_URL": "http://api:5001", "DIFY_AGENT_INNER_API_KEY": "inner-key",
             "DIFY_AGENT_SHELLCTL_ENTRYPOINT": "http://local_sandbox:5004", "DIFY_AGENT_SHELLCTL_AUTH_TOKEN": SHELL_TOKEN,
             "DIFY_AGENT_STUB_API_BASE_URL": "http://agent_backend:5050/agent-stub", SECRET: GOOD_SECRET,
             "DIFY_AGENT_API_TOKEN": API_TOKEN, "DIFY_AGENT_SHUTDOWN_GRACE_SECONDS": "30",
             "DIFY_AGENT_RUN_RETENTION_SECONDS": "259200", "DIFY_AGENT_SHELL_REDACT_PATTERNS": ""}
# What upstream's Compose gives api and worker, the token replaced.
API_AGENT_ENV = {"AGENT_BACKEND_BASE_URL": "http://agent_backend:5050", "AGENT_BACKEND_API_TOKEN": API_TOKEN,
                 "AGENT_BACKEND_STREAM_READ_TIMEOUT_SECONDS": "30", "AGENT_BACKEND_STREAM_MAX_RECONNECTS": "3",
                 "AGENT_BACKEND_RUN_TIMEOUT_SECONDS": "1200"}
SANDBOX_ENV = {"SHELLCTL_AUTH_TOKEN": SHELL_TOKEN, "HTTP_PROXY": "http://agent_ssrf_proxy:3128",
               "HTTPS_PROXY": "http://agent_ssrf_proxy:3128", "NO_PROXY": "localhost,127.0.0.1",
               "SHELLCTL_ENABLE_PATH_ISOLATION": "true"}


def changed(env, **changes):
    env = dict(env)
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


# --- DIFY_AGENT_SERVER_SECRET_KEY ----------------------------------------------------------------------------

def test_token_urlsafe_32_is_a_good_secret():
    for _attempt in range(50):
        value = secrets.token_urlsafe(32)
        assert len(value) == 43
        assert standin.agent_secret_problem(value) is None


@pytest.mark.parametrize("value, words", [
    (None, "is unset"),
    ("", "is empty"),
    ("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY", "development default"),
    (base64.urlsafe_b64encode(os.urandom(32)).decode(), "padded with '='"),
    (secrets.token_urlsafe(31), "decodes to 31 bytes, not 32"),
    (secrets.token_urlsafe(33), "decodes to 33 bytes, not 32"),
    (secrets.token_urlsafe(16), "decodes to 16 bytes, not 32"),
    (base64.b64encode(b"\xfb" * 32).decode().rstrip("="), "holds '+', '/': it is not base64url"),
    (base64.b64encode(b"\xf8" + b"\0" * 31).decode().rstrip("="), "holds '+': it is not base64url"),
    (base64.b64encode(b"\xff" + b"\0" * 31).decode().rstrip("="), "holds '/': it is not base64url"),
    ("a" * 41, "not valid base64url"),
    (" " + GOOD_SECRET, "whitespace"),
    ("s3cr3t!" * 6 + "x", "characters outside A-Z a-z 0-9 - _"),
])
def test_bad_secrets_are_named(value, words):
    problem = standin.agent_secret_problem(value)
    assert problem is not None and problem.startswith(SECRET) and words in problem


@pytest.mark.parametrize("value", [secrets.token_urlsafe(31), secrets.token_urlsafe(33),
                                   base64.urlsafe_b64encode(os.urandom(32)).decode()])
def test_a_refused_secret_is_never_quoted(value):
    problem = standin.agent_secret_problem(value)
    assert value not in problem and value.rstrip("=") not in problem
    assert HINT in problem


def test_the_development_default_decodes_to_32_bytes():
    # It would pass the format check: only its being public refuses it.
    decoded = base64.urlsafe_b64decode(standin.AGENT_DEV_SECRET + "=")
    assert decoded == b"0123456789abcdef0123456789abcdef"


# --- tokens ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("value, words", [
    (None, "is unset"), ("", "is empty"),
    ("dify-agent-run-token-for-dev-only", "development default 'dify-agent-run-token-for-dev-only'"),
    ("two words", "whitespace"), ("tab\tbed", "whitespace"), ("caf\u00e9-token", "non-ASCII"),
])
def test_bad_api_tokens_are_named(value, words):
    problem = standin.bearer_token_problem("DIFY_AGENT_API_TOKEN", value)
    assert problem is not None and problem.startswith("DIFY_AGENT_API_TOKEN") and words in problem


def test_good_tokens_and_the_optional_shellctl_token():
    assert standin.bearer_token_problem("DIFY_AGENT_API_TOKEN", API_TOKEN) is None
    assert standin.bearer_token_problem("DIFY_AGENT_API_TOKEN", "any-printable-ascii:~!") is None
    assert standin.bearer_token_problem("SHELLCTL_AUTH_TOKEN", "", None, allow_empty=True) is None
    assert "whitespace" in standin.bearer_token_problem("SHELLCTL_AUTH_TOKEN", "a b", None, allow_empty=True)


@pytest.mark.parametrize("header, ok", [("Bearer " + API_TOKEN, True), ("bearer " + API_TOKEN, True),
                                        ("Bearer wrong", False), (API_TOKEN, False), ("Basic " + API_TOKEN, False),
                                        (None, False), ("", False)])
def test_bearer_headers(header, ok):
    assert standin.bearer_ok(API_TOKEN, header) is ok
    assert standin.bearer_ok("", "Bearer ") is False


# --- agent_backend's settings ------------------------------------------------------------------------------

def test_upstreams_layout_with_real_secrets_passes():
    settings, problems, warnings = standin.agent_backend_settings(AGENT_ENV)
    assert problems == [] and warnings == []
    assert settings.redis == standin.RedisTarget("redis", 6379, "redis-pw", 2, False)
    assert settings.redis_url == "redis://:***@redis:6379/2"
    assert settings.shellctl_url == "http://local_sandbox:5004" and settings.retention_s == 259200


def test_upstreams_development_defaults_are_refused():
    env = changed(AGENT_ENV, DIFY_AGENT_SERVER_SECRET_KEY=standin.AGENT_DEV_SECRET,
                  DIFY_AGENT_API_TOKEN=standin.AGENT_DEV_TOKEN, DIFY_AGENT_SHELLCTL_AUTH_TOKEN="")
    settings, problems, warnings = standin.agent_backend_settings(env)
    assert settings is None
    assert [p.split(" ", 1)[0] for p in problems] == [SECRET, "DIFY_AGENT_API_TOKEN"]
    assert any(w.startswith("DIFY_AGENT_SHELLCTL_AUTH_TOKEN is empty") for w in warnings)


@pytest.mark.parametrize("changes, words", [
    ({SECRET: None}, "DIFY_AGENT_SERVER_SECRET_KEY is unset"),
    ({SECRET: secrets.token_urlsafe(31)}, "DIFY_AGENT_SERVER_SECRET_KEY decodes to 31 bytes"),
    ({"DIFY_AGENT_API_TOKEN": ""}, "DIFY_AGENT_API_TOKEN is empty"),
    ({"DIFY_AGENT_REDIS_URL": None}, "DIFY_AGENT_REDIS_URL is unset: upstream's Compose builds redis://:${REDIS_PASSWORD}@redis:6379/2"),
    ({"DIFY_AGENT_REDIS_URL": ""}, "DIFY_AGENT_REDIS_URL is empty"),
    ({"DIFY_AGENT_REDIS_URL": "http://redis:6379/2"}, "DIFY_AGENT_REDIS_URL=http://redis:6379/2 is not a redis:// URL (its store is Redis)"),
    ({"DIFY_AGENT_REDIS_URL": "redis://:redis-pw@redis:6379/two"}, "DIFY_AGENT_REDIS_URL=redis://:***@redis:6379/two: the path must be a database number"),
    ({"DIFY_AGENT_PLUGIN_DAEMON_URL": ""}, "DIFY_AGENT_PLUGIN_DAEMON_URL is empty: agent_backend reaches the plugin daemon"),
    ({"DIFY_AGENT_PLUGIN_DAEMON_URL": "plugin_daemon:5002"}, "DIFY_AGENT_PLUGIN_DAEMON_URL='plugin_daemon:5002' is not an absolute http(s) URL"),
    ({"DIFY_AGENT_PLUGIN_DAEMON_URL": "redis://plugin_daemon:5002"},
     "DIFY_AGENT_PLUGIN_DAEMON_URL='redis://plugin_daemon:5002' is not an absolute http(s) URL"),
    ({"DIFY_AGENT_INNER_API_URL": None}, "DIFY_AGENT_INNER_API_URL is unset"),
    ({"DIFY_AGENT_INNER_API_URL": "ftp://api:5001"}, "DIFY_AGENT_INNER_API_URL='ftp://api:5001' is not an absolute http(s) URL"),
    ({"DIFY_AGENT_INNER_API_URL": "http://localhost:5001"}, "points at localhost: inside the agent_backend container"),
    ({"DIFY_AGENT_SHELLCTL_ENTRYPOINT": "local_sandbox:5004"}, "DIFY_AGENT_SHELLCTL_ENTRYPOINT='local_sandbox:5004' is not"),
    ({"DIFY_AGENT_PLUGIN_DAEMON_API_KEY": ""}, "DIFY_AGENT_PLUGIN_DAEMON_API_KEY is empty or unset"),
    ({"DIFY_AGENT_INNER_API_KEY": None}, "DIFY_AGENT_INNER_API_KEY is empty or unset"),
    ({"DIFY_AGENT_STUB_API_BASE_URL": "agent_backend/agent-stub"}, "DIFY_AGENT_STUB_API_BASE_URL='agent_backend/agent-stub' is not"),
    ({"DIFY_AGENT_RUN_RETENTION_SECONDS": "3 days"}, "DIFY_AGENT_RUN_RETENTION_SECONDS='3 days' is not an integer"),
    ({"DIFY_AGENT_SHELL_REDACT_PATTERNS": "sk-.*"}, "DIFY_AGENT_SHELL_REDACT_PATTERNS is not JSON"),
    ({"DIFY_AGENT_SHELL_REDACT_PATTERNS": '["sk-[A-Z"]'}, "is not a regular expression"),
    ({"DIFY_AGENT_SHELL_REDACT_PATTERNS": '{"a": 1}'}, "not a JSON array of strings"),
    ({"DIFY_AGENT_API_TOKEN": "${DIFY_AGENT_API_TOKEN}"}, "DIFY_AGENT_API_TOKEN holds an uninterpolated Compose reference"),
])
def test_agent_backend_refusals_name_the_variable(changes, words):
    settings, problems, _warnings = standin.agent_backend_settings(changed(AGENT_ENV, **changes))
    assert settings is None
    assert any(words in problem for problem in problems), problems
    assert not any(GOOD_SECRET in problem or API_TOKEN in problem or "redis-pw" in problem for problem in problems)


def test_agent_backend_warnings():
    env = changed(AGENT_ENV, DIFY_AGENT_REDIS_URL="redis://:redis-pw@redis:6379/1",
                  DIFY_AGENT_STUB_API_BASE_URL="http://agent_backend:5050/stub", DIFY_AGENT_SHELLCTL_AUTH_TOKEN="",
                  DIFY_AGENT_SHELL_REDACT_PATTERNS='["sk-[A-Za-z0-9]+", "ghp_[A-Za-z0-9]{36}"]')
    settings, problems, warnings = standin.agent_backend_settings(env)
    assert problems == [] and settings.shellctl_token == ""
    assert [w.split(" ", 1)[0] for w in warnings] == ["DIFY_AGENT_SHELLCTL_AUTH_TOKEN", "DIFY_AGENT_REDIS_URL",
                                                      "DIFY_AGENT_STUB_API_BASE_URL='http://agent_backend:5050/stub'"]
    assert "database 1" in warnings[1] and "^/agent-stub/" in warnings[2]


# --- local_sandbox's settings ------------------------------------------------------------------------------

def test_upstreams_local_sandbox_environment_passes():
    settings, problems, warnings = standin.local_sandbox_settings(SANDBOX_ENV)
    assert problems == [] and warnings == []
    assert settings.http_proxy == "http://agent_ssrf_proxy:3128" and settings.path_isolation is True


@pytest.mark.parametrize("changes, words", [
    ({"HTTP_PROXY": None}, "HTTP_PROXY is unset: local_sandbox's egress must go through agent_ssrf_proxy"),
    ({"HTTPS_PROXY": ""}, "HTTPS_PROXY is empty"),
    ({"HTTP_PROXY": "agent_ssrf_proxy:3128"}, "HTTP_PROXY='agent_ssrf_proxy:3128' is not an absolute http(s) URL"),
    ({"HTTPS_PROXY": "http://127.0.0.1:3128"}, "points at 127.0.0.1: inside the local_sandbox container"),
    ({"SHELLCTL_AUTH_TOKEN": "a token"}, "SHELLCTL_AUTH_TOKEN holds whitespace"),
    ({"SHELLCTL_ENABLE_PATH_ISOLATION": "maybe"}, "SHELLCTL_ENABLE_PATH_ISOLATION='maybe' is not true or false"),
])
def test_local_sandbox_refusals_name_the_variable(changes, words):
    settings, problems, _warnings = standin.local_sandbox_settings(changed(SANDBOX_ENV, **changes))
    assert settings is None and any(words in problem for problem in problems), problems


def test_local_sandbox_warnings():
    settings, problems, warnings = standin.local_sandbox_settings(
        changed(SANDBOX_ENV, SHELLCTL_AUTH_TOKEN="", NO_PROXY="localhost,127.0.0.1,api,10.0.0.0/8"))
    assert problems == [] and settings.token == ""
    assert warnings[0].startswith("SHELLCTL_AUTH_TOKEN is empty")
    assert warnings[1].startswith("NO_PROXY lists api, 10.0.0.0/8: requests there bypass agent_ssrf_proxy")


def test_the_proxy_a_fetch_takes():
    settings, _problems, _warnings = standin.local_sandbox_settings(
        changed(SANDBOX_ENV, HTTPS_PROXY="http://tls-proxy:3128", NO_PROXY="localhost,127.0.0.1,files.internal"))
    assert standin.proxy_for("http://10.0.0.1/", settings) == "http://agent_ssrf_proxy:3128"
    assert standin.proxy_for("https://example.com/", settings) == "http://tls-proxy:3128"
    assert standin.proxy_for("http://files.internal/x", settings) is None
    assert standin.proxy_for("http://localhost:5004/healthz", settings) is None


# --- the api's side (Dify 1.16.1) --------------------------------------------------------------------------

def test_without_agent_backend_base_url_the_api_is_1_13_3():
    assert standin.api_agent_problems({}) == []
    assert standin.api_agent_problems({"AGENT_BACKEND_API_TOKEN": ""}) == []


@pytest.mark.parametrize("changes, words", [
    ({"AGENT_BACKEND_API_TOKEN": None}, "AGENT_BACKEND_API_TOKEN is unset"),
    ({"AGENT_BACKEND_API_TOKEN": ""}, "AGENT_BACKEND_API_TOKEN is empty"),
    ({"AGENT_BACKEND_API_TOKEN": "dify-agent-run-token-for-dev-only"}, "AGENT_BACKEND_API_TOKEN is upstream's development default"),
    ({"AGENT_BACKEND_BASE_URL": ""}, "AGENT_BACKEND_BASE_URL is empty: api reaches the agent backend"),
    ({"AGENT_BACKEND_BASE_URL": "agent_backend:5050"}, "AGENT_BACKEND_BASE_URL='agent_backend:5050' is not an absolute"),
    ({"AGENT_BACKEND_BASE_URL": "http://127.0.0.1:5050"}, "points at 127.0.0.1: inside the api container"),
    ({"AGENT_BACKEND_RUN_TIMEOUT_SECONDS": "20m"}, "AGENT_BACKEND_RUN_TIMEOUT_SECONDS='20m' is not an integer"),
])
def test_the_api_refuses_a_broken_agent_contract(changes, words):
    problems = standin.api_agent_problems(changed(API_AGENT_ENV, **changes))
    assert any(words in problem for problem in problems), problems
    assert not any(API_TOKEN in problem for problem in problems)


def test_upstreams_api_agent_environment_with_a_real_token_passes():
    assert standin.api_agent_problems(API_AGENT_ENV) == []


def test_the_agent_variables_are_checked_for_compose_references():
    assert "AGENT_BACKEND_API_TOKEN" in standin.APP_VARIABLES
    assert standin.uninterpolated({"AGENT_BACKEND_API_TOKEN": "${DIFY_AGENT_API_TOKEN:-x}"}, standin.APP_VARIABLES)


@pytest.mark.parametrize("role", ["agent_backend", "local_sandbox"])
def test_the_agent_roles(role):
    assert standin.select_role(role, "worker") == role
    assert standin.standin_for(role) == {"agent_backend": "langgenius/dify-agent-backend:1.16.1",
                                         "local_sandbox": "langgenius/dify-agent-local-sandbox:1.16.1"}[role]


@pytest.mark.parametrize("role, env, words", [
    ("agent_backend", changed(AGENT_ENV, DIFY_AGENT_SERVER_SECRET_KEY=GOOD_SECRET + "="),
     "CONTRACT BROKEN: DIFY_AGENT_SERVER_SECRET_KEY is padded with '='"),
    ("agent_backend", changed(AGENT_ENV, DIFY_AGENT_API_TOKEN=standin.AGENT_DEV_TOKEN),
     "CONTRACT BROKEN: DIFY_AGENT_API_TOKEN is upstream's development default"),
    ("local_sandbox", changed(SANDBOX_ENV, HTTP_PROXY=None), "CONTRACT BROKEN: HTTP_PROXY is unset"),
])
def test_the_program_refuses_to_start(role, env, words):
    """The program as the images run it: exit 1 and a line naming the variable, before touching Redis."""
    done = subprocess.run([sys.executable, "-u", str(PROGRAM), role], env=dict(env, PATH=os.environ.get("PATH", "")),
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1
    assert words in done.stderr and "stand-in for langgenius/dify-agent-" in done.stderr
    assert GOOD_SECRET not in done.stderr + done.stdout and API_TOKEN not in done.stderr + done.stdout


# --- the chain over HTTP, in-process ----------------------------------------------------------------------

class FakeRedis:
    def __init__(self):
        self.keys = {}

    def setex(self, name, ttl, value):
        self.keys[name] = (ttl, value)


class FakeProxy(BaseHTTPRequestHandler):
    """Squid as agent_ssrf_proxy answers a private destination: 403 with X-Squid-Error."""
    seen = []

    def do_GET(self):  # noqa: N802
        self.seen.append(self.path)
        body = b"<html>ERR_ACCESS_DENIED</html>"
        self.send_response(403)
        self.send_header("X-Squid-Error", "ERR_ACCESS_DENIED 0")
        self.send_header("Via", "1.1 agent_ssrf_proxy (squid/6.13)")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def start(handler):
    server = standin.Server(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, "http://127.0.0.1:%d" % server.server_address[1]


@pytest.fixture(name="chain")
def chain_fixture():
    """local_sandbox, agent_backend and api servers wired like upstream's Compose; yields a function that builds
    an api with the given agent token, and the pieces."""
    servers = []
    proxy, proxy_url = start(type("Proxy", (FakeProxy,), {"seen": []}))
    servers.append(proxy)
    # Loopback addresses are refused at start (a container would reach itself), so the servers here are wired in
    # after the checks.
    sandbox_settings, problems, _warnings = standin.local_sandbox_settings(SANDBOX_ENV)
    assert problems == []
    sandbox_settings = sandbox_settings._replace(http_proxy=proxy_url, https_proxy=proxy_url)
    sandbox, sandbox_url = start(type("Sandbox", (standin.LocalSandboxHandler,), {
        "settings": sandbox_settings, "log_message": lambda *args: None}))
    servers.append(sandbox)

    def agent_backend(shell_token):
        settings, found, _cautions = standin.agent_backend_settings(changed(AGENT_ENV, DIFY_AGENT_SHELLCTL_AUTH_TOKEN=shell_token))
        assert found == []
        settings = settings._replace(shellctl_url=sandbox_url)
        store = FakeRedis()
        server, url = start(type("Agent", (standin.AgentBackendHandler,), {
            "settings": settings, "store": store, "log_message": lambda *args: None}))
        servers.append(server)
        return url, store

    def api(agent_url, token):
        state = standin.ApiState({"AGENT_BACKEND_BASE_URL": agent_url, "AGENT_BACKEND_API_TOKEN": token}, None)
        server, url = start(type("Api", (standin.ApiHandler,), {"state": state, "log_message": lambda *args: None}))
        servers.append(server)
        return url

    yield {"agent_backend": agent_backend, "api": api, "sandbox": sandbox_url, "proxy": proxy_url,
           "proxy_seen": proxy.RequestHandlerClass.seen}
    for server in servers:
        server.shutdown()


def call(method, url, document=None, headers=None):
    data = json.dumps(document).encode() if document is not None else None
    req = urlrequest.Request(url, data=data, headers=dict(headers or {}), method=method)
    opener = urlrequest.build_opener(urlrequest.ProxyHandler({}))
    try:
        with opener.open(req, timeout=30) as answer:
            return answer.status, json.loads(answer.read() or b"null")
    except urlrequest.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def test_the_chain_answers_200_with_the_right_tokens(chain):
    agent_url, store = chain["agent_backend"](SHELL_TOKEN)
    status, answer = call("POST", chain["api"](agent_url, API_TOKEN) + standin.API_AGENT_PATH, {"command": "echo chain-$((6*7))"})
    assert status == 200, answer
    run = answer["agent_backend"]
    assert run["local_sandbox"]["exit_code"] == 0 and run["local_sandbox"]["stdout"] == "chain-42\n"
    assert run["redis_key"].startswith("dify-agent:difyops-standin:run:")
    assert store.keys[run["redis_key"]][0] == 259200
    status, answer = call("POST", chain["api"](agent_url, API_TOKEN) + standin.API_AGENT_PATH)
    assert status == 200 and answer["agent_backend"]["local_sandbox"]["stdout"] == "difyops-standin-agent-chain\n"


def test_a_wrong_api_token_is_401_from_the_agent_backend(chain):
    agent_url, store = chain["agent_backend"](SHELL_TOKEN)
    status, answer = call("POST", chain["api"](agent_url, "not-" + API_TOKEN) + standin.API_AGENT_PATH, {})
    assert status == 401 and answer["refused_by"] == "agent_backend"
    assert "AGENT_BACKEND_API_TOKEN" in answer["message"] and "DIFY_AGENT_API_TOKEN" in answer["message"]
    assert store.keys == {}


def test_a_wrong_shellctl_token_is_401_from_local_sandbox(chain):
    for token in ("not-" + SHELL_TOKEN, ""):
        agent_url, store = chain["agent_backend"](token)
        status, answer = call("POST", chain["api"](agent_url, API_TOKEN) + standin.API_AGENT_PATH, {})
        assert status == 401 and answer["refused_by"] == "local_sandbox"
        assert "DIFY_AGENT_SHELLCTL_AUTH_TOKEN" in answer["message"] and store.keys == {}


def test_the_agent_backend_wants_its_bearer_token_but_not_for_health(chain):
    agent_url, _store = chain["agent_backend"](SHELL_TOKEN)
    status, answer = call("GET", agent_url + "/health")
    assert status == 200 and answer["status"] == "ok"
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": API_TOKEN}):
        status, answer = call("POST", agent_url + standin.AGENT_RUN_PATH, {"command": "id"}, headers)
        assert status == 401 and answer["refused_by"] == "agent_backend"
        assert call("GET", agent_url + "/runs", None, headers)[0] == 401
    assert call("GET", agent_url + "/runs", None, {"Authorization": "Bearer " + API_TOKEN})[0] == 404
    status, answer = call("POST", agent_url + standin.AGENT_RUN_PATH, {"command": 42},
                          {"Authorization": "Bearer " + API_TOKEN})
    assert status == 400 and "command" in answer["message"]


def test_an_unreachable_shellctl_is_502_naming_the_entrypoint():
    settings = standin.agent_backend_settings(AGENT_ENV)[0]._replace(shellctl_url="http://127.0.0.2:9")
    server, url = start(type("Agent", (standin.AgentBackendHandler,), {
        "settings": settings, "store": FakeRedis(), "log_message": lambda *args: None}))
    try:
        status, answer = call("POST", url + standin.AGENT_RUN_PATH, {}, {"Authorization": "Bearer " + API_TOKEN})
        assert status == 502 and "DIFY_AGENT_SHELLCTL_ENTRYPOINT=http://127.0.0.2:9" in answer["message"]
    finally:
        server.shutdown()


def test_an_unreachable_agent_backend_is_502_naming_the_base_url():
    state = standin.ApiState({"AGENT_BACKEND_BASE_URL": "http://127.0.0.2:9", "AGENT_BACKEND_API_TOKEN": API_TOKEN}, None)
    server, url = start(type("Api", (standin.ApiHandler,), {"state": state, "log_message": lambda *args: None}))
    try:
        status, answer = call("POST", url + standin.API_AGENT_PATH, {})
        assert status == 502 and "AGENT_BACKEND_BASE_URL=http://127.0.0.2:9" in answer["message"]
    finally:
        server.shutdown()


def test_without_agent_backend_base_url_the_route_is_as_before():
    state = standin.ApiState({}, None)
    server, url = start(type("Api", (standin.ApiHandler,), {"state": state, "log_message": lambda *args: None}))
    try:
        status, answer = call("POST", url + standin.API_AGENT_PATH, {})
        assert status == 200 and answer["route"] == "/console/api" and answer["bytes"] == 2
    finally:
        server.shutdown()


def test_shellctl_wants_its_token_when_set(chain):
    sandbox = chain["sandbox"]
    assert call("GET", sandbox + "/healthz")[0] == 200
    for path in (standin.SHELLCTL_EXEC_PATH, standin.SHELLCTL_FETCH_PATH):
        status, answer = call("POST", sandbox + path, {"command": "id", "url": "http://10.0.0.1/"})
        assert status == 401 and answer["refused_by"] == "local_sandbox" and "SHELLCTL_AUTH_TOKEN" in answer["message"]
    status, answer = call("POST", sandbox + standin.SHELLCTL_EXEC_PATH, {"command": "exit 3"},
                          {"Authorization": "Bearer " + SHELL_TOKEN})
    assert status == 200 and answer["exit_code"] == 3


def test_shellctl_without_a_token_takes_anyone():
    settings, _problems, _warnings = standin.local_sandbox_settings(changed(SANDBOX_ENV, SHELLCTL_AUTH_TOKEN=""))
    server, url = start(type("Sandbox", (standin.LocalSandboxHandler,), {
        "settings": settings, "log_message": lambda *args: None}))
    try:
        status, answer = call("POST", url + standin.SHELLCTL_EXEC_PATH, {"command": "echo open"})
        assert status == 200 and answer["stdout"] == "open\n"
    finally:
        server.shutdown()


def test_fetches_go_through_the_proxy_and_report_its_refusal(chain):
    status, answer = call("POST", chain["sandbox"] + standin.SHELLCTL_FETCH_PATH, {"url": "http://10.0.0.1/secret"},
                          {"Authorization": "Bearer " + SHELL_TOKEN})
    assert status == 200 and answer["status"] == 403 and answer["proxy"] == chain["proxy"]
    assert answer["headers"]["X-Squid-Error"] == "ERR_ACCESS_DENIED 0"
    assert chain["proxy_seen"] == ["http://10.0.0.1/secret"]
    status, answer = call("POST", chain["sandbox"] + standin.SHELLCTL_FETCH_PATH, {"url": "not a url"},
                          {"Authorization": "Bearer " + SHELL_TOKEN})
    assert status == 400 and "url" in answer["message"]


def test_a_fetch_without_an_answering_proxy_is_502():
    nowhere = "http://127.0.0.2:9"
    settings = standin.local_sandbox_settings(SANDBOX_ENV)[0]._replace(http_proxy=nowhere, https_proxy=nowhere)
    status, answer = standin.fetch_through_proxy("http://10.0.0.1/", settings, timeout=5)
    assert status == 502 and answer["status"] is None and answer["proxy"] == "http://127.0.0.2:9" and answer["error"]

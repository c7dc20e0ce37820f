# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Each supported Dify version's record against its upstream reference: every upstream service
deployed or left out with a reason, every variable the builder writes known to the version, every
secret generated in its format, and the roles' copies of the records' facts in step."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import pathlib

import jinja2
import pytest
import yaml

from ansible.errors import AnsibleFilterError
from ansible_collections.difyops.dify.plugins.filter.compose import compose_project, compose_schema_errors
from ansible_collections.difyops.dify.plugins.module_utils.secrets_keeper import Request, decide, new_value
from ansible_collections.difyops.dify.plugins.plugin_utils.sizing.catalog import DATA_SERVICES, SERVICE_SPECS
from ansible_collections.difyops.dify.plugins.plugin_utils.sizing.errors import PlanError
from ansible_collections.difyops.dify.plugins.plugin_utils.stack import compose, versions
from stack_plans import single, split

REPO = pathlib.Path(__file__).resolve().parents[5]
TABLES = REPO / "reference"
SCHEMA = json.loads((REPO / "roles" / "dify_stack" / "files" / "compose-spec.json").read_text(encoding="utf-8"))
TEMPLATES = REPO / "roles" / "dify_stack" / "templates"
S3 = {"object_storage": {"endpoint": "https://s3.example", "bucket": "dify"}}


def load(path):
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("version", versions.SUPPORTED)
def test_every_upstream_service_is_deployed_or_left_out_with_a_reason(version):
    record = versions.record(version)
    deployed = set(record.app_services) | {"nginx"} | set(DATA_SERVICES)
    upstream = set(record.reference.SERVICES)
    assert deployed <= upstream, deployed - upstream
    assert set(record.left_out) == upstream - deployed
    assert all(len(reason) > 20 for reason in record.left_out.values())
    # The sizing engine knows every service a version deploys.
    assert deployed <= set(SERVICE_SPECS)


@pytest.mark.parametrize("version", versions.SUPPORTED)
@pytest.mark.parametrize("store", ["weaviate", "qdrant", "pgvector"])
def test_every_variable_written_is_known_to_the_version_and_the_project_is_valid(version, store):
    bundles = [compose_project(single(version, vector_store=store), "one")]
    plan = split(version, store)
    bundles += [compose_project(plan, host, S3) for host in plan["hosts"]]
    for bundle in bundles:
        assert bundle["unknown_env"] == []
        assert bundle["version"] == version
        assert compose_schema_errors(bundle["compose"], SCHEMA) == []
        images = {spec["image"] for spec in bundle["compose"]["services"].values()}
        assert images <= set(versions.record(version).images.values()) | set(compose.INFERENCE_IMAGES.values()) | {
            compose.PGBOUNCER_IMAGE}


@pytest.mark.parametrize("version", versions.SUPPORTED)
def test_no_upstream_default_secret_is_rendered(version):
    bundle = compose_project(single(version), "one")
    values = []
    for spec in bundle["compose"]["services"].values():
        values += list(spec.get("environment", {}).values()) + list(spec.get("command", []))
    defaults = versions.record(version).reference.DEFAULT_SECRETS
    for value in values:
        assert value not in defaults
        assert not any(secret in value for secret in defaults if len(secret) >= 12), value
    assert set(bundle["secrets"]) <= set(versions.secrets(version))


def test_each_generated_secret_has_its_format():
    for version in versions.SUPPORTED:
        for name, form in versions.secrets(version).items():
            value = new_value(form, 48)
            if form == "base64url32":
                assert len(value) == 43 and "=" not in value
                assert len(base64.urlsafe_b64decode(value + "=")) == 32
                # The canonical form the role's preflight admits for a given value.
                assert value[-1] in "AEIMQUYcgkosw048"
            else:
                assert len(value) == 48 and value.isalnum(), name
    kept = decide(None, Request(generate=["DIFY_AGENT_SERVER_SECRET_KEY", "SECRET_KEY"],
                                formats={"DIFY_AGENT_SERVER_SECRET_KEY": "base64url32"}))
    assert len(base64.urlsafe_b64decode(kept.values["DIFY_AGENT_SERVER_SECRET_KEY"] + "=")) == 32
    assert kept.values["SECRET_KEY"].isalnum()


def test_the_roles_copies_of_the_records_are_in_step():
    # dify_secrets reads the secrets' names and formats from the lookup difyops.dify.constants
    # (tests/unit/plugins/lookup/test_constants.py); the gateway's routes are still copies.
    gateway_vars = load(REPO / "roles" / "nginx_gateway" / "vars" / "main.yml")
    assert tuple(gateway_vars["_nginx_gateway_api_routes"]) == versions.CORE_API_ROUTES
    assert tuple(gateway_vars["_nginx_gateway_web_routes"]) == versions.WEB_ROUTES
    assert tuple(gateway_vars["_nginx_gateway_plugin_routes"]) == versions.PLUGIN_ROUTES
    stack_defaults = load(REPO / "roles" / "dify_stack" / "defaults" / "main.yml")
    assert stack_defaults["dify_stack_version"] == versions.DEFAULT_VERSION
    spec = load(REPO / "roles" / "dify_stack" / "meta" / "argument_specs.yml")
    assert tuple(spec["argument_specs"]["main"]["options"]["dify_stack_version"]["choices"]) == versions.SUPPORTED


@pytest.mark.parametrize("version", versions.SUPPORTED)
def test_the_generated_reference_records_the_tables_it_came_from(version):
    ref = versions.record(version).reference
    assert len(ref.UPSTREAM_COMMIT) == 40
    tables = TABLES / ("dify-" + version)
    for name, digest in ref.SOURCE_SHA256.items():
        assert hashlib.sha256((tables / name).read_bytes()).hexdigest() == digest, name
    assert ref.UPSTREAM_COMMIT in (tables / "SOURCE.txt").read_text(encoding="utf-8")


@pytest.mark.parametrize("version", versions.SUPPORTED)
def test_the_committed_reference_module_is_what_the_tool_makes_of_the_committed_tables(version):
    spec = importlib.util.spec_from_file_location("stack_reference", REPO / "tools" / "stack_reference.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    assert tool.generate(version) == tool.module_path(version).read_text(encoding="utf-8"), \
        "regenerate it: python3 tools/stack_reference.py %s" % version


def test_the_default_is_the_lts_line():
    assert versions.record(versions.DEFAULT_VERSION).lts
    assert single("").get("options")["version"] == versions.DEFAULT_VERSION == "1.13.3"


def test_1_16_adds_the_agent_services_on_every_app_host_and_the_openapi_route():
    plan = split("1.16.1")
    assert plan["fleet"]["gateway_routes"]["api"][-1] == "/openapi"
    assert "/openapi" not in split("1.13.3")["fleet"]["gateway_routes"]["api"]
    for host in ("app1", "app2"):
        bundle = compose_project(plan, host, S3)
        services = bundle["compose"]["services"]
        assert {"agent_backend", "local_sandbox", "agent_ssrf_proxy"} <= set(services)
        # The local sandbox has no route to the api or the databases: internal networks only.
        assert services["local_sandbox"]["networks"] == ["agent_sandbox_network", "local_sandbox_proxy_network"]
        assert all(bundle["compose"]["networks"][n] == {"internal": True} for n in services["local_sandbox"]["networks"])
        assert services["local_sandbox"]["environment"]["HTTP_PROXY"] == "http://agent_ssrf_proxy:3128"
        backend = services["agent_backend"]["environment"]
        # Runs are kept in the fleet's Redis (database 2), the daemon is the fleet's one.
        assert backend["DIFY_AGENT_REDIS_URL"].endswith("@10.0.0.4:6379/2")
        assert backend["DIFY_AGENT_PLUGIN_DAEMON_URL"] == "http://%s:5002" % plan["hosts"][plan["fleet"]["plugin_daemon_host"]]["address"]
        # The api's token is the backend's; the inner key is the one the api accepts from plugins.
        for service in ("api", "worker"):
            env = services[service]["environment"]
            assert env["AGENT_BACKEND_API_TOKEN"] == backend["DIFY_AGENT_API_TOKEN"] == compose.secret("DIFY_AGENT_API_TOKEN")
            assert env["AGENT_BACKEND_BASE_URL"] == "http://agent_backend:5050"
            assert env["INNER_API_KEY_FOR_PLUGIN"] == backend["DIFY_AGENT_INNER_API_KEY"]
            assert env["ENABLE_COLLABORATION_MODE"] == "false"
        assert services["api"]["depends_on"]["agent_backend"] == {"condition": "service_started"}
        assert bundle["ports"].keys() <= {"api", "web", "plugin_daemon"}
        assert {"DIFY_AGENT_SERVER_SECRET_KEY", "DIFY_AGENT_API_TOKEN", "DIFY_AGENT_SHELLCTL_AUTH_TOKEN"} <= set(bundle["secrets"])
    daemon = compose_project(plan, plan["fleet"]["plugin_daemon_host"], S3)["compose"]["services"]["plugin_daemon"]
    assert daemon["networks"] == ["ssrf_proxy_network", "default"]
    assert daemon["image"] == "langgenius/dify-plugin-daemon:0.6.3-local"


def test_1_13_has_no_agent_services_and_keeps_its_layout():
    bundle = compose_project(single("1.13.3"), "one")
    services = bundle["compose"]["services"]
    assert not {"agent_backend", "local_sandbox", "agent_ssrf_proxy"} & set(services)
    assert "AGENT_BACKEND_BASE_URL" not in services["api"]["environment"]
    assert "ENABLE_COLLABORATION_MODE" not in services["api"]["environment"]
    assert "networks" not in services["plugin_daemon"]
    assert services["ssrf_proxy"]["environment"]["REVERSE_PROXY_PORT"] == "8194"
    assert list(bundle["compose"]["networks"]) == ["default", "ssrf_proxy_network"]
    assert not {s for s in bundle["secrets"] if s.startswith("DIFY_AGENT_")}


def render(name, bundle):
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), undefined=jinja2.StrictUndefined)
    return env.get_template(name).render(ansible_managed="managed", _dify_stack_bundle=bundle)


def test_the_proxies_and_sandbox_follow_the_version():
    old, new = compose_project(single("1.13.3"), "one"), compose_project(single("1.16.1"), "one")
    assert "http_port 8194 accel vhost name=sandbox" in render("squid.conf.j2", old).splitlines()
    squid = render("squid.conf.j2", new).splitlines()
    assert not [line for line in squid if "8194" in line or "sandbox" in line.split("#")[0]]
    assert "http_access deny private_dst" in squid
    assert "REVERSE_PROXY_PORT" not in new["compose"]["services"]["ssrf_proxy"]["environment"]
    agent = render("squid-agent.conf.j2", new).splitlines()
    # The backend's stub and the api's signed files, then no other private destination, then out.
    order = [agent.index(line) for line in ("http_access allow agent_backend agent_stub localnet",
                                            "http_access allow dify_api signed_files localnet",
                                            "http_access deny private_dst", "http_access allow localnet",
                                            "http_access deny all")]
    assert order == sorted(order)
    assert yaml.safe_load(render("sandbox-config.yaml.j2", old))["python_path"] == "/opt/python/bin/python3"
    assert "python_path" not in yaml.safe_load(render("sandbox-config.yaml.j2", new))


def test_a_version_the_plan_was_not_computed_for_is_refused():
    with pytest.raises(AnsibleFilterError, match="dify_stack_version is 1.16.1 but the plan was computed for Dify 1.13.3"):
        compose_project(single("1.13.3"), "one", {"version": "1.16.1"})
    with pytest.raises(PlanError, match="dify_stack_version.*1.13.3, 1.16.1"):
        single("1.17.1")


def test_1_16_needs_more_memory_than_a_4_gib_machine_has_and_says_which_services():
    with pytest.raises(PlanError) as refused:
        single("1.16.1", memory_mb=3584, vcpus=2, vector_store="pgvector")
    assert "agent_backend" in str(refused.value) and "local_sandbox" in str(refused.value)
    single("1.13.3", memory_mb=3584, vcpus=2, vector_store="pgvector")
    plan = single("1.16.1", memory_mb=4608, vcpus=2, vector_store="pgvector")
    assert plan["hosts"]["one"]["services"]["agent_backend"]["memory_mb"] >= SERVICE_SPECS["agent_backend"].floor_mb


def test_images_can_be_given_per_version():
    given = {"api": "mirror/api:pinned", "1.16.1": {"api": "mirror/dify-api:1.16.1", "sandbox": "mirror/sandbox:0.2.15"},
             "1.13.3": {"web": "mirror/dify-web:1.13.3"}}
    new = compose.images_for("1.16.1", given)
    assert new["api"] == "mirror/dify-api:1.16.1" and new["sandbox"] == "mirror/sandbox:0.2.15"
    assert new["web"] == "langgenius/dify-web:1.16.1" and "1.16.1" not in new
    old = compose.images_for("1.13.3", given)
    assert old["api"] == "mirror/api:pinned" and old["web"] == "mirror/dify-web:1.13.3"
    assert old["sandbox"] == "langgenius/dify-sandbox:0.2.14" and "1.13.3" not in old


def deployed(version=None, services=True):
    project = {"name": "dify", "services": {"api": {"image": "x"}} if services else {}}
    if version:
        project[compose.VERSION_FIELD] = {"dify_version": version}
    return project


def test_the_upgrade_reads_what_each_host_runs():
    from ansible_collections.difyops.dify.plugins.filter.compose import dify_upgrade
    plan = single("1.16.1")
    project = compose_project(plan, "one")["compose"]
    assert project[compose.VERSION_FIELD] == {"dify_version": "1.16.1"}
    # A project from before versions were recorded is 1.13.3's; a host without one is left alone.
    result = dify_upgrade({"a": deployed(), "b": deployed("1.13.3"), "c": None, "d": deployed(services=False)}, "1.16.1")
    assert result == {"from": "1.13.3", "to": "1.16.1", "needed": True, "hosts": ["a", "b"], "problems": [],
                      "deployed": {"a": "1.13.3", "b": "1.13.3", "c": None, "d": None}}
    # A run that stopped half way is finished by a rerun; a fleet on the version has nothing to do.
    assert dify_upgrade({"a": deployed("1.16.1"), "b": deployed()}, "1.16.1")["hosts"] == ["b"]
    done = dify_upgrade({"a": project}, "1.16.1")
    assert not done["needed"] and done["problems"] == []


@pytest.mark.parametrize("running, target, message", [
    ({"a": "1.16.1"}, "1.13.3", "a already runs Dify 1.16.1, newer than 1.13.3: the collection does not downgrade"),
    ({"a": "1.12.0"}, "1.16.1", "a runs Dify 1.12.0, which this collection does not know"),
    ({"a": None}, "1.16.1", "no host runs a Dify project yet: deploy it with difyops.dify.site"),
    ({"a": "1.13.3"}, "1.17.1", "dify_stack_version 1.17.1 is not supported (supported: 1.13.3, 1.16.1)"),
])
def test_an_upgrade_that_cannot_be_done_is_refused_with_the_fix(running, target, message):
    result = versions.upgrade(running, target)
    assert not result["needed"]
    assert any(message in problem for problem in result["problems"]), result["problems"]

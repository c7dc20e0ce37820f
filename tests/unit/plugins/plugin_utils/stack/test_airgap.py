# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Air-gapped operation (issue 20, docs/airgapped.md): the plugin daemon's and the sandbox's
package mirror, the marketplace switched off, Docker Hub's images from a registry that re-hosts
them, and the SSRF proxy's configuration that follows from them, for every supported version."""

from __future__ import annotations

import pathlib

import jinja2
import pytest

from ansible.errors import AnsibleFilterError
from ansible_collections.difyops.dify.plugins.filter.compose import compose_project
from ansible_collections.difyops.dify.plugins.plugin_utils.sizing.fleet import plan_fleet
from ansible_collections.difyops.dify.plugins.plugin_utils.stack import compose, versions

REPO = pathlib.Path(__file__).resolve().parents[5]
TEMPLATES = REPO / "roles" / "dify_stack" / "templates"
ALL = ["gateway", "app", "database", "redis", "vector_store"]
S3 = {"endpoint": "https://s3.example", "bucket": "dify", "path_style": True}
MIRROR = "https://pypi.example.com/simple"
APP_SHARED = ("api", "worker", "worker_beat")


def single(version="1.13.3"):
    return plan_fleet([{"name": "one", "vcpus": 8, "memory_mb": 16000, "components": ALL, "address": "192.0.2.10"}],
                      {"version": version})


def split(version="1.13.3"):
    return plan_fleet([
        {"name": "gw", "vcpus": 2, "memory_mb": 4000, "components": ["gateway"], "address": "10.0.0.1"},
        {"name": "app1", "vcpus": 8, "memory_mb": 32000, "components": ["app"], "address": "10.0.0.2"},
        {"name": "app2", "vcpus": 8, "memory_mb": 32000, "components": ["app"], "address": "10.0.0.3"},
        {"name": "data", "vcpus": 8, "memory_mb": 32000, "components": ["database", "redis", "vector_store"], "address": "10.0.0.4"},
    ], {"object_storage": True, "version": version})


def render(name, bundle):
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), undefined=jinja2.StrictUndefined)
    return env.get_template(name).render(ansible_managed="managed", _dify_stack_bundle=bundle).splitlines()


@pytest.mark.parametrize("version", versions.SUPPORTED)
def test_the_marketplace_off_reaches_every_service_that_reads_it_and_dify_knows_the_variable(version):
    bundle = compose_project(single(version), "one", {"version": version, "marketplace": False})
    services = bundle["compose"]["services"]
    for name in APP_SHARED:
        assert services[name]["environment"]["MARKETPLACE_ENABLED"] == "false", name
    # The plugin daemon does not read it (its configuration has no such setting).
    assert "MARKETPLACE_ENABLED" not in services["plugin_daemon"]["environment"]
    assert bundle["unknown_env"] == []
    assert bundle["squid"]["marketplace"] is False


@pytest.mark.parametrize("version", versions.SUPPORTED)
def test_by_default_the_marketplace_is_upstreams_and_no_mirror_is_written(version):
    bundle = compose_project(single(version), "one", {"version": version})
    text = repr(bundle["compose"])
    assert "MARKETPLACE_ENABLED" not in text and "PIP_MIRROR_URL" not in text
    assert bundle["squid"]["marketplace"] is True and bundle["squid"]["pip_mirror"] is None


@pytest.mark.parametrize("version", versions.SUPPORTED)
def test_the_package_mirror_goes_to_the_plugin_daemon_and_the_sandbox_only(version):
    bundle = compose_project(single(version), "one", {"version": version, "pip_mirror_url": MIRROR})
    services = bundle["compose"]["services"]
    assert services["plugin_daemon"]["environment"]["PIP_MIRROR_URL"] == MIRROR
    assert services["sandbox"]["environment"]["PIP_MIRROR_URL"] == MIRROR
    assert [name for name, spec in services.items() if "PIP_MIRROR_URL" in spec.get("environment", {})] \
        == ["sandbox", "plugin_daemon"]
    # Both services know the variable in both versions' references.
    assert bundle["unknown_env"] == []
    for name in ("plugin_daemon", "sandbox"):
        assert "PIP_MIRROR_URL" in versions.record(version).reference.SERVICE_ENV_NAMES[name]
    assert bundle["squid"]["pip_mirror"] == {"host": "pypi.example.com", "address": False, "port": 443}


def test_every_app_host_of_a_split_fleet_gets_the_mirror_and_the_marketplace_setting():
    plan = split()
    for host in ("app1", "app2"):
        bundle = compose_project(plan, host, {"object_storage": S3, "pip_mirror_url": MIRROR, "marketplace": "false"})
        env = bundle["compose"]["services"]
        assert env["sandbox"]["environment"]["PIP_MIRROR_URL"] == MIRROR
        assert env["api"]["environment"]["MARKETPLACE_ENABLED"] == "false"
        assert ("plugin_daemon" in env) == (host == plan["fleet"]["plugin_daemon_host"])
    data = compose_project(plan, "data", {"object_storage": S3, "pip_mirror_url": MIRROR, "marketplace": False})
    assert "PIP_MIRROR_URL" not in repr(data["compose"]) and data["squid"]["pip_mirror"] is None


@pytest.mark.parametrize("url, words", [
    ("ftp://pypi.example.com/simple", "must be an absolute http(s) URL"),
    ("pypi.example.com/simple", "must be an absolute http(s) URL"),
    ("http:///simple", "must be an absolute http(s) URL"),
    ("https://pypi.example.com:99999/simple", "must be an absolute http(s) URL"),
    ("https://pypi.example.com/simple#top", "must be an absolute http(s) URL"),
    ("https://user:secret@pypi.example.com/simple", "carries credentials"),
    ("http://127.0.0.1:3141/simple", "points at 127.0.0.1"),
    ("http://localhost/simple", "points at localhost"),
])
def test_a_mirror_that_cannot_work_is_refused_naming_the_variable_and_the_host(url, words):
    with pytest.raises(AnsibleFilterError) as err:
        compose_project(single(), "one", {"pip_mirror_url": url})
    message = str(err.value)
    assert "host one" in message and "dify_stack_pip_mirror_url" in message and words in message
    assert "secret" not in message or "credentials" in message


def test_a_bad_marketplace_value_is_refused():
    with pytest.raises(AnsibleFilterError, match="dify_stack_marketplace must be true or false"):
        compose_project(single(), "one", {"marketplace": "maybe"})


@pytest.mark.parametrize("name, knob", [("PIP_MIRROR_URL", "dify_stack_pip_mirror_url"),
                                        ("MARKETPLACE_ENABLED", "dify_stack_marketplace")])
@pytest.mark.parametrize("options", [{}, {"pip_mirror_url": MIRROR, "marketplace": False}])
def test_env_extra_cannot_set_what_the_options_own_even_when_they_are_unset(name, knob, options):
    with pytest.raises(AnsibleFilterError) as err:
        compose_project(single(), "one", dict(options, env_extra={"sandbox": {name: "x"}}))
    assert "sandbox.%s (use %s" % (name, knob) in str(err.value)


def test_the_ssrf_proxy_refuses_the_marketplace_when_it_is_off_and_admits_it_otherwise():
    on = render("squid.conf.j2", compose_project(single(), "one"))
    off = render("squid.conf.j2", compose_project(single(), "one", {"marketplace": False}))
    assert "acl allowed_domains dstdomain .marketplace.dify.ai" in on and "http_access allow allowed_domains" in on
    assert "http_access allow allowed_domains" not in off
    # Refused before the rule that lets the project's containers out to the internet.
    assert off.index("http_access deny allowed_domains") < off.index("http_access allow localnet")
    assert [line for line in on if line not in off] == ["http_access allow allowed_domains"]


@pytest.mark.parametrize("url, acl, port", [
    ("https://pypi.example.com/simple", "acl pip_mirror dstdomain pypi.example.com", 443),
    ("http://10.20.0.5:3141/root/pypi/+simple/", "acl pip_mirror dst 10.20.0.5", 3141),
    ("http://[fd00::5]/simple", "acl pip_mirror dst fd00::5", 80),
])
def test_the_ssrf_proxy_admits_the_mirror_on_its_port_even_at_a_private_address(url, acl, port):
    for version in versions.SUPPORTED:
        lines = render("squid.conf.j2", compose_project(single(version), "one", {"version": version, "pip_mirror_url": url}))
        allow = lines.index("http_access allow pip_mirror pip_mirror_port localnet")
        assert acl in lines and "acl pip_mirror_port port %d" % port in lines
        assert allow < lines.index("http_access deny private_dst")
        assert allow < lines.index("http_access deny CONNECT !SSL_ports")
    bare = render("squid.conf.j2", compose_project(single(), "one"))
    assert not [line for line in bare if "pip_mirror" in line]


@pytest.mark.parametrize("image, wanted", [
    ("langgenius/dify-api:1.13.3", "registry.example.com/dockerhub/langgenius/dify-api:1.13.3"),
    ("postgres:15-alpine", "registry.example.com/dockerhub/library/postgres:15-alpine"),
    ("nginx:latest", "registry.example.com/dockerhub/library/nginx:latest"),
    ("docker.io/library/redis:6-alpine", "registry.example.com/dockerhub/library/redis:6-alpine"),
    ("docker.io/semitechnologies/weaviate:1.27.0", "registry.example.com/dockerhub/semitechnologies/weaviate:1.27.0"),
    ("ghcr.io/chroma-core/chroma:0.5.20", "ghcr.io/chroma-core/chroma:0.5.20"),
    ("localhost/difyops-standin/dify-api:latest", "localhost/difyops-standin/dify-api:latest"),
    ("mirror.example:5000/dify-api:1", "mirror.example:5000/dify-api:1"),
])
def test_docker_hubs_images_are_taken_from_the_registry_others_are_kept(image, wanted):
    assert compose.on_registry(image, "registry.example.com/dockerhub") == wanted
    assert compose.on_registry(image, "") == image


@pytest.mark.parametrize("version", versions.SUPPORTED)
def test_every_image_of_a_project_comes_from_the_registry(version):
    options = {"version": version, "image_registry": "registry.example.com:5000/hub/",
               "images": {"web": "langgenius/dify-web:pinned", version: {"api": "ghcr.io/example/dify-api:%s" % version}}}
    images = compose_project(single(version), "one", options)["images"]
    assert "ghcr.io/example/dify-api:%s" % version in images
    assert "registry.example.com:5000/hub/langgenius/dify-web:pinned" in images
    others = [image for image in images if not image.startswith("ghcr.io/")]
    assert others and all(image.startswith("registry.example.com:5000/hub/") for image in others), images
    assert "registry.example.com:5000/hub/library/postgres:15-alpine" in images


@pytest.mark.parametrize("registry", ["https://registry.example.com", "registry.example.com/hub:latest",
                                      "registry example.com", "registry.example.com//hub"])
def test_a_registry_that_is_not_a_name_is_refused(registry):
    with pytest.raises(AnsibleFilterError, match="dify_stack_image_registry must be a registry host"):
        compose_project(single(), "one", {"image_registry": registry})

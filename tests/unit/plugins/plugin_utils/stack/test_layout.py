# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The project's layout on a host (bundle ``layout``): which directories and files dify_stack
writes, with which mode, owner and template, in the order its one file_set call applies them."""

from __future__ import annotations

import pathlib

import pytest
import yaml

from ansible_collections.difyops.dify.plugins.filter.compose import compose_project
from stack_plans import single, split

REPO = pathlib.Path(__file__).resolve().parents[5]
TEMPLATES = REPO / "roles" / "dify_stack" / "templates"
ROOT = {"owner": "root", "group": "root"}


def paths(entries):
    return [entry["path"] for entry in entries]


def test_single_node_writes_every_configuration_the_stack_mounts_in_order():
    layout = compose_project(single("1.13.3"), "one", {"project_dir": "/srv/dify"})["layout"]
    assert layout["directories"] == [
        dict(ROOT, path="/srv/dify", mode="0750"),
        dict(ROOT, path="/srv/dify/ssrf_proxy"),
        dict(ROOT, path="/srv/dify/sandbox/conf"),
        {"path": "/srv/dify/sandbox/dependencies"},
        {"path": "/srv/dify/volumes/db/data"},
        {"path": "/srv/dify/volumes/plugin_daemon"},
        {"path": "/srv/dify/volumes/redis/data"},
        {"path": "/srv/dify/volumes/weaviate"},
        # The api's storage belongs to the user of Dify's images (uid 1001), not root.
        {"path": "/srv/dify/volumes/app/storage", "owner": "1001"},
        dict(ROOT, path="/var/log/dify-gateway", mode="0755"),
        dict(ROOT, path="/etc/logrotate.d", mode="0755"),
    ]
    assert layout["files"] == [
        dict(ROOT, path="/srv/dify/ssrf_proxy/squid.conf", mode="0644"),
        dict(ROOT, path="/srv/dify/sandbox/conf/config.yaml", mode="0644"),
        dict(ROOT, path="/etc/logrotate.d/difyops-dify-gateway", mode="0644"),
        dict(ROOT, path="/srv/dify/.env", mode="0600", secret=True),
    ]
    assert layout["templates"] == ["squid.conf.j2", "sandbox-config.yaml.j2", "logrotate-gateway.j2", "env.j2"]
    # compose.yaml last: `docker compose config` checks it with the .env written before it.
    assert layout["compose_file"] == dict(ROOT, path="/srv/dify/compose.yaml", mode="0640")


def test_the_default_project_directory_and_a_trailing_slash():
    assert compose_project(single("1.13.3"), "one")["layout"]["compose_file"]["path"] == "/opt/dify/compose.yaml"
    layout = compose_project(single("1.13.3"), "one", {"project_dir": "/srv/dify/"})["layout"]
    assert layout["directories"][0]["path"] == "/srv/dify"
    assert "/srv/dify/.env" in paths(layout["files"])


def test_a_data_host_gets_its_data_directories_and_no_app_or_gateway_files():
    layout = compose_project(split("1.13.3"), "data")["layout"]
    assert paths(layout["directories"]) == ["/opt/dify", "/opt/dify/volumes/qdrant", "/opt/dify/volumes/redis/data"]
    assert paths(layout["files"]) == ["/opt/dify/.env"]
    assert layout["templates"] == ["env.j2"]


def test_split_gateway_host_gets_no_gateway_log_and_app_host_no_storage_owner_change_elsewhere():
    # A split fleet's gateway is the host's own nginx (nginx_gateway), not the stack's: no log copy.
    gateway = compose_project(split("1.13.3"), "gw")["layout"]
    assert "/var/log/dify-gateway" not in paths(gateway["directories"])
    app = compose_project(split("1.13.3"), "app1", {"object_storage": {"endpoint": "https://s3.example", "bucket": "dify"}})["layout"]
    owned = [d for d in app["directories"] if "owner" in d and d["owner"] != "root"]
    assert owned == [{"path": "/opt/dify/volumes/app/storage", "owner": "1001"}]


def test_dify_1_16_app_host_also_writes_the_agent_proxy_configuration():
    layout = compose_project(single("1.16.1"), "one")["layout"]
    assert layout["templates"][:3] == ["squid.conf.j2", "squid-agent.conf.j2", "sandbox-config.yaml.j2"]
    assert "/opt/dify/ssrf_proxy/squid-agent.conf" in paths(layout["files"])


@pytest.mark.parametrize("version", ["1.13.3", "1.16.1"])
def test_every_template_exists_and_every_entry_is_a_file_set_entry(version):
    spec = yaml.safe_load((REPO / "plugins" / "modules" / "file_set.py").read_text(encoding="utf-8")
                          .split('DOCUMENTATION = r"""', 1)[1].split('"""', 1)[0])["options"]
    for host, plan in [("one", single(version)), ("data", split(version)), ("app1", split(version))]:
        layout = compose_project(plan, host, {"object_storage": {"endpoint": "https://s3.example", "bucket": "d"}})["layout"]
        assert len(layout["files"]) == len(layout["templates"])
        assert all((TEMPLATES / name).is_file() for name in layout["templates"])
        for entry in layout["directories"]:
            assert set(entry) <= set(spec["directories"]["suboptions"])
        for entry in layout["files"] + [layout["compose_file"]]:
            assert set(entry) | {"content"} <= set(spec["files"]["suboptions"])

# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""docker_info: docker_engine reads the client's, the engine's and the Compose plugin's versions with
one `docker info`, and dify_stack takes the engine's answer from it. The fixtures are the real
output of `docker info --format '{{json .}}'` on the Debian 13 test host (Debian's docker.io 26.1.5
and docker-compose 2.26.1-4): the engine answering; the engine unreachable (DOCKER_HOST at a
socket that is not there); the Compose plugin removed; the plugin replaced by a script that exits 3."""

from __future__ import annotations

import json
import pathlib

import pytest

from ansible.errors import AnsibleFilterError
from ansible_collections.difyops.dify.plugins.filter.docker import docker_info
from ansible_collections.difyops.dify.plugins.plugin_utils.docker import DockerInfoError, info

FIXTURES = pathlib.Path(__file__).parent / "fixtures"
PLUGIN = "/usr/libexec/docker/cli-plugins/docker-compose"


def captured(name: str) -> str:
    return (FIXTURES / ("docker-info-%s.json" % name)).read_text(encoding="utf-8")


def test_an_answering_engine_with_its_compose_plugin():
    assert info(captured("answering")) == {"engine": "26.1.5+dfsg1", "server": "26.1.5+dfsg1", "server_errors": [],
                                           "compose": "2.26.1", "compose_problem": ""}


def test_an_engine_that_does_not_answer_still_names_the_client_and_its_plugin():
    summary = info(captured("unreachable"))
    assert summary["server"] == ""
    assert summary["server_errors"] == ["Cannot connect to the Docker daemon at unix:///run/nothing.sock. "
                                        "Is the docker daemon running?"]
    assert (summary["engine"], summary["compose"], summary["compose_problem"]) == ("26.1.5+dfsg1", "2.26.1", "")


def test_a_missing_compose_plugin():
    summary = info(captured("no-compose"))
    assert summary["server"] == "26.1.5+dfsg1" and summary["compose"] == ""
    assert summary["compose_problem"] == "the Docker CLI lists no Compose plugin: the Compose v2 plugin is missing"


def test_a_compose_plugin_that_does_not_run():
    summary = info(captured("broken-compose"))
    assert summary["compose"] == ""
    assert summary["compose_problem"] == "the Compose plugin at %s does not work (failed to fetch metadata: exit status 3)" % PLUGIN


def with_plugins(plugins, **changes) -> str:
    data = json.loads(captured("answering"))
    data["ClientInfo"]["Plugins"] = plugins
    data.update(changes)
    return json.dumps(data)


@pytest.mark.parametrize("version, expected", [("v2.29.1", "2.29.1"), ("2.26.1-4", "2.26.1"), ("2.24", "2.24"),
                                               ("v2.40.3-desktop.1", "2.40.3")])
def test_the_compose_version_is_its_release(version, expected):
    plugins = [{"Name": "buildx", "Version": "v0.17.1", "Path": "/x"}, {"Name": "compose", "Version": version, "Path": PLUGIN}]
    assert info(with_plugins(plugins))["compose"] == expected


def test_a_compose_plugin_without_a_version_is_a_problem():
    summary = info(with_plugins([{"Name": "compose", "Version": "", "Path": PLUGIN}]))
    assert summary["compose"] == "" and "gives no version" in summary["compose_problem"]


def test_an_engine_without_a_version_and_no_error_did_not_answer():
    summary = info(with_plugins(None, ServerVersion="", ServerErrors=None))
    assert summary["server"] == "" and summary["server_errors"] == ["the engine gave no version"]
    assert summary["compose_problem"].endswith("the Compose v2 plugin is missing")


@pytest.mark.parametrize("output", ["", "Cannot connect to the Docker daemon", "[]", '{"ServerVersion": "26.1.5"}'],
                         ids=["empty", "text", "list", "no-client"])
def test_output_that_is_not_docker_info_is_an_error(output):
    with pytest.raises(DockerInfoError):
        info(output)
    with pytest.raises(AnsibleFilterError):
        docker_info(output)
    with pytest.raises(AnsibleFilterError, match="standard output of docker info"):
        docker_info(None)


def test_the_filter_gives_the_summary():
    assert docker_info(captured("answering")) == info(captured("answering"))

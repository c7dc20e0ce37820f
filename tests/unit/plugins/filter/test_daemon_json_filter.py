# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""daemon_json_problem: host_tuning's preflight checks daemon.json from the content paths_info read,
with the message docker_daemon_json itself fails with, so the check costs no call of its own."""

from __future__ import annotations

import base64

import pytest

from ansible.errors import AnsibleFilterError
from ansible_collections.difyops.dify.plugins.filter.daemon_json import daemon_json_problem
from ansible_collections.difyops.dify.plugins.module_utils.daemon_json import DaemonJsonError, load


def b64(text: bytes) -> str:
    return base64.b64encode(text).decode("ascii")


@pytest.mark.parametrize("content", [None, b64(b""), b64(b"  \n"), b64(b'{"log-driver": "json-file"}\n')],
                         ids=["no-file", "empty", "blank", "object"])
def test_a_file_the_module_can_merge_into_has_no_problem(content):
    assert daemon_json_problem(content, "/etc/docker/daemon.json") == ""


@pytest.mark.parametrize("text", [b'{"log-driver": "json-file",}', b'["a"]'], ids=["invalid", "not-an-object"])
def test_the_problem_is_the_modules_own_message(text):
    with pytest.raises(DaemonJsonError) as raised:
        load(text.decode(), "/etc/docker/broken.json")
    assert daemon_json_problem(b64(text), "/etc/docker/broken.json") == str(raised.value)
    assert str(raised.value).startswith("/etc/docker/broken.json ")


def test_the_invalid_json_message_says_where():
    # A missing value: Python 3.11 and 3.13 place it alike (a trailing comma they do not).
    assert daemon_json_problem(b64(b'{"log-driver": }'), "/etc/docker/broken.json").startswith(
        "/etc/docker/broken.json is not valid JSON at line 1, column 16: Expecting value.")


def test_text_that_is_not_utf8_and_content_that_is_not_base64():
    assert daemon_json_problem(b64(b"\xff\xfe{}"), "/etc/docker/daemon.json") == (
        "/etc/docker/daemon.json is not UTF-8 text; fix or remove the file, nothing was changed")
    with pytest.raises(AnsibleFilterError, match="takes base64 content"):
        daemon_json_problem("not base64!", "/etc/docker/daemon.json")
    with pytest.raises(AnsibleFilterError, match="takes the base64 content paths_info read"):
        daemon_json_problem({"a": 1})

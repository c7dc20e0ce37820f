# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""dify_stack's logrotate file for a single node's gateway log (templates/logrotate-gateway.j2):
the real logrotate reads it and rotates a log in place (copytruncate: the stack's nginx keeps its
file open, and mtail follows a truncated file). logrotate is a Debian package; .ci/run installs it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import jinja2
import pytest

from ansible_collections.difyops.dify.plugins.plugin_utils.sizing.fleet import plan_fleet
from ansible_collections.difyops.dify.plugins.plugin_utils.stack.compose import GATEWAY_LOG_DIR, bundle

TEMPLATE = Path(__file__).resolve().parents[3] / "roles" / "dify_stack" / "templates" / "logrotate-gateway.j2"
LOGROTATE = shutil.which("logrotate", path="/usr/sbin:/usr/bin:/sbin:/bin")
ALL = ["gateway", "app", "database", "redis", "vector_store"]


def render(log_dir: str) -> str:
    template = jinja2.Template(TEMPLATE.read_text(encoding="utf-8"), keep_trailing_newline=True)
    return template.render(ansible_managed="managed", _dify_stack_bundle={"gateway_log_dir": log_dir})


def test_a_single_node_has_a_gateway_log_on_the_host_and_a_split_app_host_none():
    single = plan_fleet([{"name": "one", "vcpus": 4, "memory_mb": 16000, "components": ALL, "address": "192.0.2.10"}], {})
    found = bundle(single, "one")
    assert found["gateway_log_dir"] == GATEWAY_LOG_DIR
    assert "%s:%s" % (GATEWAY_LOG_DIR, GATEWAY_LOG_DIR) in found["compose"]["services"]["nginx"]["volumes"]
    split = plan_fleet([
        {"name": "gw", "vcpus": 2, "memory_mb": 4000, "components": ["gateway"], "address": "10.0.0.1"},
        {"name": "app", "vcpus": 4, "memory_mb": 16000, "components": ["app"], "address": "10.0.0.2"},
        {"name": "data", "vcpus": 4, "memory_mb": 16000, "components": ["database", "redis", "vector_store"],
         "address": "10.0.0.4"}], {"object_storage": True})
    assert bundle(split, "app", {"object_storage": {"endpoint": "https://s3.example", "bucket": "b"}})["gateway_log_dir"] is None
    assert render(GATEWAY_LOG_DIR).count("%s/*.log {" % GATEWAY_LOG_DIR) == 1


@pytest.mark.skipif(LOGROTATE is None, reason="logrotate is not installed (Debian package logrotate; .ci/run installs it)")
def test_logrotate_rotates_the_log_in_place(tmp_path):
    logs = tmp_path / "dify-gateway"
    logs.mkdir()
    log = logs / "access.log"
    log.write_text("10.0.1.5 [2026-11-29T12:00:00+00:00] \"GET /apps\" 200 10 request_time=0.001\n", encoding="utf-8")
    conf = tmp_path / "difyops-dify-gateway"
    conf.write_text(render(str(logs)), encoding="utf-8")
    conf.chmod(0o644)
    state = tmp_path / "state"
    checked = subprocess.run([LOGROTATE, "--debug", "--state", str(state), str(conf)], capture_output=True, text=True,
                             check=False)
    assert checked.returncode == 0 and "error" not in checked.stderr.lower(), checked.stderr
    inode = log.stat().st_ino
    forced = subprocess.run([LOGROTATE, "--force", "--state", str(state), str(conf)], capture_output=True, text=True,
                            check=False)
    assert forced.returncode == 0, forced.stderr
    # Truncated in place (the same file nginx and mtail hold), the lines kept beside it.
    assert log.stat().st_ino == inode and log.stat().st_size == 0
    assert "GET /apps" in (logs / "access.log.1").read_text(encoding="utf-8")

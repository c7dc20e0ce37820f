# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""commands_info's main() with module arguments, running real programs of this machine: what it
returns for each command, a failing one, a program that is not there, stdin, and what it refuses."""

from __future__ import annotations

import json

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.difyops.dify.plugins.modules import commands_info


def run_module(capsys, args, check_mode=False):
    with patch_module_args(dict(args, _ansible_check_mode=check_mode)), pytest.raises(SystemExit):
        commands_info.main()
    return json.loads(capsys.readouterr().out)


def test_each_command_is_returned_under_its_name_in_a_real_run_and_in_check_mode(capsys, tmp_path):
    (tmp_path / "a").write_text("one\ntwo\n", encoding="utf-8")
    args = {"commands": {"cat": {"argv": ["cat", str(tmp_path / "a")]},
                         "fails": {"argv": ["sh", "-c", "echo out; echo err >&2; exit 3"]},
                         "count": {"argv": ["wc", "-l"], "stdin": "x\ny"}}}
    for check_mode in (False, True):
        result = run_module(capsys, args, check_mode)
        assert result["changed"] is False and "failed" not in result
        assert result["outputs"]["cat"] == {"rc": 0, "stdout": "one\ntwo", "stdout_lines": ["one", "two"], "stderr": "", "msg": ""}
        assert result["outputs"]["fails"] == {"rc": 3, "stdout": "out", "stdout_lines": ["out"], "stderr": "err", "msg": ""}
        # stdin ends with a newline, as with ansible.builtin.command: two lines.
        assert result["outputs"]["count"]["stdout"].strip() == "2"


def test_they_run_in_order_and_arguments_are_not_expanded(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("DIFYOPS_SHOULD_STAY", "expanded")
    marker = tmp_path / "m"
    result = run_module(capsys, {"commands": {
        "write": {"argv": ["sh", "-c", 'echo "$1" > "$2"', "sh", "$DIFYOPS_SHOULD_STAY ~", str(marker)]},
        "read": {"argv": ["cat", str(marker)]}}})
    assert list(result["outputs"]) == ["write", "read"]
    assert result["outputs"]["read"]["stdout"] == "$DIFYOPS_SHOULD_STAY ~"


def test_a_program_that_is_not_there_is_reported_not_failed(capsys):
    result = run_module(capsys, {"commands": {"nft": {"argv": ["/nonexistent/nft", "list", "tables"]},
                                              "true": {"argv": ["true"]}}})
    assert "failed" not in result
    missing = result["outputs"]["nft"]
    assert missing["rc"] == 127 and missing["stdout"] == "" and "/nonexistent/nft" in missing["msg"]
    assert "No such file or directory" in missing["msg"]
    assert result["outputs"]["true"]["rc"] == 0


@pytest.mark.parametrize("commands, expected", [
    ({"a": "ls"}, "a is not a dict with argv"),
    ({"a": {"argv": []}}, "a needs argv"),
    ({"a": {"argv": "ls -l"}}, "a needs argv"),
    ({"a": {"argv": ["ls"], "shell": True}}, "a has unknown keys shell"),
    ({"a": {"argv": ["cat"], "stdin": ["x"]}}, "a has a stdin that is not text"),
], ids=["not-a-dict", "empty", "a-string", "unknown-key", "stdin-list"])
def test_a_malformed_command_runs_nothing(capsys, tmp_path, commands, expected):
    marker = tmp_path / "ran"
    result = run_module(capsys, {"commands": dict(commands, first={"argv": ["touch", str(marker)]})})
    assert result["failed"] is True
    assert result["msg"].startswith("commands_info ran nothing: ") and expected in result["msg"]
    assert not marker.exists()

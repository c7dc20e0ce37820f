# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""paths_info on a real temporary tree, and its main() with module arguments: what it
says of files, directories, links and missing paths, what it reads, and what it refuses."""

from __future__ import annotations

import base64
import json
import os
import socket
import stat

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.difyops.dify.plugins.modules import paths_info
from ansible_collections.difyops.dify.plugins.modules.paths_info import look, read


def run_module(capsys, args, check_mode=False):
    """Runs the module's main() in this process with ``args``, as AnsibleModule would receive them,
    and answers the JSON it prints on exit."""
    with patch_module_args(dict(args, _ansible_check_mode=check_mode)), pytest.raises(SystemExit):
        paths_info.main()
    return json.loads(capsys.readouterr().out)


def test_a_file_a_directory_a_link_and_a_missing_path_are_told_apart(tmp_path):
    (tmp_path / "f").write_text("x" * 10, encoding="utf-8")
    os.chmod(tmp_path / "f", 0o640)
    (tmp_path / "d").mkdir()
    os.symlink(tmp_path / "f", tmp_path / "l")
    found = {name: look(str(tmp_path / name), follow=False) for name in ("f", "d", "l", "missing")}
    assert found["f"] == {"exists": True, "type": "file", "mode": "0640", "uid": os.getuid(), "gid": os.getgid(), "size": 10, "target": None}
    assert found["d"]["type"] == "directory"
    assert (found["l"]["type"], found["l"]["target"]) == ("link", str(tmp_path / "f"))
    assert found["missing"] == {"exists": False, "type": None, "mode": None, "uid": None, "gid": None, "size": None, "target": None}
    assert look(str(tmp_path / "l"), follow=True)["type"] == "file"
    # A path below a file is as missing as one below nothing.
    assert not look(str(tmp_path / "f" / "below"), follow=False)["exists"]


def test_devices_pipes_and_sockets_are_named(tmp_path):
    os.mkfifo(tmp_path / "pipe")
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(tmp_path / "sock"))
        kinds = {name: look(str(tmp_path / name), follow=False)["type"] for name in ("pipe", "sock")}
    assert kinds == {"pipe": "fifo", "sock": "socket"}
    assert look("/dev/null", follow=False)["type"] == "char"
    assert [name for test, name in paths_info._KINDS if test(stat.S_IFBLK)] == ["block"]


def test_a_file_is_read_whole_and_a_missing_one_is_none(tmp_path):
    (tmp_path / ".env").write_bytes(b"SECRET_KEY=abc\n")
    path = str(tmp_path / ".env")
    assert base64.b64decode(read(path, look(path, False), 1024)) == b"SECRET_KEY=abc\n"
    missing = str(tmp_path / "none")
    assert read(missing, look(missing, False), 1024) is None
    # A link is read through; /proc's files say size 0 and are read all the same.
    os.symlink(path, tmp_path / "link")
    assert base64.b64decode(read(str(tmp_path / "link"), look(str(tmp_path / "link"), False), 1024)) == b"SECRET_KEY=abc\n"
    assert base64.b64decode(read("/proc/self/status", look("/proc/self/status", False), 1 << 20)).startswith(b"Name:")


@pytest.mark.parametrize("make, message", [
    (lambda p: p.mkdir(), "it is a directory, not a file"),
    (lambda p: os.symlink(str(p) + ".gone", p), "it is a dangling link, not a file"),
    (lambda p: p.write_bytes(b"x" * 11), "it is larger than read_limit (10 bytes)"),
], ids=["directory", "dangling-link", "too-large"])
def test_what_cannot_be_read_is_refused_with_the_reason(tmp_path, make, message):
    path = tmp_path / "target"
    make(path)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read(str(path), look(str(path), False), 10)


def test_the_module_looks_and_reads_in_one_call_and_changes_nothing(tmp_path, capsys):
    (tmp_path / ".env").write_text("DB_PASSWORD=kept\n", encoding="utf-8")
    args = {"paths": [str(tmp_path / "keeper.json"), str(tmp_path)], "read": [str(tmp_path / ".env"), str(tmp_path / "gone")]}
    for check_mode in (True, False):
        result = run_module(capsys, args, check_mode=check_mode)
        assert not result.get("failed") and result["changed"] is False
        assert list(result["paths"]) == [str(tmp_path / "keeper.json"), str(tmp_path), str(tmp_path / ".env"), str(tmp_path / "gone")]
        assert not result["paths"][str(tmp_path / "keeper.json")]["exists"]
        assert result["paths"][str(tmp_path)]["type"] == "directory"
        assert base64.b64decode(result["contents"][str(tmp_path / ".env")]) == b"DB_PASSWORD=kept\n"
        assert result["contents"][str(tmp_path / "gone")] is None
    assert sorted(os.listdir(tmp_path)) == [".env"]


def test_the_module_refuses_relative_paths_and_names_what_it_cannot_read(tmp_path, capsys):
    relative = run_module(capsys, {"paths": ["etc/difyops"], "read": [".env"]})
    assert relative["failed"] and relative["msg"] == "paths_info takes absolute paths only; relative: etc/difyops, .env"
    unreadable = run_module(capsys, {"read": [str(tmp_path)]})
    assert unreadable["failed"]
    assert unreadable["msg"] == "paths_info could not read %s: it is a directory, not a file: only files can be read" % tmp_path
    negative = run_module(capsys, {"paths": ["/"], "read_limit": -1})
    assert negative["failed"] and "read_limit is -1" in negative["msg"]

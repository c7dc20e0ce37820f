# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""file_set on a real temporary tree: what differs, what is applied, validation that keeps the old
file, and the module itself run as Ansible runs it (arguments on stdin), secrets masked."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import pytest
from ansible.release import __version__ as ansible_core_version

from ansible_collections.difyops.dify.plugins.module_utils.file_set import (
    Entry, FileSetError, apply, check_path, differences, ownership, parse_mode, resolve_user)


def never(command, candidate):
    raise AssertionError("validate ran for an entry that has none")


def mode_of(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_missing_tree_is_created_then_found_equal(tmp_path):
    directory = Entry(path=str(tmp_path / "a" / "b"), kind="directory", mode=0o750)
    file = Entry(path=str(tmp_path / "a" / "b" / "f.conf"), kind="file", mode=0o600, content=b"x=1\n")
    for entry in (directory, file):
        found = differences(entry)
        assert found == ["missing"]
        apply(entry, found, never)
        assert differences(entry) == []
    assert mode_of(directory.path) == 0o750 and mode_of(file.path) == 0o600
    assert (tmp_path / "a" / "b" / "f.conf").read_bytes() == b"x=1\n"


def test_drift_in_content_mode_and_owner_is_found_and_corrected(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"old\n")
    os.chmod(path, 0o644)
    entry = Entry(path=str(path), kind="file", mode=0o600, owner=os.getuid() + 4242, content=b"new\n")
    found = differences(entry)
    assert found == ["content", "mode", "owner"]
    if os.getuid() != 0:
        pytest.skip("changing an owner needs root")
    apply(entry, found, never)
    assert path.read_bytes() == b"new\n" and mode_of(path) == 0o600 and os.stat(path).st_uid == os.getuid() + 4242
    assert differences(entry) == []


def test_only_attributes_are_set_when_the_content_is_equal(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"same")
    os.chmod(path, 0o666)
    inode = os.stat(path).st_ino
    entry = Entry(path=str(path), kind="file", mode=0o640, content=b"same")
    assert differences(entry) == ["mode"]
    apply(entry, ["mode"], never)
    assert mode_of(path) == 0o640 and os.stat(path).st_ino == inode  # not rewritten


def test_a_file_that_fails_validation_never_replaces_the_old_one(tmp_path):
    path = tmp_path / "compose.yaml"
    path.write_bytes(b"good\n")
    seen = []

    def refuse(command, candidate):
        seen.append((command, open(candidate, "rb").read(), mode_of(candidate)))
        return "line 1: broken"

    entry = Entry(path=str(path), kind="file", mode=0o640, content=b"bad\n", validate="check %s")
    with pytest.raises(FileSetError, match="compose.yaml failed validation, so it was not replaced: line 1: broken"):
        apply(entry, differences(entry), refuse)
    assert seen == [("check %s", b"bad\n", 0o640)]  # the candidate had its content and mode
    assert path.read_bytes() == b"good\n"
    assert sorted(os.listdir(tmp_path)) == ["compose.yaml"]  # no temporary file left behind


def test_a_file_with_backup_is_kept_only_once_its_new_content_passed_validation(tmp_path):
    path = tmp_path / "pg_hba.conf"
    path.write_bytes(b"old\n")
    kept = []

    def keep(kept_path):
        kept.append((kept_path, open(kept_path, "rb").read()))  # still the old content

    refused = Entry(path=str(path), kind="file", mode=0o640, content=b"bad\n", validate="check %s", backup=True)
    with pytest.raises(FileSetError, match="failed validation"):
        apply(refused, differences(refused), lambda command, candidate: "broken", keep)
    assert kept == []

    accepted = Entry(path=str(path), kind="file", mode=0o640, content=b"new\n", validate="check %s", backup=True)
    apply(accepted, differences(accepted), lambda command, candidate: None, keep)
    assert kept == [(str(path), b"old\n")] and path.read_bytes() == b"new\n"

    # A new file, or one without backup, has nothing kept.
    for entry in (Entry(path=str(tmp_path / "new.conf"), kind="file", mode=0o644, content=b"x", backup=True),
                  Entry(path=str(path), kind="file", mode=0o640, content=b"newer\n")):
        apply(entry, differences(entry), never, keep)
    assert len(kept) == 1


def test_a_path_of_the_wrong_type_is_refused(tmp_path):
    (tmp_path / "d").write_text("a file where a directory belongs")
    entry = Entry(path=str(tmp_path / "d"), kind="directory", mode=0o755)
    assert differences(entry) == ["type"]
    with pytest.raises(FileSetError, match="exists but is not a directory"):
        apply(entry, ["type"], never)


def test_a_file_whose_directory_is_missing_is_refused(tmp_path):
    entry = Entry(path=str(tmp_path / "nowhere" / "f"), kind="file", mode=0o644, content=b"")
    with pytest.raises(FileSetError, match="list it under directories first"):
        apply(entry, differences(entry), never)


@pytest.mark.parametrize("value", ["644", "0644", "0755", "1777"])
def test_octal_modes(value):
    assert parse_mode(value, "/p") == int(value, 8)


@pytest.mark.parametrize("value", ["0o644", "rw-r--r--", "0648", "07777", "", None, 6.4, True])
def test_bad_modes_name_the_path(value):
    with pytest.raises(FileSetError, match="^/p: mode"):
        parse_mode(value, "/p")


@pytest.mark.parametrize("value, quoted", [(0o640, "0640"), (0o755, "0755"), (644, "01204")])
def test_a_mode_that_yaml_read_as_a_number_is_refused_and_told_to_be_quoted(value, quoted):
    # An unquoted `mode: 0640` reaches the module as 416; read as octal digits it was 0o416 (world-writable).
    with pytest.raises(FileSetError, match="^/p: mode %d is a number, not a quoted string: .* quote it, such as mode: '%s'"
                       % (value, quoted)):
        parse_mode(value, "/p")


@pytest.mark.parametrize("path", ["opt/dify/.env", ".env", "./x", "~user/x", ""])
def test_relative_paths_are_refused(path):
    with pytest.raises(FileSetError, match="not an absolute path"):
        check_path(path)
    assert check_path("/opt/dify/.env") == "/opt/dify/.env"


def test_a_rewrite_keeps_the_owner_and_group_it_was_not_given():
    old = os.stat_result((0o100600, 0, 0, 1, 4242, 4343, 0, 0, 0, 0))
    assert ownership(Entry(path="/p", kind="file", mode=0o600), old) == (4242, 4343)
    assert ownership(Entry(path="/p", kind="file", mode=0o600, owner=7), old) == (7, 4343)
    assert ownership(Entry(path="/p", kind="file", mode=0o600, group=8), old) == (4242, 8)
    assert ownership(Entry(path="/p", kind="file", mode=0o600), None) == (-1, -1)  # new: the writer's own


def test_a_rewritten_file_keeps_its_owner_on_disk(tmp_path):
    if os.getuid() != 0:
        pytest.skip("giving a file another owner needs root")
    path = tmp_path / "f"
    path.write_bytes(b"old\n")
    os.chown(path, 4242, 4343)
    entry = Entry(path=str(path), kind="file", mode=0o600, content=b"new\n")
    apply(entry, differences(entry), never)
    info = os.stat(path)
    assert path.read_bytes() == b"new\n" and (info.st_uid, info.st_gid) == (4242, 4343)


def test_owners_by_name_or_number():
    assert resolve_user("root", "/p") == 0 and resolve_user("1001", "/p") == 1001 and resolve_user(None, "/p") is None
    with pytest.raises(FileSetError, match="owner 'no-such-user-here' is not a user"):
        resolve_user("no-such-user-here", "/p")


ANSIBLE_CORE = tuple(int(part) for part in ansible_core_version.split(".")[:2])


def run_module(args, check_mode=False, diff=False):
    """Runs the module as Ansible does, with its arguments on stdin."""
    internal = dict(_ansible_check_mode=check_mode, _ansible_diff=diff)
    if ANSIBLE_CORE >= (2, 21):  # from 2.21 the controller asks for the invocation; earlier ones refuse the key
        internal["_ansible_inject_invocation"] = True
    payload = {"ANSIBLE_MODULE_ARGS": dict(args, **internal)}
    process = subprocess.run([sys.executable, "-m", "ansible_collections.difyops.dify.plugins.modules.file_set"],
                             input=json.dumps(payload), capture_output=True, text=True, env=os.environ, check=False)
    return json.loads(process.stdout)


def test_the_module_applies_a_set_masks_secrets_and_reruns_unchanged(tmp_path):
    secret = "SECRET_KEY=kept-value-0123456789\n"
    args = {"directories": [{"path": str(tmp_path / "p"), "mode": "0750"}],
            "files": [{"path": str(tmp_path / "p" / ".env"), "content": secret, "mode": "0600", "secret": True},
                      {"path": str(tmp_path / "p" / "compose.yaml"), "content": "name: dify\n", "mode": "0640",
                       "validate": "grep -q name: %s"}]}
    checked = run_module(args, check_mode=True, diff=True)
    assert checked["changed"] and not (tmp_path / "p").exists()  # check mode writes nothing
    first = run_module(args, diff=True)
    assert first["changed"] and first["changed_paths"] == [str(tmp_path / "p"), str(tmp_path / "p" / ".env"),
                                                           str(tmp_path / "p" / "compose.yaml")]
    assert (tmp_path / "p" / ".env").read_text() == secret and mode_of(tmp_path / "p" / ".env") == 0o600
    for result in (checked, first):
        assert "kept-value-0123456789" not in json.dumps(result)  # not in the arguments, not in the diff
        assert {"before_header": str(tmp_path / "p" / "compose.yaml"), "after_header": str(tmp_path / "p" / "compose.yaml"),
                "before": "", "after": "name: dify\n"} in result["diff"]
    again = run_module(args)
    assert (again["changed"], again["changed_paths"], again["changes"]) == (False, [], {})


def test_the_module_fails_on_validation_and_says_what_it_applied(tmp_path):
    args = {"directories": [{"path": str(tmp_path / "p")}],
            "files": [{"path": str(tmp_path / "p" / "compose.yaml"), "content": "broken", "mode": "0640",
                       "validate": "grep -q name: %s"}]}
    result = run_module(args)
    assert result["failed"] and result["changed"]
    assert "compose.yaml failed validation, so it was not replaced" in result["msg"]
    assert result["msg"].endswith("applied before it: %s" % (tmp_path / "p"))
    assert not (tmp_path / "p" / "compose.yaml").exists()


SECRET = "SECRET_KEY=never-shown-5d41402abc4b2a76\n"


@pytest.mark.parametrize("bad, message", [
    ({"owner": "no-such-user-difyops"}, "owner 'no-such-user-difyops' is not a user"),
    ({"group": "no-such-group-difyops"}, "group 'no-such-group-difyops' is not a group"),
    ({"mode": "rw-------"}, "mode 'rw-------' is not an octal mode"),
    ({"mode": 416}, "mode 416 is a number, not a quoted string"),
    ({"path": "relative/.env"}, "relative/.env: not an absolute path"),
    ({"secret": "maybe"}, "secret"),
])
def test_a_secret_file_with_a_bad_argument_fails_without_showing_its_content(tmp_path, bad, message):
    args = {"files": [dict({"path": str(tmp_path / ".env"), "content": SECRET, "mode": "0600", "secret": True}, **bad),
                      {"path": str(tmp_path / "plain"), "content": "plain text\n", "mode": "0644"}]}
    result = run_module(args)
    assert result["failed"] and message in result["msg"]
    assert "never-shown" not in json.dumps(result)
    assert not (tmp_path / ".env").exists()


def test_a_file_that_is_not_secret_still_shows_its_content_in_its_arguments_and_diff(tmp_path):
    args = {"files": [{"path": str(tmp_path / "plain"), "content": "plain text\n", "mode": "0644"}]}
    result = run_module(args, diff=True)
    assert result["invocation"]["module_args"]["files"][0]["content"] == "plain text\n"
    assert result["diff"][0]["after"] == "plain text\n"

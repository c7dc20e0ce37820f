# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""file_set run by ansible-playbook on localhost, as an operator runs it: a secret file whose
arguments are refused shows its content nowhere, with the json callback or at -vvv."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[4]
PLAYBOOK_BIN = pathlib.Path(sys.executable).parent / "ansible-playbook"
SECRET = "never-shown-7c4a8d09ca3762af61e5"

# The first task's `mode: 0600` is unquoted on purpose: YAML hands the module the number 384.
PLAYBOOK = """
- name: Secret files with bad arguments
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Write the secrets with an unquoted mode
      difyops.dify.file_set:
        files:
          - {path: "%(dir)s/.env", content: "SECRET_KEY=%(secret)s", mode: 0600, secret: true}
      ignore_errors: true

    - name: Write the secrets with an owner this host lacks
      difyops.dify.file_set:
        files:
          - {path: "%(dir)s/.env", content: "SECRET_KEY=%(secret)s", mode: "0600", owner: no-such-user-difyops, secret: true}
"""


def run_on_localhost(tmp_path: pathlib.Path, name: str, text: str, extra_env: dict, *args: str) -> subprocess.CompletedProcess:
    """ansible-playbook with TEXT as the playbook NAME in TMP_PATH, against localhost, with this
    repository's configuration and collection."""
    playbook = tmp_path / name
    playbook.write_text(text, encoding="utf-8")
    (tmp_path / "out").mkdir(exist_ok=True)
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
               ANSIBLE_COLLECTIONS_PATH=str(REPO / ".cache" / "collections"),
               ANSIBLE_INVENTORY_UNPARSED_WARNING="false", ANSIBLE_LOCALHOST_WARNING="false",
               ANSIBLE_FACT_CACHING="memory", ANSIBLE_RETRY_FILES_ENABLED="false", NO_COLOR="1", ANSIBLE_NOCOLOR="1",
               **extra_env)
    command = [str(PLAYBOOK_BIN), "-i", "localhost,", "-c", "local",
               "-e", "ansible_python_interpreter=%s" % sys.executable, str(playbook), *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=str(tmp_path), timeout=300, check=False)


def run_playbook(tmp_path: pathlib.Path, extra_env: dict, *args: str) -> subprocess.CompletedProcess:
    return run_on_localhost(tmp_path, "play.yml", PLAYBOOK % {"dir": tmp_path / "out", "secret": SECRET}, extra_env, *args)


@pytest.mark.skipif(not PLAYBOOK_BIN.exists(), reason="ansible-playbook is not beside this Python")
@pytest.mark.parametrize("extra_env, args", [
    ({"ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"}, ()),
    ({}, ("-vvv",)),
], ids=["json-callback", "vvv"])
def test_a_refused_secret_file_shows_its_content_in_no_output(tmp_path, extra_env, args):
    run = run_playbook(tmp_path, extra_env, *args)
    output = run.stdout + run.stderr
    assert run.returncode != 0, output
    assert "owner 'no-such-user-difyops' is not a user" in output, output
    assert SECRET not in output
    assert "mode 384 is a number, not a quoted string" in output and "quote it, such as mode: '0600'" in output, output
    assert not (tmp_path / "out" / ".env").exists()


BACKUP_PLAYBOOK = """
- name: Backups of replaced files
  hosts: localhost
  gather_facts: false
  vars:
    _files:
      - {path: "%(dir)s/kept.conf", content: "%(content)s", mode: "0640", backup: true}
      - {path: "%(dir)s/plain.conf", content: "%(content)s", mode: "0644"}
  tasks:
    - name: Write both files
      difyops.dify.file_set:
        files: "{{ _files }}"
"""


def run_backup_playbook(tmp_path: pathlib.Path, content: str, *args: str) -> dict:
    run = run_on_localhost(tmp_path, "backup.yml", BACKUP_PLAYBOOK % {"dir": tmp_path / "out", "content": content},
                           {"ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"}, *args)
    assert run.returncode == 0, run.stdout + run.stderr
    return json.loads(run.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]


@pytest.mark.skipif(not PLAYBOOK_BIN.exists(), reason="ansible-playbook is not beside this Python")
def test_backup_keeps_the_replaced_version_of_files_that_ask_for_it(tmp_path):
    out = tmp_path / "out"
    first = run_backup_playbook(tmp_path, "first")
    # A new file has nothing to keep.
    assert first["changed"] and first["backup_files"] == {}

    same = run_backup_playbook(tmp_path, "first")
    assert not same["changed"] and same["backup_files"] == {}

    checked = run_backup_playbook(tmp_path, "second", "--check")
    assert checked["changed"] and checked["backup_files"] == {}
    assert sorted(p.name for p in out.iterdir()) == ["kept.conf", "plain.conf"]

    second = run_backup_playbook(tmp_path, "second")
    kept = second["backup_files"]
    assert list(kept) == [str(out / "kept.conf")], second
    backup = pathlib.Path(kept[str(out / "kept.conf")])
    assert backup.parent == out and backup.name.startswith("kept.conf.") and backup.name.endswith("~")
    assert backup.read_text(encoding="utf-8") == "first"
    assert oct(backup.stat().st_mode & 0o777) == "0o640"
    assert (out / "kept.conf").read_text(encoding="utf-8") == "second"
    # plain.conf asked for no backup: only the three files are there.
    assert len(list(out.iterdir())) == 3

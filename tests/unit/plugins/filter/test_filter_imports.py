# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What resolving one of the collection's filters, or a shared fact, costs the worker that does it.

ansible-core resolves a collection's filter by loading every filter file of the collection, in each
worker process that templates one (a task, a `when`, a role variable), and compiles the collection's
Python from source there: it keeps no bytecode. When the filter files imported the sizing engine and
the Compose model at the top, every task that used any filter of the collection paid for importing
them all: 0.34 controller CPU-seconds a task against 0.07 now, and 0.15 against 0.02 for a task
reading the project directory through the constants lookup (bench/plugin_cost.sh, ansible-core 2.21).
So the filter files import the model inside the filters that use it, and the lookup only the module
of the fact it is asked for; these tests load them as ansible-core does, in a fresh interpreter.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[4]
PACKAGE = "ansible_collections.difyops.dify.plugins"
FILTER_FILES = sorted(p.stem for p in (REPO / "plugins" / "filter").glob("*.py") if p.stem != "__init__")
# What a filter file may bring along: the packages on the way and the tiny helper every filter uses.
ALLOWED = {PACKAGE, PACKAGE + ".filter", PACKAGE + ".plugin_utils", PACKAGE + ".plugin_utils.values"}


def loaded_after(code: str) -> dict:
    """The collection's modules and whether jsonschema was imported, after CODE ran in a fresh interpreter."""
    probe = code + (
        "\nimport json, sys\n"
        "print(json.dumps({'collection': sorted(m for m in sys.modules if m.startswith(%r)),"
        " 'jsonschema': 'jsonschema' in sys.modules}))\n" % PACKAGE)
    paths = [str(REPO / ".cache" / "collections"), os.environ.get("PYTHONPATH", "")]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(path for path in paths if path))
    out = subprocess.run([sys.executable, "-c", probe], env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.splitlines()[-1])


def test_there_are_filter_files_to_load():
    assert "compose" in FILTER_FILES and "sizing" in FILTER_FILES and len(FILTER_FILES) >= 10


def test_loading_every_filter_file_imports_none_of_the_model():
    # What ansible-core does to resolve any one filter of the collection: load each file, list its filters.
    code = "import importlib\n" + "".join(
        "importlib.import_module(%r).FilterModule().filters()\n" % ("%s.filter.%s" % (PACKAGE, name))
        for name in FILTER_FILES)
    loaded = loaded_after(code)
    filters = {"%s.filter.%s" % (PACKAGE, name) for name in FILTER_FILES}
    assert set(loaded["collection"]) - filters - ALLOWED == set()
    assert loaded["jsonschema"] is False


@pytest.mark.parametrize("fact, allowed", [
    ("project_dir", set()),
    ("gateway_port", set()),
    ("app_uid", set()),
    ("systemctl_show", {PACKAGE + ".plugin_utils.systemd"}),
])
def test_the_facts_roles_read_on_most_tasks_import_only_their_own_module(fact, allowed):
    code = ("from %s.lookup.constants import LookupModule\n"
            "assert LookupModule().run([%r], {})\n" % (PACKAGE, fact))
    loaded = set(loaded_after(code)["collection"])
    own = {PACKAGE + ".lookup", PACKAGE + ".lookup.constants", PACKAGE + ".plugin_utils.stack",
           PACKAGE + ".plugin_utils.stack.constants", PACKAGE + ".plugin_utils.stack.defaults"}
    assert loaded - ALLOWED - own - allowed == set()


def test_a_filter_still_imports_what_it_uses_when_it_is_called():
    code = ("from %s.filter.compose import stack_status\n"
            "stack_status([], 'started', True, docker_rc=0)\n" % PACKAGE)
    assert PACKAGE + ".plugin_utils.stack.status" in loaded_after(code)["collection"]

# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every role's meta/argument_specs.yml stays in step with its defaults/main.yml: the same public
variables, the same default values, and no option without a description. A role with several entry
points (the internal common role: main, apt_repository, platform, units) is held to this over all of them."""

from __future__ import annotations

import pathlib

import pytest
import yaml

ROLES = sorted(p for p in (pathlib.Path(__file__).resolve().parents[3] / "roles").iterdir() if p.is_dir())


def _load(path: pathlib.Path):
    with path.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle) or {}


def _options(role: pathlib.Path):
    """(entry point, option name, option spec) of every entry point's options."""
    for entry, spec in _load(role / "meta/argument_specs.yml")["argument_specs"].items():
        for name, option in (spec.get("options") or {}).items():
            yield entry, name, option


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_role_has_a_main_entry_point(role):
    assert "main" in _load(role / "meta/argument_specs.yml")["argument_specs"], "%s has no main entry point" % role.name


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_role_has_specs_defaults_and_readme(role):
    for name in ("meta/argument_specs.yml", "meta/main.yml", "defaults/main.yml", "README.md"):
        assert (role / name).is_file(), "%s has no %s" % (role.name, name)


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_specs_match_defaults(role):
    defaults = _load(role / "defaults/main.yml")
    optional = {}
    for entry, name, spec in _options(role):
        if not spec.get("required"):
            optional.setdefault(name, []).append((entry, spec.get("default")))
    assert set(optional) == set(defaults), "%s: options without defaults or defaults without options" % role.name
    for name, entries in optional.items():
        for entry, default in entries:
            assert default == defaults[name], "%s: %s defaults differ (entry point %s)" % (role.name, name, entry)


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_public_variables_carry_the_role_prefix(role):
    for _entry, name, spec in _options(role):
        assert name.startswith(role.name + "_"), "%s: %s lacks the prefix %s_" % (role.name, name, role.name)
        assert spec.get("description"), "%s: %s has no description" % (role.name, name)


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_readme_lists_every_variable(role):
    readme = (role / "README.md").read_text(encoding="utf-8")
    missing = sorted({name for _entry, name, _spec in _options(role) if "`%s`" % name not in readme})
    assert not missing, "%s README does not mention %s" % (role.name, ", ".join(missing))

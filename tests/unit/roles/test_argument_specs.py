# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every role's meta/argument_specs.yml stays in step with its defaults/main.yml: the same public
variables, the same default values, and no option without a description."""

from __future__ import annotations

import pathlib

import pytest
import yaml

ROLES = sorted(p for p in (pathlib.Path(__file__).resolve().parents[3] / "roles").iterdir() if p.is_dir())


def _load(path: pathlib.Path):
    with path.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle) or {}


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_role_has_specs_defaults_and_readme(role):
    for name in ("meta/argument_specs.yml", "meta/main.yml", "defaults/main.yml", "README.md"):
        assert (role / name).is_file(), "%s has no %s" % (role.name, name)


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_specs_match_defaults(role):
    options = _load(role / "meta/argument_specs.yml")["argument_specs"]["main"]["options"]
    defaults = _load(role / "defaults/main.yml")
    optional = {name for name, spec in options.items() if not spec.get("required")}
    assert optional == set(defaults), "%s: options without defaults or defaults without options" % role.name
    for name in optional:
        assert options[name].get("default") == defaults[name], "%s: %s defaults differ" % (role.name, name)


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_public_variables_carry_the_role_prefix(role):
    options = _load(role / "meta/argument_specs.yml")["argument_specs"]["main"]["options"]
    for name, spec in options.items():
        assert name.startswith(role.name + "_"), "%s: %s lacks the prefix %s_" % (role.name, name, role.name)
        assert spec.get("description"), "%s: %s has no description" % (role.name, name)


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_readme_lists_every_variable(role):
    readme = (role / "README.md").read_text(encoding="utf-8")
    options = _load(role / "meta/argument_specs.yml")["argument_specs"]["main"]["options"]
    missing = [name for name in options if "`%s`" % name not in readme]
    assert not missing, "%s README does not mention %s" % (role.name, ", ".join(missing))

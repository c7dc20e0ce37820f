# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that turn the fleet plan into one host's Compose project, check it and report what became
of it (documentation in the .yml files beside)."""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional

from ansible.errors import AnsibleFilterError
from ansible.module_utils.basic import missing_required_lib
from ansible_collections.difyops.dify.plugins.plugin_utils.values import plain as _plain

# The stack model and jsonschema are imported by the filters that use them, not here: ansible-core
# loads every filter file of the collection in each worker process that resolves any one of its
# filters, compiling the collection's Python from source there, so these imports made every task
# that used a filter of the collection cost a fraction of a second of controller CPU
# (tests/unit/plugins/filter/test_filter_imports.py).


def compose_project(plan: Mapping[str, Any], host: str, options: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """One host's Compose project and what follows from it (secrets, ports, firewall, checks)."""
    from ansible_collections.difyops.dify.plugins.plugin_utils.stack.compose import StackError, bundle

    plan = _plain(plan)
    if host not in plan.get("hosts", {}):
        raise AnsibleFilterError("compose_project: host '%s' is not in the plan (planned: %s)"
                                 % (host, ", ".join(sorted(plan.get("hosts", {})))))
    try:
        return bundle(plan, host, _plain(options or {}))
    except KeyError as exc:
        raise AnsibleFilterError("compose_project: %s" % exc.args[0])
    except StackError as exc:
        raise AnsibleFilterError("compose_project: host %s: %s" % (host, exc))


def compose_schema_errors(project: Mapping[str, Any], schema: Mapping[str, Any]) -> List[str]:
    """Every place where the project breaks the Compose Specification, as 'path: message'."""
    try:
        import jsonschema
    except ImportError:  # pragma: no cover - depends on the controller
        jsonschema = None
    if jsonschema is None:
        raise AnsibleFilterError(missing_required_lib("jsonschema") + " (on the controller, for compose_schema_errors)")
    validator_class = jsonschema.validators.validator_for(_plain(schema))
    validator = validator_class(_plain(schema))
    errors = sorted(validator.iter_errors(_plain(project)), key=lambda e: list(e.absolute_path))
    return ["%s: %s" % ("/".join(str(p) for p in error.absolute_path) or "(top)", error.message) for error in errors]


def plan_data_moves(plan: Mapping[str, Any], deployed: Mapping[str, Any], allowed: bool = False) -> Dict[str, List[str]]:
    """What the plan would leave behind on the deployed hosts (refusals) and the orphans."""
    from ansible_collections.difyops.dify.plugins.plugin_utils.stack.moves import plan_data_moves as _plan_data_moves

    try:
        return _plan_data_moves(_plain(plan), {str(h): _plain(p) if isinstance(p, Mapping) else None
                                               for h, p in _plain(deployed).items()}, bool(allowed))
    except (KeyError, TypeError, AttributeError) as exc:
        raise AnsibleFilterError("plan_data_moves: a plan from difyops.dify.stack_plan and deployed Compose "
                                 "projects by host are needed (%s)" % exc)


def deployed_version(project: Any) -> Optional[str]:
    """The Dify version a deployed compose.yaml records; projects written before versions were
    recorded are 1.13.3's (the only version the collection deployed then); None: no project."""
    if not isinstance(project, Mapping) or not project.get("services"):
        return None
    from ansible_collections.difyops.dify.plugins.plugin_utils.stack.compose import VERSION_FIELD

    record = project.get(VERSION_FIELD)
    if isinstance(record, Mapping) and record.get("dify_version"):
        return str(record["dify_version"])
    return "1.13.3"


def dify_upgrade(deployed: Mapping[str, Any], target: str, plan: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """What an upgrade to ``target`` does on the fleet whose deployed projects are given by host;
    with the fleet's plan, also the step each host changes in and what the gateways drain."""
    if not isinstance(deployed, Mapping):
        raise AnsibleFilterError("dify_upgrade: the deployed Compose projects by inventory host are needed, got %s"
                                 % type(deployed).__name__)
    from ansible_collections.difyops.dify.plugins.plugin_utils.stack import versions
    from ansible_collections.difyops.dify.plugins.plugin_utils.upgrade import upgrade_steps

    running = {str(host): deployed_version(_plain(project)) for host, project in deployed.items()}
    result = versions.upgrade(running, str(target))
    result["deployed"] = running
    if plan is not None:
        try:
            result["steps"] = upgrade_steps(_plain(plan), result["hosts"])
        except (KeyError, TypeError, ValueError) as exc:
            raise AnsibleFilterError("dify_upgrade: %s" % (exc if isinstance(exc, ValueError) else
                                                           "the plan lacks %s: pass dify_plan" % exc))
    return result


def stack_status(services: Any, state: str, started: Any, docker_rc: Any = 1, docker_error: Any = "", missing: Any = (),
                 pull: str = "missing", pull_error: Any = None, load_error: Any = None, up_error: Any = None,
                 health_timeout: Any = 600, project_dir: Any = "/opt/dify", host: Any = "") -> Dict[str, Any]:
    """What became of one host's stack (state, step, reason) and whether the host fails, with the
    failure's step, fix and message; see plugin_utils/stack/status.py."""
    from ansible_collections.difyops.dify.plugins.plugin_utils.sizing.validate import as_bool
    from ansible_collections.difyops.dify.plugins.plugin_utils.stack.status import StatusError
    from ansible_collections.difyops.dify.plugins.plugin_utils.stack.status import status as _status

    flag = as_bool(_plain(started))
    if flag is None:
        raise AnsibleFilterError("stack_status: started must be a boolean, got %r" % (_plain(started),))
    try:
        return _status(_plain(services), state=_plain(state), started=flag, docker_rc=_plain(docker_rc),
                       docker_error=_plain(docker_error), missing=_plain(missing), pull=_plain(pull),
                       pull_error=_plain(pull_error), load_error=_plain(load_error), up_error=_plain(up_error),
                       health_timeout=_plain(health_timeout), project_dir=_plain(project_dir), host=_plain(host))
    except StatusError as exc:
        raise AnsibleFilterError("stack_status: %s" % exc)


class FilterModule:
    """The Compose filters."""

    def filters(self):
        return {
            "plan_data_moves": plan_data_moves,
            "dify_upgrade": dify_upgrade,
            "compose_project": compose_project,
            "compose_schema_errors": compose_schema_errors,
            "stack_status": stack_status,
        }

# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that expose the sizing engine to playbooks (documentation in the .yml files beside)."""

from __future__ import annotations

import ipaddress
import json
from typing import Any, Dict, List, Mapping

from ansible.errors import AnsibleFilterError


def _address(hv: Mapping[str, Any]) -> Any:
    """The address other hosts reach this one at: dify_address, an IP ansible_host, or the
    default IPv4 address from the facts."""
    if hv.get("dify_address"):
        return hv["dify_address"]
    candidate = hv.get("ansible_host")
    if candidate:
        try:
            return str(ipaddress.ip_address(str(candidate)))
        except ValueError:
            pass
    facts = hv.get("ansible_facts") or {}
    default = facts.get("default_ipv4") or {}
    return default.get("address") or candidate


def _disk_kind(facts: Mapping[str, Any]) -> str:
    """The slowest known disk kind behind the data paths that difyops.dify.disk_facts described;
    'ssd' when there are no such facts or every kind is unknown."""
    from ansible_collections.difyops.dify.plugins.module_utils.disk_inventory import slowest_kind
    from ansible_collections.difyops.dify.plugins.plugin_utils.sizing.host import DISK_KINDS

    entries = ((facts.get("disks") or {}).get("paths") or {}).values()
    kind = slowest_kind(entry.get("kind") for entry in entries)
    return kind if kind in DISK_KINDS else "ssd"


def _given(value: Any, fallback: Any) -> Any:
    """The variable when it is set (0 and false included, so that the plan can refuse them), else
    the fallback from the facts."""
    return fallback if value is None or value == "" else value


def plan_inputs(groups: Mapping[str, List[str]], hostvars: Mapping[str, Any], group: str = "dify") -> List[Dict[str, Any]]:
    """Build the sizing engine's host list from the inventory's groups and the hosts' facts."""
    from ansible_collections.difyops.dify.plugins.plugin_utils.sizing.catalog import COMPONENTS

    if group not in groups:
        raise AnsibleFilterError("plan_inputs: the inventory has no group '%s' (its groups: %s)"
                                 % (group, ", ".join(sorted(groups))))
    hosts = []
    for name in groups[group]:
        hv = hostvars[name]
        facts = hv.get("ansible_facts") or {}
        gpu_facts = facts.get("gpus") or {}
        hosts.append({
            "name": name,
            "components": [c for c in COMPONENTS if name in groups.get("dify_%s" % c, [])],
            "vcpus": _given(hv.get("dify_vcpus"), facts.get("processor_vcpus")),
            "memory_mb": _given(hv.get("dify_memory_mb"), facts.get("memtotal_mb")),
            "architecture": facts.get("architecture") or "x86_64",
            "address": _address(hv),
            "disk_kind": hv.get("dify_disk_kind") or _disk_kind(facts),
            "gpus": hv.get("dify_gpus") or gpu_facts.get("devices") or [],
            "profile": hv.get("dify_profile"),
            # As given: the plan reads "false" from an INI inventory as false, and refuses "maybe".
            "worker_beat": hv.get("dify_worker_beat"),
            "overrides": hv.get("dify_sizing_overrides"),
            "open_files_limit": hv.get("dify_open_files_limit"),
        })
    return hosts


def stack_plan(hosts: List[Mapping[str, Any]], options: Mapping[str, Any] = None) -> Dict[str, Any]:
    """Plan every host and the fleet; refusals become one filter error listing every problem."""
    from ansible_collections.difyops.dify.plugins.plugin_utils.sizing.errors import PlanError
    from ansible_collections.difyops.dify.plugins.plugin_utils.sizing.fleet import plan_fleet

    try:
        return plan_fleet(hosts, options or {})
    except PlanError as exc:
        raise AnsibleFilterError("The plan is refused, nothing was changed:\n- " + "\n- ".join(exc.problems))


def plan_reports(plan: Mapping[str, Any]) -> Dict[str, str]:
    """The report files of a plan (Markdown and SVG per host), by file name."""
    from ansible_collections.difyops.dify.plugins.plugin_utils.sizing.report import reports

    return reports(plan)


def plan_report_files(plan: Mapping[str, Any], directory: str) -> List[Dict[str, str]]:
    """plan.json and every report as difyops.dify.file_set entries under ``directory``: a fleet's
    reports are written in one module call, not one task per file."""
    from ansible_collections.difyops.dify.plugins.plugin_utils.sizing.report import reports

    if not isinstance(directory, str) or not directory.startswith("/"):
        raise AnsibleFilterError("plan_report_files: the directory must be an absolute path, got %r" % (directory,))
    root = directory.rstrip("/") or "/"
    files = [{"path": "%s/plan.json" % root, "content": json.dumps(plan, indent=4, sort_keys=True) + "\n", "mode": "0644"}]
    files.extend({"path": "%s/%s" % (root, name), "content": content, "mode": "0644"}
                 for name, content in sorted(reports(plan).items()))
    return files


def plan_summary(plan: Mapping[str, Any]) -> List[str]:
    """One line per host and one for the fleet."""
    from ansible_collections.difyops.dify.plugins.plugin_utils.sizing.report import fleet_summary

    return fleet_summary(plan)


class FilterModule:
    """The sizing filters."""

    def filters(self):
        return {
            "plan_inputs": plan_inputs,
            "stack_plan": stack_plan,
            "plan_reports": plan_reports,
            "plan_report_files": plan_report_files,
            "plan_summary": plan_summary,
        }

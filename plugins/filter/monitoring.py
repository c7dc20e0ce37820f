# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Prometheus alert rules and scrape targets computed from the plan (documentation in
dify_alert_rules.yml and dify_scrape_targets.yml beside)."""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional

from ansible.errors import AnsibleFilterError
from ansible_collections.difyops.dify.plugins.plugin_utils import monitoring
from ansible_collections.difyops.dify.plugins.plugin_utils.values import plain as _plain


def dify_alert_rules(plan: Mapping[str, Any], options: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """The rules document ({"groups": [...]}) whose thresholds come from the plan."""
    try:
        return monitoring.alert_rules(_plain(plan), _plain(options or {}))
    except ValueError as exc:
        raise AnsibleFilterError("dify_alert_rules: %s" % exc)


def dify_scrape_targets(plan: Mapping[str, Any], options: Optional[Mapping[str, Any]] = None) -> Dict[str, List[Dict[str, Any]]]:
    """Per exporter kind, the static configs (targets and host/role labels) of the plan's hosts."""
    try:
        return monitoring.scrape_targets(_plain(plan), _plain(options or {}))
    except ValueError as exc:
        raise AnsibleFilterError("dify_scrape_targets: %s" % exc)


class FilterModule:
    """The monitoring filters."""

    def filters(self):
        return {"dify_alert_rules": dify_alert_rules, "dify_scrape_targets": dify_scrape_targets}

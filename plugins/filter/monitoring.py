# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Prometheus alert rules, scrape targets and a Grafana dashboard computed from the plan (documentation
in dify_alert_rules.yml, dify_scrape_targets.yml and dify_grafana_dashboard.yml beside)."""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional

from ansible.errors import AnsibleFilterError
from ansible_collections.difyops.dify.plugins.plugin_utils.values import plain as _plain


def dify_alert_rules(plan: Mapping[str, Any], options: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """The rules document ({"groups": [...]}) whose thresholds come from the plan."""
    from ansible_collections.difyops.dify.plugins.plugin_utils import monitoring

    try:
        return monitoring.alert_rules(_plain(plan), _plain(options or {}))
    except ValueError as exc:
        raise AnsibleFilterError("dify_alert_rules: %s" % exc)


def dify_scrape_targets(plan: Mapping[str, Any], options: Optional[Mapping[str, Any]] = None) -> Dict[str, List[Dict[str, Any]]]:
    """Per exporter kind, the static configs (targets and host/role labels) of the plan's hosts."""
    from ansible_collections.difyops.dify.plugins.plugin_utils import monitoring

    try:
        return monitoring.scrape_targets(_plain(plan), _plain(options or {}))
    except ValueError as exc:
        raise AnsibleFilterError("dify_scrape_targets: %s" % exc)


def dify_grafana_dashboard(plan: Mapping[str, Any], options: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """The Grafana dashboard (one row per host) whose queries and threshold lines are the alerts'."""
    from ansible_collections.difyops.dify.plugins.plugin_utils import monitoring_dashboard

    try:
        return monitoring_dashboard.grafana_dashboard(_plain(plan), _plain(options or {}))
    except ValueError as exc:
        raise AnsibleFilterError("dify_grafana_dashboard: %s" % exc)


class FilterModule:
    """The monitoring filters."""

    def filters(self):
        return {"dify_alert_rules": dify_alert_rules, "dify_scrape_targets": dify_scrape_targets,
                "dify_grafana_dashboard": dify_grafana_dashboard}

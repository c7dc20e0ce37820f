# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The exporters one host runs, from the plan (documentation in dify_monitoring_exporters.yml beside)."""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional

from ansible.errors import AnsibleFilterError
from ansible_collections.difyops.dify.plugins.plugin_utils.values import plain as _plain


def dify_monitoring_exporters(plan: Mapping[str, Any], host: str,
                              options: Optional[Mapping[str, Any]] = None) -> Dict[str, Dict[str, Any]]:
    """Per exporter kind the host runs: its port, listen address and what the kind needs."""
    from ansible_collections.difyops.dify.plugins.plugin_utils import monitoring

    try:
        return monitoring.host_exporters(_plain(plan), str(host), _plain(options or {}))
    except ValueError as exc:
        raise AnsibleFilterError("dify_monitoring_exporters: %s" % exc)


class FilterModule:
    """The per-host monitoring filter."""

    def filters(self):
        return {"dify_monitoring_exporters": dify_monitoring_exporters}

# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""systemd_unit_actions: the units a role must start, restart, reload or enable (documentation in
systemd_unit_actions.yml)."""

from __future__ import annotations

from typing import Any, Dict, List

from ansible.errors import AnsibleFilterError


def _names(value: Any, what: str) -> List[str]:
    if value is None:
        return []
    if isinstance(value, str) or not hasattr(value, "__iter__"):
        raise AnsibleFilterError("systemd_unit_actions takes %s as a list of unit names, got %r" % (what, value))
    return [str(item) for item in value]


def systemd_unit_actions(
    show_output: Any, units: Any, restart: Any = None, reload: Any = None, enable_only: Any = None
) -> List[Dict[str, object]]:
    """The units that need a task, from `systemctl show`'s output."""
    from ansible_collections.difyops.dify.plugins.plugin_utils.systemd import UnitShowError, unit_actions

    try:
        return unit_actions(str(show_output or ""), _names(units, "units"), _names(restart, "restart"), _names(reload, "reload"),
                            _names(enable_only, "enable_only"))
    except UnitShowError as exc:
        raise AnsibleFilterError("systemd_unit_actions: %s" % exc) from exc


class FilterModule:
    def filters(self):
        return {"systemd_unit_actions": systemd_unit_actions}

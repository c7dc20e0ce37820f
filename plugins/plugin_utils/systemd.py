# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a role must do to its systemd units, from one `systemctl show` of all of them.

A role that starts and enables N units with one ansible.builtin.systemd_service task each costs N
round trips on every rerun, although a converged host needs none. One `systemctl show` of every
unit tells which are not running, not enabled or not there; only those, and the ones whose
configuration changed in this run, need a task. A unit stopped or disabled behind the role's back
is still found and put right.
"""

from __future__ import annotations

from typing import Dict, Iterable, List, Optional

# The properties the role asks `systemctl show` for (-p each), which unit_actions reads.
PROPERTIES = ("Id", "LoadState", "ActiveState", "UnitFileState")

# Running as far as ansible.builtin.systemd_service's state=started is concerned.
_RUNNING = frozenset(("active", "activating", "reloading"))
# Enabled as far as enabled=true is concerned: `systemctl is-enabled` succeeds and the module
# leaves the unit alone (a static or generated unit cannot be enabled further).
_ENABLED = frozenset(("enabled", "enabled-runtime", "static", "generated", "transient"))


class UnitShowError(ValueError):
    """`systemctl show`'s output does not describe the units asked about."""


def parse_show(output: str) -> List[Dict[str, str]]:
    """The property blocks of `systemctl show UNIT...`, one dict per unit in the order given; the
    blocks are separated by empty lines."""
    blocks: List[Dict[str, str]] = []
    current: Dict[str, str] = {}
    for line in (output or "").splitlines():
        if not line.strip():
            if current:
                blocks.append(current)
                current = {}
            continue
        key, sep, value = line.partition("=")
        if sep:
            current[key.strip()] = value.strip()
    if current:
        blocks.append(current)
    return blocks


def _unit_id(name: str) -> str:
    return name if "." in name else name + ".service"


def unit_actions(
    show_output: str,
    units: Iterable[str],
    restart: Iterable[str] = (),
    reload: Iterable[str] = (),
    enable_only: Iterable[str] = (),
) -> List[Dict[str, object]]:
    """The units of UNITS that need a task, each as {name, state, enabled, found}, in their order.

    SHOW_OUTPUT is `systemctl show -p Id -p LoadState -p ActiveState -p UnitFileState UNITS...`.
    A unit in RESTART (its configuration changed) is restarted; one that is not running is started;
    one in RELOAD that runs is reloaded; state is None when only enabling is needed. A unit in
    ENABLE_ONLY is never started (a unit whose condition keeps it from running where it is, such as
    a container). Every unit returned is to be enabled. found is false for a unit systemd does not know (its unit file is
    new in this run, or missing): in check mode the role cannot ask systemd about it."""
    names = list(dict.fromkeys(str(unit) for unit in units))
    blocks = parse_show(show_output)
    if len(blocks) != len(names):
        raise UnitShowError(
            "systemctl show described %d unit(s) for the %d asked about (%s)" % (len(blocks), len(names), ", ".join(names))
        )
    restarts = {_unit_id(str(unit)) for unit in restart}
    reloads = {_unit_id(str(unit)) for unit in reload}
    enable_only_ids = {_unit_id(str(unit)) for unit in enable_only}
    actions: List[Dict[str, object]] = []
    for name, block in zip(names, blocks):
        unit_id = _unit_id(name)
        shown = block.get("Id", unit_id)
        if shown != unit_id:
            raise UnitShowError("systemctl show described %s where %s was asked about" % (shown, unit_id))
        found = block.get("LoadState", "not-found") not in ("not-found", "")
        running = found and block.get("ActiveState", "") in _RUNNING
        state: Optional[str] = None
        if unit_id in enable_only_ids:
            pass
        elif unit_id in restarts:
            state = "restarted"
        elif not running:
            state = "started"
        elif unit_id in reloads:
            state = "reloaded"
        enabled = found and block.get("UnitFileState", "") in _ENABLED
        if state is not None or not enabled:
            actions.append({"name": name, "state": state, "enabled": True, "found": found})
    return actions

#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: commands_info
short_description: Run several commands that only read, in one call, and return what each said
version_added: "0.1.0"
description:
  - Runs every command of O(commands), one after the other, without a shell, and returns each
    one's exit status, standard output and standard error under its name.
  - One call does what one M(ansible.builtin.command) task with C(changed_when=false) per command
    would do. A role that reads the kernel's rules, the rules it plans and systemd's view of a unit
    before it decides anything makes one round trip instead of three, which is what an idempotent
    rerun of a fleet mostly spends its time on.
  - A command that exits non-zero, or whose program is not installed, is reported, never an error;
    the caller decides what each exit status means. A program that cannot be found is reported
    with C(rc=127) and the reason in C(msg), as a shell would.
  - It never reports a change and runs in check mode as in a real run, so it is for commands that
    only read. Giving it one that changes the host is the caller's mistake, as with
    M(ansible.builtin.command) and C(check_mode=false).
author:
  - difyops contributors (@difyops)
options:
  commands:
    description:
      - The commands, by a name the result is returned under, in the order they run.
      - Each is a dict with C(argv), the program and its arguments as a list, and optionally
        C(stdin), text given on its standard input.
    type: dict
    required: true
attributes:
  check_mode:
    support: full
    description: Runs the commands as in a real run; they must only read.
  diff_mode:
    support: none
    description: Nothing changes, so there is no diff.
notes:
  - The standard output and error are returned with their trailing newlines stripped, as
    M(ansible.builtin.command) returns them. A newline is added to O(commands)' C(stdin), as
    M(ansible.builtin.command) adds one by default.
  - Arguments are passed as written; C(~) and C($VARIABLES) are not expanded.
seealso:
  - module: ansible.builtin.command
  - module: difyops.dify.paths_info
"""

EXAMPLES = r"""
- name: Read the firewall's rules in the kernel, and what systemd says of the unit that loads them
  difyops.dify.commands_info:
    commands:
      live:
        argv: [nft, list, table, inet, difyops]
      unit:
        argv: [systemctl, show, -p, ActiveState, -p, UnitFileState, difyops-firewall.service]
  register: _firewall

- name: Use what they said
  ansible.builtin.debug:
    msg: >-
      table loaded: {{ _firewall.outputs.live.rc == 0 }},
      unit: {{ _firewall.outputs.unit.stdout_lines }}
"""

RETURN = r"""
outputs:
  description: What every command of O(commands) said, under its name.
  returned: always
  type: dict
  sample:
    live: {rc: 1, stdout: "", stdout_lines: [], stderr: "Error: No such file or directory", msg: ""}
    unit: {rc: 0, stdout: "ActiveState=active\nUnitFileState=enabled", stdout_lines: [ActiveState=active, UnitFileState=enabled],
           stderr: "", msg: ""}
  contains:
    rc:
      description: The exit status; 127 when the program cannot be found or run.
      type: int
    stdout:
      description: The standard output, its trailing newline stripped.
      type: str
    stdout_lines:
      description: The standard output, line by line.
      type: list
      elements: str
    stderr:
      description: The standard error, its trailing newline stripped.
      type: str
    msg:
      description: Why the program could not be run; empty when it ran.
      type: str
"""

from typing import Any, Dict, List, Mapping, Optional

from ansible.module_utils.basic import AnsibleModule

# What a shell answers for a program it cannot find or run.
_NOT_RUN = 127


def problems(commands: Mapping[str, Any]) -> List[str]:
    """Why COMMANDS cannot be run as given: each must be {argv: [program, args...], stdin: text}."""
    found: List[str] = []
    for name, command in commands.items():
        if not isinstance(command, Mapping):
            found.append("%s is not a dict with argv" % name)
            continue
        unknown = sorted(set(command) - {"argv", "stdin"})
        if unknown:
            found.append("%s has unknown keys %s (argv and stdin are known)" % (name, ", ".join(unknown)))
        argv = command.get("argv")
        if not isinstance(argv, list) or not argv or not all(isinstance(arg, (str, int, float)) for arg in argv):
            found.append("%s needs argv, the program and its arguments as a non-empty list of strings" % name)
        if command.get("stdin") is not None and not isinstance(command["stdin"], str):
            found.append("%s has a stdin that is not text" % name)
    return found


def run(module: AnsibleModule, argv: List[str], stdin: Optional[str]) -> Dict[str, Any]:
    """One command's exit status and output; a program that cannot be run is rc 127 with a msg."""
    try:
        # As ansible.builtin.command does by default, a newline ends the text given on stdin; unlike
        # it, arguments are passed as written, without expanding ~ or $VARIABLES.
        rc, out, err = module.run_command([str(arg) for arg in argv], data=stdin, expand_user_and_vars=False,
                                          handle_exceptions=False)
    except OSError as exc:
        return {"rc": _NOT_RUN, "stdout": "", "stdout_lines": [], "stderr": "", "msg": "%s: %s" % (argv[0], exc)}
    out, err = out.rstrip("\r\n"), err.rstrip("\r\n")
    return {"rc": rc, "stdout": out, "stdout_lines": out.splitlines(), "stderr": err, "msg": ""}


def main() -> None:
    module = AnsibleModule(
        argument_spec={"commands": {"type": "dict", "required": True}},
        supports_check_mode=True,
    )
    commands = module.params["commands"]
    found = problems(commands)
    if found:
        module.fail_json(msg="commands_info ran nothing: %s" % "; ".join(found))
    outputs = {name: run(module, command["argv"], command.get("stdin")) for name, command in commands.items()}
    module.exit_json(changed=False, outputs=outputs)


if __name__ == "__main__":
    main()

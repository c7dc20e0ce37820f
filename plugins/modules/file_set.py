#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: file_set
short_description: Bring a set of directories and small files to their wanted state in one call
version_added: "0.1.0"
description:
  - Checks and, where they differ, creates or corrects every directory in O(directories), then
    every file in O(files), in the order given. Mode, owner and group are set where given; a file's
    content is replaced only when it differs.
  - One call does what one M(ansible.builtin.file), M(ansible.builtin.copy) or
    M(ansible.builtin.template) task per path would do. A project of a dozen paths is checked in one
    round trip instead of a dozen, which is what an idempotent rerun of a fleet mostly spends its
    time on.
  - A file is written to a temporary file in its own directory, given its mode and owner, checked
    with its C(validate) command when one is given, and renamed over the old file. A reader never
    sees half a file, and a file that fails validation never replaces the old one; the task fails
    and names the file and the command's output.
  - The content of a file marked C(secret=true) is masked in the task's arguments and results and
    never shown in a diff, so a task that writes secrets needs no C(no_log) and still reports
    which paths changed. Every file's content is masked before any argument is checked, so a task
    that fails on a bad owner, group, mode or path shows no content either.
  - Entries are applied one by one. When one fails, the ones before it have been applied and the
    failure lists them, so a rerun after fixing the cause converges.
author:
  - difyops contributors (@difyops)
options:
  directories:
    description: Directories, created with their parents when missing.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Absolute path; a relative one is refused.
        type: path
        required: true
      mode:
        description:
          - Octal mode as a quoted string, such as V('0755'). A number is refused - YAML reads an
            unquoted V(0755) as the number 493 - with a message that says to quote it.
        type: raw
        default: "0755"
      owner:
        description: User name or uid; left as it is when omitted.
        type: str
      group:
        description: Group name or gid; left as it is when omitted.
        type: str
  files:
    description: Regular files with their whole content. Their directories must exist or be listed in O(directories).
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Absolute path; a relative one is refused.
        type: path
        required: true
      content:
        description:
          - The file's whole content (text, written as UTF-8).
          - Masked in everything the module returns from the moment its arguments are read, so a
            task that fails on any argument never shows it. The content of a file that is not
            O(files[].secret) is unmasked again once the arguments are valid, for its diff.
        type: str
        required: true
      mode:
        description:
          - Octal mode as a quoted string, such as V('0644'). A number is refused - YAML reads an
            unquoted V(0644) as the number 420 - with a message that says to quote it.
        type: raw
        required: true
      owner:
        description:
          - User name or uid. When omitted, a rewritten file keeps the owner of the file it
            replaces, and a new one belongs to the user the module runs as.
        type: str
      group:
        description:
          - Group name or gid. When omitted, a rewritten file keeps the group of the file it
            replaces, and a new one gets the group the module runs as.
        type: str
      validate:
        description:
          - Command that checks the new content before it replaces the file, with V(%s) where the
            candidate file's path goes. Runs only when the content changes, and not in check mode.
        type: str
      secret:
        description:
          - The content holds secrets. It is masked wherever the task's arguments or results are
            shown, and the diff names the file without its content.
        type: bool
        default: false
      backup:
        description:
          - Before new content replaces the file, copy the file beside it under a name with the
            time, as the O(ansible.builtin.template#module:backup) option does, and return that
            name in RV(backup_files). A task that finds something wrong with the new file can put
            the old one back. Not in check mode, and not when O(files[].validate) refuses the new
            content (the file is not replaced then); a new file has nothing to keep.
        type: bool
        default: false
attributes:
  check_mode:
    support: full
    description: Reports every path that would change and how, and writes nothing.
  diff_mode:
    support: full
    description: Shows each changed file's content before and after (a secret file by name only) and
      what changed on each directory.
seealso:
  - module: ansible.builtin.file
  - module: ansible.builtin.template
"""

EXAMPLES = r"""
- name: Write a Compose project's directories and files
  difyops.dify.file_set:
    directories:
      - {path: /opt/dify, mode: "0750", owner: root, group: root}
      - {path: /opt/dify/volumes/app/storage, owner: "1001"}
    files:
      - path: /opt/dify/.env
        content: "{{ lookup('ansible.builtin.template', 'env.j2') }}"
        mode: "0600"
        owner: root
        group: root
        secret: true
      - path: /opt/dify/compose.yaml
        content: "{{ project | to_nice_yaml }}"
        mode: "0640"
        validate: docker compose --project-directory /opt/dify -f %s config --quiet
  register: project_files

- name: Recreate the containers when the Compose file changed
  ansible.builtin.debug:
    msg: compose.yaml changed
  when: "'/opt/dify/compose.yaml' in project_files.changed_paths"
"""

RETURN = r"""
changed_paths:
  description: The paths that were (or in check mode would be) created or corrected, in order.
  returned: always
  type: list
  elements: str
  sample: [/opt/dify/compose.yaml]
changes:
  description: For each changed path, what differed.
  returned: always
  type: dict
  sample: {"/opt/dify/compose.yaml": ["content"], "/opt/dify/volumes/app/storage": ["missing"]}
backup_files:
  description: For each file with O(files[].backup=true) whose content was replaced, where its previous version was kept.
  returned: always
  type: dict
  sample: {"/etc/postgresql/15/main/pg_hba.conf": "/etc/postgresql/15/main/pg_hba.conf.4242.2026-11-30@18:02:11~"}
"""

import shlex

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_bytes, to_native, to_text
from ansible_collections.difyops.dify.plugins.module_utils.file_set import (
    Entry, FileSetError, apply, check_path, differences, parse_mode, resolve_group, resolve_user)

_COMMON = {
    "path": {"type": "path", "required": True},
    "owner": {"type": "str"},
    "group": {"type": "str"},
}


def entries(params: dict) -> list:
    found = []
    for item in params["directories"]:
        path = check_path(item["path"])
        found.append((Entry(path=path, kind="directory", mode=parse_mode(item["mode"], path),
                            owner=resolve_user(item["owner"], path), group=resolve_group(item["group"], path)),
                      False))
    for item in params["files"]:
        path = check_path(item["path"])
        found.append((Entry(path=path, kind="file", mode=parse_mode(item["mode"], path),
                            owner=resolve_user(item["owner"], path), group=resolve_group(item["group"], path),
                            content=to_bytes(item["content"], errors="surrogate_or_strict"),
                            validate=item["validate"], backup=item["backup"]),
                      item["secret"]))
    return found


def shown_contents(files: list) -> set:
    """The contents that may be shown (their files are not secret, and no secret file has the same
    content), as AnsibleModule lists no_log values."""
    hidden = {to_native(item["content"]) for item in files if item["secret"]}
    return {to_native(item["content"]) for item in files if not item["secret"] and item["content"]} - hidden


def old_content(path: str, found: list) -> str:
    if "missing" in found:
        return ""
    with open(path, "rb") as handle:
        return to_text(handle.read(), errors="surrogate_or_replace")


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "directories": {"type": "list", "elements": "dict", "default": [], "options": dict(
                _COMMON, mode={"type": "raw", "default": "0755"})},
            "files": {"type": "list", "elements": "dict", "default": [], "options": dict(
                _COMMON,
                # Masked before anything else is checked; non-secret contents are shown again below.
                content={"type": "str", "required": True, "no_log": True},
                mode={"type": "raw", "required": True},
                validate={"type": "str"},
                secret={"type": "bool", "default": False},
                backup={"type": "bool", "default": False})},
        },
        supports_check_mode=True,
    )
    # The arguments are valid: a file that is not secret shows its content (its diff, its arguments).
    module.no_log_values.difference_update(shown_contents(module.params["files"]))

    def run_validate(command: str, candidate: str):
        if "%s" not in command:
            return "the validate command %r has no %%s for the file" % command
        rc, out, err = module.run_command(command.replace("%s", shlex.quote(candidate)))
        return None if rc == 0 else "%s (rc %d)" % ((err or out).strip() or "no output", rc)

    changed_paths, changes, diffs, backup_files = [], {}, [], {}

    def keep(path: str) -> None:
        backup_files[path] = module.backup_local(path)
    try:
        planned = entries(module.params)
        for entry, secret in planned:
            found = differences(entry)
            if not found:
                continue
            if module._diff:
                if entry.kind == "file" and not secret and ("missing" in found or "content" in found):
                    diffs.append({"before_header": entry.path, "after_header": entry.path,
                                  "before": old_content(entry.path, found), "after": to_text(entry.content)})
                else:
                    diffs.append({"prepared": "%s: %s\n" % (entry.path, ", ".join(found))})
            if not module.check_mode:
                apply(entry, found, run_validate, keep)
            changed_paths.append(entry.path)
            changes[entry.path] = found
    except FileSetError as exc:
        module.fail_json(msg="%s; applied before it: %s" % (to_native(exc), ", ".join(changed_paths) or "nothing"),
                         changed=bool(changed_paths) and not module.check_mode,
                         changed_paths=changed_paths, changes=changes, backup_files=backup_files)
    result = {"changed": bool(changed_paths), "changed_paths": changed_paths, "changes": changes,
              "backup_files": backup_files}
    if diffs:
        result["diff"] = diffs
    module.exit_json(**result)


if __name__ == "__main__":
    main()

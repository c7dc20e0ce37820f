#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: paths_info
short_description: Look at several paths and read small files in one call
version_added: "0.1.0"
description:
  - Says, for every path in O(paths) and O(read), whether it exists, what it is, and its mode,
    owner, group and size; and returns the content of every file in O(read) that exists.
  - One call does what one M(ansible.builtin.stat) or M(ansible.builtin.slurp) task per path would
    do. A role that checks five paths before it decides anything makes one round trip instead of
    five, which is what an idempotent rerun of a fleet mostly spends its time on.
  - It only reads. A path that does not exist is reported as such, never an error.
  - The task that reads a file holding secrets needs C(no_log), as M(ansible.builtin.slurp) does.
author:
  - difyops contributors (@difyops)
options:
  paths:
    description: Absolute paths to look at; a relative one is refused.
    type: list
    elements: path
    default: []
  read:
    description:
      - Absolute paths of regular files to read as well; each is also looked at as in O(paths).
      - A path that exists and is not a regular file, or a file larger than O(read_limit), fails the
        task and names the path.
    type: list
    elements: path
    default: []
  read_limit:
    description: The largest file, in bytes, that O(read) reads.
    type: int
    default: 1048576
  follow:
    description: Follow symbolic links, as M(ansible.builtin.stat)'s O(ansible.builtin.stat#module:follow) does.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    description: Looks and reads as in a real run; it never changes anything either way.
  diff_mode:
    support: none
    description: Nothing changes, so there is no diff.
notes:
  - Files under C(/proc) report a size of 0 and are read whole, up to O(read_limit).
seealso:
  - module: ansible.builtin.stat
  - module: ansible.builtin.slurp
"""

EXAMPLES = r"""
- name: Look for the keeper file and the database markers, and read the deployed .env
  difyops.dify.paths_info:
    paths:
      - /etc/difyops/dify-secrets.json
      - /opt/dify/volumes/db/data/PG_VERSION
    read:
      - /opt/dify/.env
  register: _probe
  no_log: true

- name: Use what was found
  ansible.builtin.debug:
    msg: >-
      keeper: {{ _probe.paths['/etc/difyops/dify-secrets.json'].exists }},
      .env: {{ _probe.contents['/opt/dify/.env'] is not none }}
"""

RETURN = r"""
paths:
  description: Every path of O(paths) and O(read), with what was found there.
  returned: always
  type: dict
  sample:
    /opt/dify/.env: {exists: true, type: file, mode: "0600", uid: 0, gid: 0, size: 2048, target: null}
    /etc/difyops/dify-secrets.json: {exists: false, type: null, mode: null, uid: null, gid: null, size: null, target: null}
  contains:
    exists:
      description: Whether the path exists (a dangling link exists unless O(follow) is set).
      type: bool
    type:
      description:
        - V(file), V(directory), V(link), V(block) (a block device), V(char) (a character device),
          V(fifo), V(socket) or V(other); null when the path does not exist.
      type: str
    target:
      description: Where a symbolic link points, as it is written in the link; null for anything else.
      type: str
    mode:
      description: The permission bits as a four-digit octal string, such as V(0600).
      type: str
    uid:
      description: The owner's uid.
      type: int
    gid:
      description: The group's gid.
      type: int
    size:
      description: The size in bytes.
      type: int
contents:
  description: The content of every file of O(read), base64-encoded; null for a file that does not exist.
  returned: always
  type: dict
  sample:
    /opt/dify/.env: U0VDUkVUX0tFWT0uLi4K
"""

import base64
import os
import stat
from typing import Any, Dict, Optional

from ansible.module_utils.basic import AnsibleModule

_MISSING = {"exists": False, "type": None, "mode": None, "uid": None, "gid": None, "size": None, "target": None}
_KINDS = ((stat.S_ISREG, "file"), (stat.S_ISDIR, "directory"), (stat.S_ISLNK, "link"), (stat.S_ISBLK, "block"),
          (stat.S_ISCHR, "char"), (stat.S_ISFIFO, "fifo"), (stat.S_ISSOCK, "socket"))


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "other")


def look(path: str, follow: bool) -> Dict[str, Any]:
    """What is at ``path``: a stat result reduced to what roles decide on."""
    try:
        found = os.stat(path) if follow else os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return dict(_MISSING)
    kind = _kind(found.st_mode)
    return {"exists": True, "type": kind, "mode": "%04o" % stat.S_IMODE(found.st_mode),
            "uid": found.st_uid, "gid": found.st_gid, "size": found.st_size,
            "target": os.readlink(path) if kind == "link" else None}


def read(path: str, seen: Dict[str, Any], limit: int) -> Optional[str]:
    """The base64 content of the file at ``path``, None when it does not exist; ValueError says
    why a path that exists cannot be read."""
    if not seen["exists"]:
        return None
    kind = seen["type"]
    if kind == "link":
        kind = look(path, follow=True)["type"]
    if kind != "file":
        raise ValueError("it is a %s, not a file: only files can be read" % (kind or "dangling link"))
    with open(path, "rb") as handle:
        content = handle.read(limit + 1)
    if len(content) > limit:
        raise ValueError("it is larger than read_limit (%d bytes): raise read_limit or read it another way" % limit)
    return base64.b64encode(content).decode("ascii")


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "paths": {"type": "list", "elements": "path", "default": []},
            "read": {"type": "list", "elements": "path", "default": []},
            "read_limit": {"type": "int", "default": 1048576},
            "follow": {"type": "bool", "default": False},
        },
        supports_check_mode=True,
    )
    wanted = list(dict.fromkeys(list(module.params["paths"]) + list(module.params["read"])))
    relative = [path for path in wanted if not os.path.isabs(path)]
    if relative:
        module.fail_json(msg="paths_info takes absolute paths only; relative: %s" % ", ".join(relative))
    if module.params["read_limit"] < 0:
        module.fail_json(msg="read_limit is %d: give a size in bytes, 0 or more" % module.params["read_limit"])
    paths = {path: look(path, module.params["follow"]) for path in wanted}
    contents: Dict[str, Optional[str]] = {}
    for path in dict.fromkeys(module.params["read"]):
        try:
            contents[path] = read(path, paths[path], module.params["read_limit"])
        except (OSError, ValueError) as exc:
            module.fail_json(msg="paths_info could not read %s: %s" % (path, exc), paths=paths)
    module.exit_json(changed=False, paths=paths, contents=contents)


if __name__ == "__main__":
    main()

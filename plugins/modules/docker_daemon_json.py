#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: docker_daemon_json
short_description: Merge settings into Docker's daemon.json without touching other owners' keys
version_added: "0.1.0"
description:
  - Merges O(settings) into Docker's C(daemon.json). Objects are merged key by key, other values
    are replaced; every key not named stays as it is, in particular the C(runtimes) and
    C(default-runtime) entries that C(nvidia-ctk runtime configure) writes.
  - The file is written only when the merged configuration differs from the current one, so a
    second run changes nothing and an equal file keeps its formatting.
  - A file that is not a JSON object is never overwritten; the task fails and says where the file
    is broken.
  - Restarting Docker is left to the caller (a handler notified by C(changed)).
author:
  - difyops contributors (@difyops)
options:
  path:
    description: Path of the file; it and its directory are created when missing.
    type: path
    default: /etc/docker/daemon.json
  settings:
    description: Keys to set, with Docker's own names (C(log-opts), C(live-restore), ...).
    type: dict
    default: {}
  remove:
    description: Top-level keys to remove, for settings this owner no longer wants.
    type: list
    elements: str
    default: []
  validate_only:
    description: Only read and check the file, for preflight checks and read-only decisions; never writes.
    type: bool
    default: false
  runtime:
    description:
      - The container runtime whose state RV(runtime_state) reports, for example C(nvidia).
    type: str
    default: nvidia
  runtime_as_default:
    description:
      - Whether O(runtime) should be Docker's default runtime; only changes the decision
        RV(runtime_state.configure), never the file.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    description: Reports what would change, with a diff, and writes nothing.
  diff_mode:
    support: full
    description: Shows the file before and after.
seealso:
  - name: Docker daemon configuration file
    description: Every key daemon.json accepts.
    link: https://docs.docker.com/reference/cli/dockerd/#daemon-configuration-file
"""

EXAMPLES = r"""
- name: Rotate container logs and keep containers running over daemon restarts
  difyops.dify.docker_daemon_json:
    settings:
      log-driver: json-file
      log-opts: {max-size: 50m, max-file: "5"}
      live-restore: true
  notify: Restart Docker

- name: Check that an existing daemon.json can be merged into (preflight)
  difyops.dify.docker_daemon_json:
    validate_only: true

- name: Decide, without writing, whether the nvidia runtime must be configured
  difyops.dify.docker_daemon_json:
    validate_only: true
    runtime: nvidia
  register: daemon_json

- name: Configure the runtime only when it is missing
  ansible.builtin.command: nvidia-ctk runtime configure --runtime=docker
  when: daemon_json.runtime_state.configure
"""

RETURN = r"""
config:
  description: The configuration after the merge (what the file holds, or would hold in check mode).
  returned: success
  type: dict
  sample: {"live-restore": true, "runtimes": {"nvidia": {"path": "nvidia-container-runtime", "args": []}}}
existed:
  description: Whether the file existed before.
  returned: success
  type: bool
runtime_state:
  description:
    - Whether O(runtime) is configured (has a C(path) under C(runtimes)) and whether it is the
      C(default-runtime), in the configuration after the merge.
    - C(configure) is the decision built on them; it is true when the runtime is missing, or when
      O(runtime_as_default) asks for the default runtime and another one is.
  returned: success
  type: dict
  contains:
    configured:
      description: The runtime has a path.
      type: bool
    default:
      description: The runtime is C(default-runtime).
      type: bool
    path:
      description: The runtime's path, or null.
      type: str
    configure:
      description: Whether a tool such as C(nvidia-ctk runtime configure) must run.
      type: bool
    reason:
      description: The state in words.
      type: str
  sample:
    configured: true
    default: false
    path: nvidia-container-runtime
    configure: false
    reason: runtime 'nvidia' is configured (nvidia-container-runtime)
"""

import os
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native
from ansible_collections.difyops.dify.plugins.module_utils.daemon_json import (
    DaemonJsonError, load, merge, render, runtime_state)


def read(path: str):
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def write(module: AnsibleModule, path: str, text: str) -> None:
    directory = os.path.dirname(path) or "."
    if not os.path.isdir(directory):
        os.makedirs(directory, 0o755)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".daemon.json.")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(tmp, 0o644)
    module.atomic_move(tmp, path)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "default": "/etc/docker/daemon.json"},
            "settings": {"type": "dict", "default": {}},
            "remove": {"type": "list", "elements": "str", "default": []},
            "validate_only": {"type": "bool", "default": False},
            "runtime": {"type": "str", "default": "nvidia"},
            "runtime_as_default": {"type": "bool", "default": False},
        },
        supports_check_mode=True,
    )
    path = module.params["path"]
    try:
        before_text = read(path)
        current = load(before_text, path)
    except DaemonJsonError as exc:
        module.fail_json(msg=str(exc), path=path)
    except (OSError, UnicodeDecodeError) as exc:
        module.fail_json(msg="%s cannot be read: %s; nothing was changed" % (path, to_native(exc)), path=path)

    runtime, as_default = module.params["runtime"], module.params["runtime_as_default"]
    if module.params["validate_only"]:
        module.exit_json(changed=False, config=current, existed=before_text is not None,
                         runtime_state=runtime_state(current, runtime, as_default))

    merged = merge(current, module.params["settings"], module.params["remove"])
    changed = merged != current
    result = {"changed": changed, "config": merged, "existed": before_text is not None,
              "runtime_state": runtime_state(merged, runtime, as_default)}
    if changed and module._diff:
        result["diff"] = {"before": render(current) if before_text is not None else "",
                          "after": render(merged), "before_header": path, "after_header": path}
    if changed and not module.check_mode:
        try:
            write(module, path, render(merged))
        except OSError as exc:
            module.fail_json(msg="%s cannot be written: %s" % (path, to_native(exc)), path=path)
    module.exit_json(**result)


if __name__ == "__main__":
    main()

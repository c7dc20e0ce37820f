# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""daemon_json_problem and daemon_json_merge: what docker_daemon_json would say of a daemon.json
read by paths_info, without a call of its own (documentation in daemon_json_problem.yml and
daemon_json_merge.yml)."""

from __future__ import annotations

import base64
import binascii
from typing import Any, Dict, Iterable, Mapping

from ansible.errors import AnsibleFilterError


def _text(content: Any, name: str) -> str:
    """The text of the base64 CONTENT paths_info read; UnicodeDecodeError when it is not UTF-8."""
    if not isinstance(content, str):
        raise AnsibleFilterError("%s takes the base64 content paths_info read, got %r" % (name, content))
    try:
        raw = base64.b64decode(content, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise AnsibleFilterError("%s takes base64 content: %s" % (name, exc)) from exc
    return raw.decode("utf-8")


def _load(content: Any, path: str, name: str) -> Dict[str, Any]:
    """The configuration in the base64 CONTENT (None: no file); DaemonJsonError with the module's
    own message when docker_daemon_json could not merge into it."""
    from ansible_collections.difyops.dify.plugins.module_utils.daemon_json import DaemonJsonError, load

    if content is None:
        return {}
    try:
        return load(_text(content, name), path)
    except UnicodeDecodeError:
        raise DaemonJsonError("%s is not UTF-8 text; fix or remove the file, nothing was changed" % path) from None


def daemon_json_problem(content: Any, path: Any = "daemon.json") -> str:
    """Empty when the base64 CONTENT (None: no file) is a configuration docker_daemon_json can merge
    into; otherwise the same message the module fails with."""
    from ansible_collections.difyops.dify.plugins.module_utils.daemon_json import DaemonJsonError

    try:
        _load(content, str(path), "daemon_json_problem")
    except DaemonJsonError as exc:
        return str(exc)
    return ""


def daemon_json_merge(content: Any, settings: Any, remove: Any = ()) -> Dict[str, Any]:
    """What docker_daemon_json would make of the base64 CONTENT (None: no file) with SETTINGS merged
    in and the keys of REMOVE dropped: `config`, the merged configuration, and `differs`, the
    module's own comparison with the file's. A file it could not merge into is an error."""
    from ansible_collections.difyops.dify.plugins.module_utils.daemon_json import DaemonJsonError, merge

    if not isinstance(settings, Mapping):
        raise AnsibleFilterError("daemon_json_merge takes the settings as a mapping, got %r" % (settings,))
    if isinstance(remove, (str, bytes)) or not isinstance(remove, Iterable):
        raise AnsibleFilterError("daemon_json_merge takes the keys to remove as a list, got %r" % (remove,))
    try:
        current = _load(content, "daemon.json", "daemon_json_merge")
    except DaemonJsonError as exc:
        raise AnsibleFilterError(str(exc)) from exc
    merged = merge(current, settings, [str(key) for key in remove])
    return {"config": merged, "differs": merged != current}


class FilterModule:
    def filters(self):
        return {"daemon_json_problem": daemon_json_problem, "daemon_json_merge": daemon_json_merge}

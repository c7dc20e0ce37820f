# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""daemon_json_problem: why a daemon.json read by paths_info cannot be merged into (documentation
in daemon_json_problem.yml)."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.difyops.dify.plugins.module_utils.daemon_json import DaemonJsonError, load


def daemon_json_problem(content: Any, path: Any = "daemon.json") -> str:
    """Empty when the base64 CONTENT (None: no file) is a configuration docker_daemon_json can merge
    into; otherwise the same message the module fails with."""
    if content is None:
        return ""
    if not isinstance(content, str):
        raise AnsibleFilterError("daemon_json_problem takes the base64 content paths_info read, got %r" % (content,))
    try:
        text = base64.b64decode(content, validate=True).decode("utf-8")
    except (binascii.Error, ValueError) as exc:
        if isinstance(exc, UnicodeDecodeError):
            return "%s is not UTF-8 text; fix or remove the file, nothing was changed" % path
        raise AnsibleFilterError("daemon_json_problem takes base64 content: %s" % exc) from exc
    try:
        load(text, str(path))
    except DaemonJsonError as exc:
        return str(exc)
    return ""


class FilterModule:
    def filters(self):
        return {"daemon_json_problem": daemon_json_problem}

# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""docker_info: the client's, the engine's and the Compose plugin's versions from one `docker info`
(documentation in docker_info.yml)."""

from __future__ import annotations

from typing import Any, Dict

from ansible.errors import AnsibleFilterError


def docker_info(output: Any) -> Dict[str, Any]:
    """The summary of `docker info --format '{{json .}}'`'s standard output."""
    if not isinstance(output, str):
        raise AnsibleFilterError("docker_info takes the standard output of docker info, got %r" % (output,))
    from ansible_collections.difyops.dify.plugins.plugin_utils.docker import DockerInfoError, info

    try:
        return info(output)
    except DockerInfoError as exc:
        raise AnsibleFilterError(str(exc)) from exc


class FilterModule:
    def filters(self):
        return {"docker_info": docker_info}

# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""apt_unlisted: the packages apt's lists cannot install yet; apt_policy: the packages an install
would change and those apt's lists cannot install yet (documentation in apt_unlisted.yml and
apt_policy.yml)."""

from __future__ import annotations

from typing import Any, Dict, List

from ansible.errors import AnsibleFilterError


def apt_unlisted(show_output: Any, packages: Any) -> List[str]:
    """The packages without a record in `apt-cache show`'s output."""
    if isinstance(packages, str) or not hasattr(packages, "__iter__"):
        raise AnsibleFilterError("apt_unlisted takes a list of package names, got %r" % (packages,))
    from ansible_collections.difyops.dify.plugins.plugin_utils.apt import unlisted

    return unlisted(str(show_output or ""), packages)


def apt_policy(policy_output: Any, packages: Any) -> Dict[str, List[str]]:
    """The packages not installed, and those of them apt's lists do not know, from `apt-cache policy`."""
    if isinstance(packages, str) or not hasattr(packages, "__iter__"):
        raise AnsibleFilterError("apt_policy takes a list of package names, got %r" % (packages,))
    from ansible_collections.difyops.dify.plugins.plugin_utils.apt import policy

    return policy(str(policy_output or ""), packages)


class FilterModule:
    def filters(self):
        return {"apt_unlisted": apt_unlisted, "apt_policy": apt_policy}

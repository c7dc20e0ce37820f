# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""apt_unlisted: the packages apt's lists cannot install yet (documentation in apt_unlisted.yml)."""

from __future__ import annotations

from typing import Any, List

from ansible.errors import AnsibleFilterError
from ansible_collections.difyops.dify.plugins.plugin_utils.apt import unlisted


def apt_unlisted(show_output: Any, packages: Any) -> List[str]:
    """The packages without a record in `apt-cache show`'s output."""
    if isinstance(packages, str) or not hasattr(packages, "__iter__"):
        raise AnsibleFilterError("apt_unlisted takes a list of package names, got %r" % (packages,))
    return unlisted(str(show_output or ""), packages)


class FilterModule:
    def filters(self):
        return {"apt_unlisted": apt_unlisted}

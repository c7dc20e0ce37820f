# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection's shared facts (plugins/plugin_utils/stack/constants.py), for roles and playbooks."""

from __future__ import annotations

DOCUMENTATION = r"""
name: constants
author:
  - difyops contributors (@difyops)
version_added: 0.4.0
short_description: The facts several of the collection's roles share, from one place
description:
  - Answers the facts that more than one role or playbook of the collection needs, each from the
    Python module that owns it, so that no role keeps a copy that could drift.
  - Without a term it answers every fact as one dictionary; with terms, the value of each.
  - The values are fixed by the collection's version; nothing is read from the hosts.
options:
  _terms:
    description:
      - Names of the facts to answer; none answers all of them as one dictionary.
      - "C(project_dir): where a host's Compose project lives unless C(dify_stack_project_dir) says otherwise."
      - "C(gateway_port): the gateway's plain HTTP port unless C(dify_stack_gateway_port) says otherwise."
      - "C(app_uid): the UID of Dify's api, worker and plugin daemon containers, the owner of their data."
      - "C(generated_secrets): the secrets a deployment generates when they are not given, in order."
      - "C(given_only_secrets): the secrets only the operator can give (object storage keys, a Hugging Face token)."
      - "C(secret_formats): the generated secrets that are not letters and digits, with their format."
      - "C(secret_min_length): the shortest secret the operator may give."
      - "C(upstream_default_secrets): Dify's published default secrets (of every supported version) that
        are long enough to be given; none may be used."
      - "C(known_default_passwords): passwords a PostgreSQL of the stack must never get."
      - "C(database_markers): for each database of the stack, the file (relative to the project) that
        says its data directory holds a cluster, and the secret that is its password."
      - "C(systemctl_show): the command, before the units, whose output
        P(difyops.dify.systemd_unit_actions#filter) reads (C(systemctl show -p Id ... --))."
    type: list
    elements: str
    required: false
"""

EXAMPLES = r"""
- name: Refuse a password that Dify's examples publish
  ansible.builtin.assert:
    that: my_password not in lookup('difyops.dify.constants', 'known_default_passwords')

- name: Read every shared fact at once
  ansible.builtin.debug:
    msg: "{{ lookup('difyops.dify.constants').project_dir }}"

- name: Follow the stack's project directory, or the collection's default
  ansible.builtin.set_fact:
    project_dir: "{{ dify_stack_project_dir | default(lookup('difyops.dify.constants', 'project_dir')) }}"
"""

RETURN = r"""
_raw:
  description:
    - Without terms, one dictionary of every fact by name.
    - With terms, the value of each named fact, in the order asked (with C(lookup), one term answers
      its value itself).
  type: list
  elements: raw
"""

from typing import Any, List

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase
from ansible_collections.difyops.dify.plugins.plugin_utils.stack.constants import NAMES, constants


class LookupModule(LookupBase):
    """lookup('difyops.dify.constants'[, NAME...])"""

    def run(self, terms: List[Any], variables: Any = None, **kwargs: Any) -> List[Any]:
        self.set_options(var_options=variables, direct=kwargs)
        if not terms:
            return [constants()]
        unknown = [str(term) for term in terms if term not in NAMES]
        if unknown:
            raise AnsibleLookupError("difyops.dify.constants has no fact named %s (it has: %s)"
                                     % (", ".join(unknown), ", ".join(sorted(NAMES))))
        # Only the facts asked for: each imports what it comes from (see plugin_utils/stack/constants.py).
        facts = constants(terms)
        return [facts[term] for term in terms]

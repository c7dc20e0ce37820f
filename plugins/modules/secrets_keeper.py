#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: secrets_keeper
short_description: Keep a deployment's secrets in one file, generated once and never over values in use
version_added: "0.3.0"
description:
  - Reads the keeper file O(path) (one JSON object of strings, root's, mode 0600), decides the
    secrets to keep and writes them back when they differ, all under an exclusive lock on
    C(<path>.lock). Two runs at once take turns, so they end with one set of secrets.
  - Kept values win. Values in use on the fleet (O(in_use), read from the deployed C(.env) files)
    must agree with them; a keeper that is missing while secrets are in use, or that disagrees
    with them, is refused with a message that names the secrets (never their values) and the fix,
    and nothing is written. O(adopt=true) takes the values in use instead, once.
  - O(seed) moves the secrets of another keeper in (an explicit move of the keeper); a keeper that
    already holds other values is refused.
  - O(given) values replace kept ones (an operator's deliberate rotation). Names in O(generate)
    that are still missing get new values from the host's CSPRNG - O(length) letters and digits, or
    the format O(formats) names.
  - The returned O(given), O(in_use) and O(seed) values are masked by Ansible like every
    C(no_log) argument; combine them over RV(secrets) in that order, as the difyops.dify.dify_secrets
    role does, and run the task with C(no_log).
author:
  - difyops contributors (@difyops)
options:
  path:
    description: Absolute path of the keeper file. Its directory is created root's and 0700 when missing.
    type: path
    required: true
  generate:
    description: Names that get a generated value when neither kept, in use, moved nor given.
    type: list
    elements: str
    default: []
  length:
    description: Length of a generated value.
    type: int
    default: 48
  formats:
    description:
      - The format of generated values, by name; names not listed get O(length) letters and digits (V(token)).
      - V(base64url32) is 32 random bytes as unpadded base64url (43 characters), the form Dify's agent
        backend requires of C(DIFY_AGENT_SERVER_SECRET_KEY).
    type: dict
    default: {}
  given:
    description: Values that replace the kept ones, by name.
    type: dict
    default: {}
  in_use:
    description: Values the fleet has in use, by name; the kept ones must agree with them.
    type: dict
    default: {}
  in_use_at:
    description: Where the values in use were found (such as V(app1:/opt/dify/.env)), for messages.
    type: list
    elements: str
    default: []
  seed:
    description: The secrets of the keeper being moved from, by name.
    type: dict
    default: {}
  seed_from:
    description: Where O(seed) comes from, for messages.
    type: str
    default: ""
  adopt:
    description: Take the values in use where the keeper is missing or disagrees, instead of refusing.
    type: bool
    default: false
  label:
    description: How messages name the keeper (such as V(app1:/etc/difyops/dify-secrets.json)); O(path) when empty.
    type: str
    default: ""
  lock_timeout:
    description: Seconds to wait for another run's lock before failing.
    type: int
    default: 60
notes:
  - Supports check mode (nothing is written, not even the lock file) and diff mode is not offered,
    since every value is a secret.
seealso:
  - name: The dify_secrets role
    description: Finds the values in use on the fleet and calls this module on the keeper host.
    link: https://github.com/difyops/dify/tree/main/roles/dify_secrets
"""

EXAMPLES = r"""
- name: Keep the deployment's secrets
  difyops.dify.secrets_keeper:
    path: /etc/difyops/dify-secrets.json
    generate: [SECRET_KEY, DB_PASSWORD, REDIS_PASSWORD]
    given: "{{ dify_secrets_given }}"
  register: kept
  no_log: true
"""

RETURN = r"""
secrets:
  description: The kept secrets by name; values equal to a C(no_log) argument are masked.
  returned: success
  type: dict
created:
  description: Whether the keeper file did not exist before this run.
  returned: success
  type: bool
generated:
  description: Names that got a new value in this run.
  returned: success
  type: list
  elements: str
adopted:
  description: Names whose values in use replaced the kept ones (O(adopt=true)).
  returned: success
  type: list
  elements: str
moved:
  description: Names taken from O(seed).
  returned: success
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.difyops.dify.plugins.module_utils.secrets_keeper import FORMATS, KeeperError, Request, keep


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            generate=dict(type="list", elements="str", default=[]),
            length=dict(type="int", default=48),
            formats=dict(type="dict", default={}),
            given=dict(type="dict", default={}, no_log=True),
            in_use=dict(type="dict", default={}, no_log=True),
            in_use_at=dict(type="list", elements="str", default=[]),
            seed=dict(type="dict", default={}, no_log=True),
            seed_from=dict(type="str", default=""),
            adopt=dict(type="bool", default=False),
            label=dict(type="str", default=""),
            lock_timeout=dict(type="int", default=60),
        ),
        supports_check_mode=True,
    )
    params = module.params
    if params["length"] < 32:
        module.fail_json(msg="length must be 32 or more (got %d)" % params["length"])
    unknown = sorted(k for k, v in params["formats"].items() if v not in FORMATS)
    if unknown:
        module.fail_json(msg="formats must map names to one of %s (not: %s)" % (", ".join(FORMATS), ", ".join(unknown)))
    for option in ("given", "in_use", "seed"):
        wrong = sorted(k for k, v in params[option].items() if not isinstance(v, str) or not v)
        if wrong:
            module.fail_json(msg="%s must map names to non-empty strings (not: %s)" % (option, ", ".join(wrong)))
    request = Request(generate=params["generate"], length=params["length"], given=params["given"],
                      in_use=params["in_use"], in_use_at=params["in_use_at"], seed=params["seed"],
                      seed_from=params["seed_from"], adopt=params["adopt"], formats=params["formats"],
                      where="the keeper %s" % (params["label"] or params["path"]))
    try:
        decision, changed, created = keep(params["path"], request, check_mode=module.check_mode,
                                          lock_timeout=params["lock_timeout"])
    except KeeperError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=changed, secrets=decision.values, created=created, generated=decision.generated,
                     adopted=decision.adopted, moved=decision.moved)


if __name__ == "__main__":
    main()

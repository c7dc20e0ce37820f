# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The facts of the collection that several roles need, each from the one module that owns it.

Roles and playbooks read them through the lookup difyops.dify.constants instead of keeping copies:
the project directory, the gateway's port, the app containers' UID, the secrets a deployment generates or only takes,
their formats, the shortest secret accepted, Dify's published default secrets and the passwords
PostgreSQL must never get, and the data directories whose presence says a database holds data.
"""

from __future__ import annotations

from typing import Any, Dict, Tuple

from ..sizing.services import SERVICES
from ..systemd import PROPERTIES
from . import compose, reference_1_13_3, reference_1_16_1, versions

# A secret given by the operator must be at least this long (the generated ones are longer).
SECRET_MIN_LENGTH = 16
# Passwords a PostgreSQL of the stack's must never get: those Dify's .env.example files publish for
# its databases, and PostgreSQL's customary ones.
KNOWN_DEFAULT_PASSWORDS: Tuple[str, ...] = (
    "difyai123456", "Difyai123456", "difypassword", "testpassword", "password", "postgres")
# Every default secret published by a supported version's upstream files (the references), as
# values: Compose interpolations (${NAME:-value}) repeat a value that is listed on its own.
UPSTREAM_DEFAULT_SECRETS = frozenset(
    secret for secret in reference_1_13_3.DEFAULT_SECRETS | reference_1_16_1.DEFAULT_SECRETS if "${" not in secret)
# The stack's databases: the file whose presence says the data directory holds a cluster, and the
# secret that is its password (the data directories are compose.DATA_DIRS').
DATABASE_PASSWORDS = {name: record.password for name, record in SERVICES.items() if record.password}


def constants() -> Dict[str, Any]:
    """The collection's shared facts by name, as plain data (lists, dicts, strings, integers)."""
    return {
        "project_dir": compose.DEFAULT_PROJECT_DIR,
        "gateway_port": compose.DEFAULT_GATEWAY_PORT,
        "app_uid": compose.DIFY_UID,
        "generated_secrets": [name for name in compose.SECRET_VARIABLES if name not in compose.GIVEN_ONLY_SECRETS],
        "given_only_secrets": list(compose.GIVEN_ONLY_SECRETS),
        "secret_formats": {name: form for name, form in versions.every_secret().items() if form != "token"},
        "secret_min_length": SECRET_MIN_LENGTH,
        # Shorter defaults are refused by their length already.
        "upstream_default_secrets": sorted(s for s in UPSTREAM_DEFAULT_SECRETS if len(s) >= SECRET_MIN_LENGTH),
        "known_default_passwords": list(KNOWN_DEFAULT_PASSWORDS),
        "database_markers": {compose.DATA_DIRS[service] + "/PG_VERSION": secret
                             for service, secret in DATABASE_PASSWORDS.items()},
        # The command, before the units, whose output difyops.dify.systemd_unit_actions reads.
        "systemctl_show": ["systemctl", "show"] + [arg for name in PROPERTIES for arg in ("-p", name)] + ["--"],
    }

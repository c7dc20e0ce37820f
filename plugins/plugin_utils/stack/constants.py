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

from typing import Any, Callable, Dict, Iterable, Optional, Tuple

from . import defaults

# A secret given by the operator must be at least this long (the generated ones are longer).
SECRET_MIN_LENGTH = 16
# Passwords a PostgreSQL of the stack's must never get: those Dify's .env.example files publish for
# its databases, and PostgreSQL's customary ones.
KNOWN_DEFAULT_PASSWORDS: Tuple[str, ...] = (
    "difyai123456", "Difyai123456", "difypassword", "testpassword", "password", "postgres")

# Each fact imports the modules it comes from when it is asked for: the lookup runs in each worker
# process of a run, which compiles what it imports of the collection from source, and the facts
# roles read on most tasks (the project directory, the gateway's port, systemctl's command) need
# none of the Compose model or the upstream references.


def database_passwords() -> Dict[str, str]:
    """The stack's databases and the secret that is each one's password (their data directories are
    compose.DATA_DIRS')."""
    from ..sizing.services import SERVICES

    return {name: record.password for name, record in SERVICES.items() if record.password}


def _generated_secrets() -> Any:
    from . import compose

    return [name for name in compose.SECRET_VARIABLES if name not in compose.GIVEN_ONLY_SECRETS]


def _given_only_secrets() -> Any:
    from . import compose

    return list(compose.GIVEN_ONLY_SECRETS)


def _secret_formats() -> Any:
    from . import versions

    return {name: form for name, form in versions.every_secret().items() if form != "token"}


def _upstream_default_secrets() -> Any:
    """Every default secret published by a supported version's upstream files (the references), as
    values: Compose interpolations (${NAME:-value}) repeat a value that is listed on its own, and
    shorter defaults are refused by their length already."""
    from . import reference_1_13_3, reference_1_16_1

    published = reference_1_13_3.DEFAULT_SECRETS | reference_1_16_1.DEFAULT_SECRETS
    return sorted(s for s in published if "${" not in s and len(s) >= SECRET_MIN_LENGTH)


def _database_markers() -> Any:
    """The file whose presence says a database's data directory holds a cluster, and its password's secret."""
    from . import compose

    return {compose.DATA_DIRS[service] + "/PG_VERSION": secret for service, secret in database_passwords().items()}


def _systemctl_show() -> Any:
    """The command, before the units, whose output difyops.dify.systemd_unit_actions reads."""
    from ..systemd import PROPERTIES

    return ["systemctl", "show"] + [arg for name in PROPERTIES for arg in ("-p", name)] + ["--"]


_FACTS: Dict[str, Callable[[], Any]] = {
    "project_dir": lambda: defaults.DEFAULT_PROJECT_DIR,
    "gateway_port": lambda: defaults.DEFAULT_GATEWAY_PORT,
    "app_uid": lambda: defaults.DIFY_UID,
    "generated_secrets": _generated_secrets,
    "given_only_secrets": _given_only_secrets,
    "secret_formats": _secret_formats,
    "secret_min_length": lambda: SECRET_MIN_LENGTH,
    "upstream_default_secrets": _upstream_default_secrets,
    "known_default_passwords": lambda: list(KNOWN_DEFAULT_PASSWORDS),
    "database_markers": _database_markers,
    "systemctl_show": _systemctl_show,
}
# The facts' names, in the order constants() returns them.
NAMES: Tuple[str, ...] = tuple(_FACTS)


def constants(names: Optional[Iterable[str]] = None) -> Dict[str, Any]:
    """The collection's shared facts by name, as plain data (lists, dicts, strings, integers): every
    one, or only those of NAMES (names it does not know are left out)."""
    wanted = NAMES if names is None else [name for name in names if name in _FACTS]
    return {name: _FACTS[name]() for name in wanted}

# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""postgres_state_reads and postgres_server_state: the commands that read a PostgreSQL server in
one call, and what postgres_tuning has to change on it according to them (documentation in
postgres_state_reads.yml and postgres_server_state.yml)."""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Sequence

from ansible.errors import AnsibleFilterError


def _names(value: Any, what: str) -> Sequence[str]:
    if isinstance(value, (str, bytes, Mapping)) or not hasattr(value, "__iter__"):
        raise AnsibleFilterError("postgres_state_reads takes %s as a list, got %r" % (what, value))
    return [str(item) for item in value]


def postgres_state_reads(psql: Any, databases: Any, user: str, settings: Any, tables: Any,
                         server_sql: str, database_sql: str) -> Dict[str, Dict[str, Any]]:
    """The commands_info commands that read the server and each of DATABASES (see postgres_state_reads.yml)."""
    from ansible_collections.difyops.dify.plugins.plugin_utils.postgres import state_reads

    return state_reads(_names(psql, "the psql command"), _names(databases, "the databases"), str(user),
                       _names(settings, "the settings"), _names(tables, "the hot tables"),
                       str(server_sql), str(database_sql))


def postgres_server_state(outputs: Any, databases: Any, user: str, password: str, conf_name: str,
                          hot_tables: Any, extension: Optional[str] = None) -> Dict[str, Any]:
    """The decisions from commands_info's OUTPUTS (see postgres_server_state.yml)."""
    if not isinstance(outputs, Mapping):
        raise AnsibleFilterError("postgres_server_state takes commands_info's outputs, got %r" % (outputs,))
    if isinstance(databases, (str, bytes)) or not isinstance(databases, (list, tuple)):
        raise AnsibleFilterError("postgres_server_state takes the databases as a list, got %r" % (databases,))
    if not isinstance(hot_tables, Mapping):
        raise AnsibleFilterError("postgres_server_state takes the hot tables as a mapping, got %r" % (hot_tables,))
    from ansible_collections.difyops.dify.plugins.plugin_utils.postgres import StateError, server_state

    try:
        return server_state(outputs, [str(name) for name in databases], str(user), str(password), str(conf_name),
                            hot_tables, str(extension) if extension else None)
    except StateError as exc:
        raise AnsibleFilterError("postgres_server_state: %s" % exc) from exc


class FilterModule:
    def filters(self):
        return {"postgres_state_reads": postgres_state_reads, "postgres_server_state": postgres_server_state}

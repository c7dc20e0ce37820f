# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What postgres_tuning has to change on a PostgreSQL server, decided from one read of it.

The role reads the server with psql (roles/postgres_tuning/files/*-state.sql, one JSON document
per connection) in the same commands_info call as apt and systemd. These functions turn those
documents into the role's decisions, so a rerun that finds everything as planned asks the server
nothing more. Controller-only: the filter difyops.dify.postgres_server_state calls them."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import posixpath
from typing import Any, Dict, List, Mapping, Optional, Sequence

# The attributes postgres_tuning gives the Dify role (LOGIN,NOSUPERUSER,NOCREATEROLE,NOCREATEDB).
ROLE_ATTRIBUTES = {"login": True, "superuser": False, "createrole": False, "createdb": False}


class StateError(ValueError):
    """A read that is not what the state queries return; the message says which."""


def scram_matches(verifier: Any, password: str) -> Optional[bool]:
    """Whether PostgreSQL's stored VERIFIER (pg_authid.rolpassword) is PASSWORD's, as the server
    would check a SCRAM-SHA-256 login: True or False, or None where only the server can tell (a
    password that is not plain ASCII goes through SASLprep first). Anything but a SCRAM-SHA-256
    verifier (none, md5) is False: setting the password again stores one."""
    if not isinstance(verifier, str) or not verifier.startswith("SCRAM-SHA-256$"):
        return False
    if not password.isascii() or not password.isprintable():
        return None
    try:
        iterations_salt, keys = verifier[len("SCRAM-SHA-256$"):].split("$", 1)
        iterations, salt = iterations_salt.split(":", 1)
        stored_key = base64.b64decode(keys.split(":", 1)[0], validate=True)
        salted = hashlib.pbkdf2_hmac("sha256", password.encode("ascii"), base64.b64decode(salt, validate=True),
                                     int(iterations))
    except (ValueError, binascii.Error):
        return False
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    return hmac.compare_digest(hashlib.sha256(client_key).digest(), stored_key)


def state_reads(psql: Sequence[str], databases: Sequence[str], user: str, settings: Sequence[str],
                tables: Sequence[str], server_sql: str, database_sql: str) -> Dict[str, Dict[str, Any]]:
    """The commands_info commands that read the server: PSQL (the argv that runs psql as the
    superuser, without the database) with SERVER_SQL in the maintenance database, named `server`,
    then DATABASE_SQL in each of DATABASES, named `database0`, ...; the hot TABLES are read in the
    first. The names are passed as psql variables, which the queries quote."""
    server_argv = list(psql) + ["-d", "postgres", "-v", "user=" + user, "-v", "databases=" + ",".join(databases),
                                "-v", "settings=" + ",".join(settings)]
    reads = {"server": {"argv": server_argv, "stdin": server_sql}}
    for index, name in enumerate(databases):
        reads["database%d" % index] = {"argv": list(psql) + ["-d", name, "-v", "tables=" + (",".join(tables) if index == 0 else "")],
                                       "stdin": database_sql}
    return reads


def _document(output: Any, name: str) -> Optional[Dict[str, Any]]:
    """The JSON document a psql read printed, or None when psql did not answer (not installed, or
    the server or the database is not there)."""
    if not isinstance(output, Mapping) or "rc" not in output:
        raise StateError("the read has no result for %s" % name)
    if output["rc"] != 0:
        return None
    try:
        found = json.loads(output.get("stdout") or "")
    except ValueError as exc:
        raise StateError("%s did not print a JSON document: %s" % (name, exc)) from None
    if not isinstance(found, dict):
        raise StateError("%s printed %r, not a JSON object" % (name, found))
    return found


def _encoding(name: str) -> str:
    return name.replace("-", "").replace("_", "").upper()


def role_action(role: Optional[Mapping[str, Any]], password: str) -> str:
    """'create' (no such role), 'alter' (an attribute or the password differs, or only the server
    can compare the password) or '' (as planned)."""
    if role is None:
        return "create"
    if any(role.get(key) is not value for key, value in ROLE_ATTRIBUTES.items()):
        return "alter"
    return "" if scram_matches(role.get("password"), password) is True else "alter"


def server_state(outputs: Mapping[str, Any], databases: Sequence[str], user: str, password: str,
                 conf_name: str, hot_tables: Mapping[str, Mapping[str, Any]],
                 extension: Optional[str] = None) -> Dict[str, Any]:
    """The decisions from a read whose psql commands are named `server` (server-state.sql) and
    `database0`, `database1`, ... (database-state.sql, in DATABASES' order, the hot tables read in
    the first). USER and PASSWORD are the Dify role's; CONF_NAME is the settings file in conf.d;
    HOT_TABLES the plan's storage parameters by table; EXTENSION the one every database needs."""
    server = _document(outputs.get("server"), "server")
    if server is None:
        return {"answered": False}
    for key in ("config_file", "hba_file", "data_directory", "major", "pending_restart", "settings", "databases"):
        if key not in server:
            raise StateError("the server's read has no %s" % key)
    conf_file = posixpath.join(posixpath.dirname(server["config_file"]), "conf.d", conf_name)
    reads = [_document(outputs.get("database%d" % index), "database%d" % index) for index in range(len(databases))]
    found_tables: Mapping[str, List[str]] = (reads[0] or {}).get("tables", {}) if reads else {}
    table_changes = {}
    for table, options in sorted(hot_tables.items()):
        wanted = ["%s=%s" % (key, value) for key, value in options.items()]
        if table in found_tables and set(wanted) - set(found_tables[table]):
            table_changes[table] = wanted
    return {
        "answered": True,
        "cluster": {key: server[key] for key in ("config_file", "hba_file", "data_directory", "major")},
        "conf_file": conf_file,
        "pending_restart": list(server["pending_restart"]),
        "overridden": [{"name": name, "source": value["source"]} for name, value in sorted(server["settings"].items())
                       if not value["pending_restart"] and (value["sourcefile"] or "") != conf_file],
        "role": role_action(server.get("role"), password),
        "databases_missing": [name for name in databases if name not in server["databases"]],
        "databases": [name for name in databases
                      if name not in server["databases"]
                      or server["databases"][name]["owner"] != user
                      or _encoding(server["databases"][name]["encoding"]) != "UTF8"],
        "extensions": [name for name, read in zip(databases, reads)
                       if extension and extension not in (read or {}).get("extensions", [])],
        "tables": table_changes,
        "tables_missing": sorted(set(hot_tables) - set(found_tables)),
    }

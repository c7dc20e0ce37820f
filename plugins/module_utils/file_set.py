# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bring a set of directories and small files to a wanted state, one entry at a time.

Shared by the file_set module; no Ansible imports, so tests run it on a real temporary tree.
Each entry is compared first (what differs), then applied. A file is written to a temporary file
beside it, given its mode and owner, optionally validated, then renamed over the old one, so a
reader never sees half a file and a file that fails validation never replaces the old one.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
import tempfile
from dataclasses import dataclass
from typing import Any, Callable, List, Optional, Tuple


class FileSetError(Exception):
    """An entry that cannot be checked or applied; the message names the path."""


@dataclass(frozen=True)
class Entry:
    path: str
    kind: str  # "directory" or "file"
    mode: int
    owner: Optional[int] = None  # None: leave as it is (new entries belong to the running user)
    group: Optional[int] = None
    content: Optional[bytes] = None  # files only
    validate: Optional[str] = None  # files only: a command with %s for the candidate file
    backup: bool = False  # files only: keep the old file beside it before new content replaces it


def check_path(path: str) -> str:
    """The path itself, when it is absolute: a relative one would land wherever the module runs."""
    if not os.path.isabs(path):
        raise FileSetError("%s: not an absolute path" % path)
    return path


def parse_mode(value: Any, path: str) -> int:
    """An octal mode given as a string. A number is refused: YAML reads an unquoted 0640 as the
    octal number 416, and 416 read as octal digits (0o416) would make the file world-writable."""
    if isinstance(value, int) and not isinstance(value, bool):
        raise FileSetError("%s: mode %d is a number, not a quoted string: YAML reads an unquoted 0%o as the number %d; "
                           "quote it, such as mode: '0%o'" % (path, value, value, value, value))
    text = value if isinstance(value, str) else ""
    if not text.isdigit() or any(digit > "7" for digit in text) or len(text) > 4:
        raise FileSetError("%s: mode %r is not an octal mode such as '0644'" % (path, value))
    return int(text, 8)


def _resolve(value: Optional[str], path: str, what: str, lookup: Callable[[str], int]) -> Optional[int]:
    if value is None or str(value) == "":
        return None
    if str(value).isdigit():
        return int(value)
    try:
        return lookup(str(value))
    except KeyError:
        raise FileSetError("%s: %s %r is not a %s on this host" % (path, what, value, "user" if what == "owner" else what)) from None


def resolve_user(value: Optional[str], path: str) -> Optional[int]:
    return _resolve(value, path, "owner", lambda name: pwd.getpwnam(name).pw_uid)


def resolve_group(value: Optional[str], path: str) -> Optional[int]:
    return _resolve(value, path, "group", lambda name: grp.getgrnam(name).gr_gid)


def _read(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


def differences(entry: Entry) -> List[str]:
    """What differs between the entry and the host: 'missing', 'type', 'content', 'mode', 'owner', 'group'."""
    try:
        info = os.lstat(entry.path)
    except FileNotFoundError:
        return ["missing"]
    except OSError as exc:
        raise FileSetError("%s cannot be checked: %s" % (entry.path, exc)) from None
    wanted_type = stat.S_ISDIR if entry.kind == "directory" else stat.S_ISREG
    if not wanted_type(info.st_mode):
        return ["type"]
    found: List[str] = []
    if entry.kind == "file":
        try:
            if _read(entry.path) != entry.content:
                found.append("content")
        except OSError as exc:
            raise FileSetError("%s cannot be read: %s" % (entry.path, exc)) from None
    if stat.S_IMODE(info.st_mode) != entry.mode:
        found.append("mode")
    if entry.owner is not None and info.st_uid != entry.owner:
        found.append("owner")
    if entry.group is not None and info.st_gid != entry.group:
        found.append("group")
    return found


def ownership(entry: Entry, old: Optional[os.stat_result]) -> Tuple[int, int]:
    """The uid and gid a file's replacement gets (-1: the writer's own): the entry's where given,
    else those of the file it replaces, so an owner or group left out stays as it was."""
    uid = entry.owner if entry.owner is not None else (old.st_uid if old is not None else -1)
    gid = entry.group if entry.group is not None else (old.st_gid if old is not None else -1)
    return uid, gid


def _set_attributes(path: str, entry: Entry, owner: Optional[Tuple[int, int]] = None) -> None:
    uid, gid = owner if owner is not None else ownership(entry, None)
    if (uid, gid) != (-1, -1):
        os.chown(path, uid, gid)
    os.chmod(path, entry.mode)


def _write(entry: Entry, run_validate: Callable[[str, str], Optional[str]],
           keep: Optional[Callable[[str], None]] = None) -> None:
    directory = os.path.dirname(entry.path) or "."
    try:
        old: Optional[os.stat_result] = os.lstat(entry.path)
    except FileNotFoundError:
        old = None
    fd, candidate = tempfile.mkstemp(dir=directory, prefix=".%s." % os.path.basename(entry.path))
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(entry.content or b"")
            handle.flush()
            os.fsync(handle.fileno())
        _set_attributes(candidate, entry, ownership(entry, old))
        if entry.validate:
            problem = run_validate(entry.validate, candidate)
            if problem is not None:
                raise FileSetError("%s failed validation, so it was not replaced: %s" % (entry.path, problem))
        if entry.backup and old is not None and keep is not None:
            keep(entry.path)
        os.replace(candidate, entry.path)
    finally:
        if os.path.exists(candidate):
            os.unlink(candidate)


def apply(entry: Entry, found: List[str], run_validate: Callable[[str, str], Optional[str]],
          keep: Optional[Callable[[str], None]] = None) -> None:
    """Make the host match the entry, given what differences() found. KEEP is called with the path
    of a file with backup set, once its new content passed validation and before it replaces the
    file (the module copies the old file aside there)."""
    if not found:
        return
    if "type" in found:
        raise FileSetError("%s exists but is not a %s; remove it or choose another path" % (entry.path, entry.kind))
    try:
        if entry.kind == "directory":
            if "missing" in found:
                os.makedirs(entry.path, exist_ok=True)
            _set_attributes(entry.path, entry)
        elif "missing" in found or "content" in found:
            if not os.path.isdir(os.path.dirname(entry.path) or "."):
                raise FileSetError("%s: its directory does not exist; list it under directories first" % entry.path)
            _write(entry, run_validate, keep)
        else:
            _set_attributes(entry.path, entry)
    except OSError as exc:
        raise FileSetError("%s cannot be written: %s" % (entry.path, exc)) from None

# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Keep a deployment's secrets in one file on one host, chosen once and never generated over.

Shared by the secrets_keeper module; no Ansible imports, so tests run it on real files and real
concurrent processes. Everything happens under an exclusive lock on a file beside the keeper
(``flock``), so two controllers that run at once read, decide and write one after the other and
end with one set. The keeper is written to a temporary file beside it (mode 0600) and renamed over
the old one, so a reader never sees half of it.

The decision is a pure function (:func:`decide`): the kept values, what the fleet has in use, and
what the operator gave or moved in, to the values to keep, or a refusal that names what disagrees.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import secrets
import string
import tempfile
import time
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence

ALPHABET = string.ascii_letters + string.digits
# Formats of generated values (stack/versions.py names the format of each secret): token, letters
# and digits of the requested length; base64url32, 32 random bytes as unpadded base64url (43
# characters), as Dify's agent backend requires of its server key.
FORMATS = ("token", "base64url32")


class KeeperError(Exception):
    """A keeper that cannot be read, locked or written, or a choice that would lose secrets."""


@dataclass(frozen=True)
class Request:
    """What a run asks of the keeper; every value is a secret and is never put in a message."""

    generate: Sequence[str]
    length: int = 48
    given: Mapping[str, str] = field(default_factory=dict)
    in_use: Mapping[str, str] = field(default_factory=dict)
    in_use_at: Sequence[str] = ()
    seed: Mapping[str, str] = field(default_factory=dict)
    seed_from: str = ""
    adopt: bool = False
    where: str = "the keeper"
    # Format of each generated name other than a token (FORMATS).
    formats: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    values: Dict[str, str]
    generated: List[str]
    adopted: List[str]
    moved: List[str]


def token(length: int) -> str:
    """A new secret of letters and digits from the system's CSPRNG."""
    return "".join(secrets.choice(ALPHABET) for _position in range(length))


def new_value(form: str, length: int, new_token=token) -> str:
    """A new secret in the given format (FORMATS)."""
    if form == "base64url32":
        return secrets.token_urlsafe(32)
    if form != "token":
        raise KeeperError("unknown secret format %s (known: %s)" % (form, ", ".join(FORMATS)))
    return new_token(length)


def _names(names: Sequence[str]) -> str:
    return ", ".join(sorted(names))


def _disagreeing(kept: Mapping[str, str], other: Mapping[str, str], given: Mapping[str, str]) -> List[str]:
    return sorted(n for n in other if n in kept and kept[n] != other[n] and n not in given)


def decide(kept: Optional[Mapping[str, str]], request: Request, new_token=token) -> Decision:
    """The secrets to keep: kept (or moved in) > in use when adopted > given > generated once.

    Refuses, naming the secrets but never their values, when the keeper is missing or disagrees
    with what the fleet has in use (unless adopted), or when a move would overwrite a keeper that
    already holds different values.
    """
    where_used = ", ".join(request.in_use_at) or "the fleet"
    base: Dict[str, str] = dict(kept or {})
    moved: List[str] = []
    if request.seed:
        clash = _disagreeing(base, request.seed, {})
        if clash:
            raise KeeperError(
                "%s already holds other values of %s than %s, which dify_secrets_move_from names; nothing "
                "was changed. Keep one of them: remove dify_secrets_move_from to keep these, or move this "
                "file away to take %s's." % (request.where, _names(clash), request.seed_from, request.seed_from))
        moved = sorted(n for n in request.seed if n not in base)
        base.update({n: request.seed[n] for n in moved})
    if not base and request.in_use and not request.adopt:
        raise KeeperError(
            "%s holds no secrets, but %s are in use (%s); generating new ones would make the stored "
            "credentials unreadable and lock Dify out of its databases. Nothing was changed. Restore the "
            "keeper file from a backup, name the host that keeps it in dify_secrets_host, or set "
            "dify_secrets_adopt: true once to keep the values in use."
            % (request.where, _names(request.in_use), where_used))
    clash = _disagreeing(base, request.in_use, request.given)
    if clash and not request.adopt:
        raise KeeperError(
            "%s holds other values of %s than the ones in use (%s); writing them would rotate secrets the "
            "deployment depends on. Nothing was changed. Restore the right keeper file, give the values in "
            "dify_secrets_given, or set dify_secrets_adopt: true once to keep the values in use."
            % (request.where, _names(clash), where_used))
    adopted = sorted(n for n in request.in_use if base.get(n) != request.in_use[n]) if request.adopt else []
    base.update({n: request.in_use[n] for n in adopted})
    base.update(request.given)
    generated = sorted(n for n in request.generate if n not in base)
    base.update({n: new_value(request.formats.get(n, "token"), request.length, new_token) for n in generated})
    return Decision(values=base, generated=generated, adopted=adopted, moved=moved)


def parse(content: bytes, path: str) -> Dict[str, str]:
    """The kept file's values: one JSON object of strings."""
    try:
        values = json.loads(content.decode("utf-8"))
    except ValueError as exc:
        raise KeeperError("%s is not the keeper's JSON (%s); restore it from a backup" % (path, exc))
    if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
        raise KeeperError("%s must hold one JSON object of strings; restore it from a backup" % path)
    return values


def render(values: Mapping[str, str]) -> bytes:
    return (json.dumps(dict(values), indent=4, sort_keys=True, separators=(",", ": ")) + "\n").encode("utf-8")


def read(path: str) -> Optional[Dict[str, str]]:
    try:
        with open(path, "rb") as handle:
            return parse(handle.read(), path)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return None
        raise KeeperError("cannot read %s: %s" % (path, exc.strerror))


def needs_write(path: str, values: Mapping[str, str]) -> bool:
    """Whether the file lacks these exact values or is not root's 0600 file."""
    try:
        info = os.stat(path)
        with open(path, "rb") as handle:
            same = handle.read() == render(values)
    except OSError:
        return True
    return not (same and info.st_mode & 0o7777 == 0o600 and info.st_uid == os.geteuid())


def write(path: str, values: Mapping[str, str]) -> None:
    """Write atomically, mode 0600: a temporary file beside the keeper, synced, renamed over it."""
    directory = os.path.dirname(path)
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=".%s." % os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o600)
            handle.write(render(values))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except OSError as exc:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise KeeperError("cannot write %s: %s" % (path, exc.strerror))
    directory_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(directory_fd)
    finally:
        os.close(directory_fd)


class Lock:
    """An exclusive flock on ``<path>.lock``, waited for up to ``timeout`` seconds."""

    def __init__(self, path: str, timeout: float) -> None:
        self.path = path + ".lock"
        self.timeout = timeout
        self.fd = -1

    def __enter__(self) -> "Lock":
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return self
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES) or time.monotonic() >= deadline:
                    os.close(self.fd)
                    raise KeeperError("another run holds %s (waited %ss); let it finish, then run again"
                                      % (self.path, self.timeout))
                time.sleep(0.1)

    def __exit__(self, *_exc: object) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def ensure_directory(path: str) -> bool:
    """Create the keeper's directory, root's and private, when it is missing."""
    directory = os.path.dirname(path)
    if os.path.isdir(directory):
        return False
    try:
        os.makedirs(directory, mode=0o700)
    except FileExistsError:  # another run made it first
        return False
    except OSError as exc:
        raise KeeperError("cannot create %s: %s" % (directory, exc.strerror))
    os.chmod(directory, 0o700)
    return True


def keep(path: str, request: Request, check_mode: bool = False, lock_timeout: float = 60.0):
    """Decide and, unless checking, write under the lock; returns (decision, changed, created)."""
    if not os.path.isabs(path):
        raise KeeperError("dify_secrets_file must be an absolute path (got %r)" % path)
    if check_mode:
        kept = read(path)
        decision = decide(kept, request)
        return decision, needs_write(path, decision.values), kept is None
    ensure_directory(path)
    with Lock(path, lock_timeout):
        kept = read(path)
        decision = decide(kept, request)
        changed = needs_write(path, decision.values)
        if changed:
            write(path, decision.values)
    return decision, changed, kept is None

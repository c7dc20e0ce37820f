# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run a call that may block forever (a stale NFS mount, a wedged GPU driver) with a deadline.

The call runs in a daemon thread. When the deadline passes the caller gets a TimeoutError and moves
on; the thread is abandoned (a thread stuck in the kernel cannot be stopped), and because it is a
daemon thread it does not keep the module's process alive when the module exits.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Dict, List, Tuple


class CallTimeout(Exception):
    """The bounded call did not return before its deadline."""

    def __init__(self, what: str, seconds: float) -> None:
        super().__init__("%s did not return within %s s" % (what, seconds))
        self.what = what
        self.seconds = seconds


def bounded(what: str, seconds: float, func: Callable[..., Any], *args: Any) -> Any:
    """Return func(*args), re-raise its exception, or raise CallTimeout after `seconds`."""
    outcome: Dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = func(*args)
        except BaseException as exc:  # pylint: disable=broad-except
            outcome["error"] = exc

    worker = threading.Thread(target=target, name="bounded:%s" % what, daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise CallTimeout(what, seconds)
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


Runner = Callable[[List[str]], Tuple[int, str, str]]


def run_bounded(argv: List[str], seconds: float, runner: Runner) -> Tuple[int, str, str]:
    """Run a command without a shell through `runner` (a module's run_command) under coreutils'
    timeout; (rc, stdout, stderr), or CallTimeout once `seconds` pass (the command is sent TERM,
    then KILL two seconds later; the KILL goes to timeout's whole process group, itself included,
    hence -9). A command that itself exits 124 reads as timed out."""
    rc, out, err = runner(["timeout", "--kill-after=2", "%g" % seconds] + list(argv))
    if rc in (124, 137, -9):
        raise CallTimeout(argv[0], seconds)
    return rc, out, err

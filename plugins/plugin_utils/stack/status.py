# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What became of one host's stack, as dify_stack reports it (pure Python, no Ansible imports).

dify_stack renders the host's project, checks Docker, looks for the images, pulls or loads the
missing ones and runs ``docker compose up``; any of these may stop it. ``status`` turns what the
role registered into the published status (``state``, ``step``, ``reason``) and into the failure
of a stack that was asked to start and did not: which step failed, the reason and the fix.

The steps, in the order the role runs them (the first that failed is named):

- ``docker``: no usable Docker engine with Compose v2 (``docker compose ls`` failed);
- ``images``: images missing and ``dify_stack_pull`` is ``never``;
- ``pull``: images missing and the pull failed;
- ``up``: ``docker compose up`` (or ``create``) failed, its health checks did not pass, or it
  did not run.

A host without containers (``empty``), a stack only rendered (``rendered`` asked) and a stack
that started have no step. The role decides two things itself: whether ``docker compose up``
ran and succeeded (``started``: Ansible's ``is succeeded`` test on a registered result) and
whether a check run only reports a missing Docker - a bare host's runtime is not installed yet
in check mode, so nothing could start: that exception belongs to the run, not to the stack.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence

STATES = ("started", "created", "rendered")
PULL_POLICIES = ("missing", "never")
STEPS = ("docker", "images", "pull", "up")

# What each step is called in the failure ("... and is not: <label> failed - <reason>. <fix>").
STEP_LABELS = {
    "docker": "the Docker check (docker compose ls)",
    "images": "the image check",
    "pull": "the image pull",
}
UP_LABELS = {"started": "docker compose up and the health checks", "created": "docker compose create"}

FIXES = {
    "docker": "Install Docker Engine with the Compose v2 plugin and start it (the difyops.dify.runtime"
              " playbook: role difyops.dify.docker_engine with docker_engine_start true), or set"
              " dify_stack_state to rendered to render and validate only.",
    "images": "Give the images' archives in dify_stack_image_archives (or dify_stack_image_archives_on_host), load"
              " them onto the host (docker load), set dify_stack_images to images the host has, or set"
              " dify_stack_pull to missing so that they are pulled (docs/airgapped.md).",
    "pull": "Let the host reach the registry (or a mirror: Docker's registry-mirrors, dify_stack_image_registry"
            " or dify_stack_images), or give the images' archives in dify_stack_image_archives and set"
            " dify_stack_pull to never (docs/airgapped.md).",
}

NO_SERVICES = "no service of the plan runs in a container on this host"
ONLY_RENDERED = "dify_stack_state is rendered"
UP_DID_NOT_RUN = "docker compose up did not run"


class StatusError(ValueError):
    """An input the status cannot be decided from; the message names it."""


def _text(value: Any) -> str:
    """A value as Jinja's ``~`` joins it."""
    return "%s" % (value,)


def _names(value: Any, what: str) -> Sequence[Any]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise StatusError("%s must be a list, got %r" % (what, value))
    return value


def step_of(services: Sequence[Any], state: str, started: bool, docker_rc: Any, missing: Sequence[Any],
            pull: str, pull_error: Optional[Any]) -> str:
    """The step that stopped the stack: '' (nothing did), docker, images, pull or up."""
    if not services or state == "rendered" or started:
        return ""
    if docker_rc != 0:
        return "docker"
    if missing and pull == "never":
        return "images"
    if pull_error is not None:
        return "pull"
    return "up"


def reason_of(step: str, services: Sequence[Any], state: str, docker_error: Any, missing: Sequence[Any],
              pull_error: Optional[Any], load_error: Optional[Any], up_error: Optional[Any], health_timeout: Any) -> str:
    """Why the stack is not what was asked ('' for a started stack), as the status and the failure say it."""
    if not services:
        reason = NO_SERVICES
    elif state == "rendered":
        reason = ONLY_RENDERED
    elif step == "docker":
        reason = "no usable Docker engine with Compose v2 on the host (%s)" % _text(docker_error).strip()
    elif step in ("images", "pull"):
        loading = "" if load_error is None else "; loading the image archives failed: " + _text(load_error)
        images = ", ".join(_text(image) for image in missing)
        if step == "images":
            reason = "images missing and dify_stack_pull is never: " + images + loading
        else:
            reason = "images missing and no registry answered (" + _text(pull_error) + "): " + images + loading
    elif step == "up":
        within = (" healthy within " + _text(health_timeout) + " s") if state == "started" else ""
        reason = "the containers did not come up" + within + " (" + _text(UP_DID_NOT_RUN if up_error is None else up_error) + ")"
    else:
        reason = ""
    return reason.strip()


def fix_of(step: str, state: str, health_timeout: Any, project_dir: Any) -> str:
    """What the operator does about a failed step ('' for none)."""
    if step == "up":
        raise_timeout = ("; raise dify_stack_health_timeout (now " + _text(health_timeout) + " s) if the services were still starting"
                         if state == "started" else "")
        return "Read docker compose --project-directory " + _text(project_dir) + " ps --all and logs on the host" + raise_timeout + "."
    return FIXES.get(step, "")


def label_of(step: str, state: str) -> str:
    """The failed step's name in the failure ('' for none)."""
    if step == "up":
        return UP_LABELS["started"] if state == "started" else UP_LABELS["created"]
    return STEP_LABELS.get(step, "")


def status(services: Sequence[Any], *, state: str, started: bool, docker_rc: Any, docker_error: Any = "",
           missing: Sequence[Any] = (), pull: str = "missing", pull_error: Optional[Any] = None,
           load_error: Optional[Any] = None, up_error: Optional[Any] = None, health_timeout: Any = 600,
           project_dir: Any = "/opt/dify", host: Any = "") -> Dict[str, Any]:
    """The status of one host's stack and whether the host fails.

    ``services``: the services of the host's project; ``state``: dify_stack_state; ``started``:
    whether ``docker compose up`` ran and succeeded; ``docker_rc`` and ``docker_error``: the return
    code of the Docker check and what it said (its stderr, else its msg); ``missing``: the images
    the host lacks; ``pull``: dify_stack_pull; ``pull_error``, ``load_error``, ``up_error``: why the
    pull, the loading of the image archives and ``docker compose up`` failed, None where they did
    not (or did not run); ``health_timeout``, ``project_dir``: dify_stack_health_timeout and
    dify_stack_project_dir, named in the fix; ``host``: the inventory name, named in the message.

    Returns ``state`` (empty, rendered, or the asked state once started), ``step`` and ``reason``
    (see the module), ``validated`` (schema, variables, compose_config), ``fail`` (a stack that was
    asked to be started or created and is not), and for the failure ``failed_step`` (the step's
    name), ``fix`` and ``message`` ('' where nothing failed). The role skips the failure of the
    ``docker`` step in a check run itself (see the module).
    """
    services = _names(services, "services")
    missing = _names(missing, "the missing images")
    if state not in STATES:
        raise StatusError("dify_stack_state must be one of %s, got %r" % (", ".join(STATES), state))
    if pull not in PULL_POLICIES:
        raise StatusError("dify_stack_pull must be one of %s, got %r" % (", ".join(PULL_POLICIES), pull))
    if not isinstance(started, bool):
        raise StatusError("started must be a boolean, got %r" % (started,))
    step = step_of(services, state, started, docker_rc, missing, pull, pull_error)
    reached = "empty" if not services else state if started else "rendered"
    fail = bool(services) and state != "rendered" and reached != state
    failed_step = label_of(step, state)
    fix = fix_of(step, state, health_timeout, project_dir)
    reason = reason_of(step, services, state, docker_error, missing, pull_error, load_error, up_error, health_timeout)
    message = ("host %s: the stack was asked to be %s (dify_stack_state) and is not: %s failed - %s. %s"
               % (_text(host), state, failed_step, reason, fix)) if fail else ""
    return {
        "state": reached,
        "step": step,
        "reason": reason,
        "validated": {"schema": bool(services), "variables": bool(services),
                      "compose_config": bool(services) and docker_rc == 0},
        "fail": fail,
        "failed_step": failed_step,
        "fix": fix,
        "message": message,
    }

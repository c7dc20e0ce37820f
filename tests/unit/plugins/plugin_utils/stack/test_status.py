# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What became of a host's stack (issue 22, "decisions in Python"): status.status decides the
state, the step that stopped a start, the reason and the failure that dify_stack's report.yml
publishes and raises. The texts are the operators' messages, compared whole: they are the ones the
role's Jinja printed before the decisions moved here."""

from __future__ import annotations

import pytest

from ansible.errors import AnsibleFilterError
from ansible_collections.difyops.dify.plugins.filter.compose import FilterModule, stack_status
from ansible_collections.difyops.dify.plugins.plugin_utils.stack.status import StatusError, status

SERVICES = ["api", "worker"]
DOCKER_FIX = ("Install Docker Engine with the Compose v2 plugin and start it (the difyops.dify.runtime playbook: role "
              "difyops.dify.docker_engine with docker_engine_start true), or set dify_stack_state to rendered to render "
              "and validate only.")
IMAGES_FIX = ("Give the images' archives in dify_stack_image_archives (or dify_stack_image_archives_on_host), load them "
              "onto the host (docker load), set dify_stack_images to images the host has, or set dify_stack_pull to "
              "missing so that they are pulled (docs/airgapped.md).")
PULL_FIX = ("Let the host reach the registry (or a mirror: Docker's registry-mirrors, dify_stack_image_registry or "
            "dify_stack_images), or give the images' archives in dify_stack_image_archives and set dify_stack_pull to "
            "never (docs/airgapped.md).")


def run(services=None, **given):
    """The status of a host that was asked to start and whose Docker answered, with GIVEN changed."""
    values = dict(state="started", started=False, docker_rc=0, docker_error="", missing=[], pull="missing",
                  pull_error=None, load_error=None, up_error=None, health_timeout=600, project_dir="/opt/dify", host="app1")
    values.update(given)
    return status(SERVICES if services is None else services, **values)


def assert_no_failure(result):
    assert result["fail"] is False
    assert (result["failed_step"], result["fix"], result["message"]) == ("", "", "")


# --------------------------------------------------------------------------- nothing stopped the stack

def test_a_host_without_containers_is_empty_whatever_else_happened():
    result = run([], docker_rc=1, docker_error="no docker", missing=["a:1"], pull="never")
    assert (result["state"], result["step"]) == ("empty", "")
    assert result["reason"] == "no service of the plan runs in a container on this host"
    assert result["validated"] == {"schema": False, "variables": False, "compose_config": False}
    assert_no_failure(result)


def test_a_stack_asked_to_be_rendered_is_rendered_even_without_docker():
    result = run(state="rendered", docker_rc=1, docker_error="no docker")
    assert (result["state"], result["step"], result["reason"]) == ("rendered", "", "dify_stack_state is rendered")
    assert result["validated"] == {"schema": True, "variables": True, "compose_config": False}
    assert_no_failure(result)


@pytest.mark.parametrize("state", ["started", "created"])
def test_a_stack_that_came_up_is_in_the_state_asked_for(state):
    result = run(state=state, started=True)
    assert (result["state"], result["step"], result["reason"]) == (state, "", "")
    assert result["validated"] == {"schema": True, "variables": True, "compose_config": True}
    assert_no_failure(result)


def test_a_stack_that_came_up_ignores_errors_noted_on_the_way():
    # A failed load of the archives is not a failure once a pull brought the images.
    result = run(started=True, missing=["a:1"], load_error="bad archive")
    assert (result["state"], result["step"], result["reason"], result["fail"]) == ("started", "", "", False)


# --------------------------------------------------------------------------- Docker

def test_no_docker_names_its_stderr_stripped():
    result = run(docker_rc=1, docker_error="  Cannot connect to the Docker daemon\n")
    assert (result["state"], result["step"]) == ("rendered", "docker")
    assert result["reason"] == "no usable Docker engine with Compose v2 on the host (Cannot connect to the Docker daemon)"
    assert result["validated"]["compose_config"] is False
    assert result["fail"] is True
    assert result["failed_step"] == "the Docker check (docker compose ls)"
    assert result["fix"] == DOCKER_FIX
    assert result["message"] == (
        "host app1: the stack was asked to be started (dify_stack_state) and is not: the Docker check (docker compose ls)"
        " failed - no usable Docker engine with Compose v2 on the host (Cannot connect to the Docker daemon). " + DOCKER_FIX)


def test_no_docker_binary_names_the_modules_msg():
    result = run(state="created", docker_rc=127, docker_error="[Errno 2] No such file or directory: b'docker'")
    assert result["reason"] == "no usable Docker engine with Compose v2 on the host ([Errno 2] No such file or directory: b'docker')"
    assert result["message"] == (
        "host app1: the stack was asked to be created (dify_stack_state) and is not: the Docker check (docker compose ls)"
        " failed - no usable Docker engine with Compose v2 on the host ([Errno 2] No such file or directory: b'docker'). "
        + DOCKER_FIX)


def test_a_docker_check_that_said_nothing_leaves_the_parentheses_empty():
    assert run(docker_rc=1)["reason"] == "no usable Docker engine with Compose v2 on the host ()"


def test_docker_comes_before_every_later_step():
    result = run(docker_rc=1, docker_error="x", missing=["a:1"], pull="never", pull_error="y", up_error="z")
    assert result["step"] == "docker"


# --------------------------------------------------------------------------- images

def test_images_missing_with_pull_never():
    result = run(missing=["localhost/none:1", "b:2"], pull="never")
    assert (result["state"], result["step"]) == ("rendered", "images")
    assert result["reason"] == "images missing and dify_stack_pull is never: localhost/none:1, b:2"
    assert result["failed_step"] == "the image check"
    assert result["fix"] == IMAGES_FIX
    assert result["message"] == (
        "host app1: the stack was asked to be started (dify_stack_state) and is not: the image check failed - images"
        " missing and dify_stack_pull is never: localhost/none:1, b:2. " + IMAGES_FIX)


def test_images_missing_with_pull_never_after_a_failed_load():
    result = run(missing=["localhost/none:1"], pull="never", load_error="/opt/a.tar: open failed\n")
    assert result["reason"] == ("images missing and dify_stack_pull is never: localhost/none:1; loading the image archives"
                                " failed: /opt/a.tar: open failed")
    assert result["message"] == (
        "host app1: the stack was asked to be started (dify_stack_state) and is not: the image check failed - images"
        " missing and dify_stack_pull is never: localhost/none:1; loading the image archives failed: /opt/a.tar: open"
        " failed. " + IMAGES_FIX)


def test_images_missing_with_pull_never_come_before_a_pull_error():
    assert run(missing=["a:1"], pull="never", pull_error="x")["step"] == "images"


# --------------------------------------------------------------------------- pull

def test_a_failed_pull():
    result = run(missing=["a:1", "b:2"], pull_error="dial tcp: i/o timeout")
    assert (result["state"], result["step"]) == ("rendered", "pull")
    assert result["reason"] == "images missing and no registry answered (dial tcp: i/o timeout): a:1, b:2"
    assert result["failed_step"] == "the image pull"
    assert result["fix"] == PULL_FIX
    assert result["message"] == (
        "host app1: the stack was asked to be started (dify_stack_state) and is not: the image pull failed - images"
        " missing and no registry answered (dial tcp: i/o timeout): a:1, b:2. " + PULL_FIX)


def test_a_failed_pull_after_a_failed_load():
    result = run(missing=["a:1"], pull_error="dial tcp: i/o timeout", load_error="bad archive")
    assert result["reason"] == ("images missing and no registry answered (dial tcp: i/o timeout): a:1; loading the image"
                                " archives failed: bad archive")


# --------------------------------------------------------------------------- up

def test_containers_not_healthy_in_time():
    result = run(up_error="container dify-api-1 is unhealthy", health_timeout=900, project_dir="/srv/dify")
    assert (result["state"], result["step"]) == ("rendered", "up")
    assert result["reason"] == "the containers did not come up healthy within 900 s (container dify-api-1 is unhealthy)"
    assert result["failed_step"] == "docker compose up and the health checks"
    assert result["fix"] == ("Read docker compose --project-directory /srv/dify ps --all and logs on the host; raise"
                             " dify_stack_health_timeout (now 900 s) if the services were still starting.")
    assert result["message"] == (
        "host app1: the stack was asked to be started (dify_stack_state) and is not: docker compose up and the health"
        " checks failed - the containers did not come up healthy within 900 s (container dify-api-1 is unhealthy)."
        " Read docker compose --project-directory /srv/dify ps --all and logs on the host; raise"
        " dify_stack_health_timeout (now 900 s) if the services were still starting.")


def test_containers_not_created():
    result = run(state="created", up_error="no such network")
    assert (result["state"], result["step"]) == ("rendered", "up")
    assert result["reason"] == "the containers did not come up (no such network)"
    assert result["failed_step"] == "docker compose create"
    assert result["fix"] == "Read docker compose --project-directory /opt/dify ps --all and logs on the host."
    assert result["message"] == (
        "host app1: the stack was asked to be created (dify_stack_state) and is not: docker compose create failed - the"
        " containers did not come up (no such network). Read docker compose --project-directory /opt/dify ps --all and"
        " logs on the host.")


def test_compose_up_that_did_not_run_says_so():
    # Images missing, pull allowed, no pull error noted: nothing started the containers.
    result = run(missing=["a:1"])
    assert result["step"] == "up"
    assert result["reason"] == "the containers did not come up healthy within 600 s (docker compose up did not run)"
    assert run(state="created")["reason"] == "the containers did not come up (docker compose up did not run)"


# --------------------------------------------------------------------------- refusals and the filter

@pytest.mark.parametrize("given, named", [
    ({"state": "absent"}, "dify_stack_state must be one of started, created, rendered, got 'absent'"),
    ({"pull": "always"}, "dify_stack_pull must be one of missing, never, got 'always'"),
    ({"started": "yes"}, "started must be a boolean, got 'yes'"),
    ({"missing": "a:1"}, "the missing images must be a list, got 'a:1'"),
])
def test_inputs_the_status_cannot_be_decided_from_are_refused(given, named):
    with pytest.raises(StatusError) as refused:
        run(**given)
    assert str(refused.value) == named


def test_services_must_be_a_list():
    with pytest.raises(StatusError, match="services must be a list"):
        status("api", state="started", started=False, docker_rc=0)


def test_the_filter_is_registered_and_returns_the_status():
    assert FilterModule().filters()["stack_status"] is stack_status
    given = dict(state="started", docker_rc=0, missing=["a:1"], pull="missing", pull_error="timeout",
                 load_error=None, up_error=None, health_timeout=600, project_dir="/opt/dify", host="app1")
    assert stack_status(SERVICES, started=False, **given) == status(SERVICES, started=False, **given)


@pytest.mark.parametrize("word, started", [("true", True), ("False", False), ("yes", True), (0, False)])
def test_the_filter_reads_started_as_ansible_reads_booleans(word, started):
    result = stack_status(SERVICES, "started", word, docker_rc=0)
    assert result["state"] == ("started" if started else "rendered")


def test_the_filter_defaults_are_the_roles():
    # docker_rc defaults to 1, as report.yml's `_dify_stack_docker.rc | default(1)`.
    assert stack_status(SERVICES, "started", False)["step"] == "docker"
    assert stack_status(SERVICES, "started", False, docker_rc=0)["reason"] == (
        "the containers did not come up healthy within 600 s (docker compose up did not run)")


@pytest.mark.parametrize("given, named", [
    ({"started": "maybe"}, "stack_status: started must be a boolean, got 'maybe'"),
    ({"started": False, "state": "stopped"}, "stack_status: dify_stack_state must be one of started, created, rendered, got 'stopped'"),
    ({"started": False, "pull": "sometimes"}, "stack_status: dify_stack_pull must be one of missing, never, got 'sometimes'"),
])
def test_the_filter_refuses_with_an_ansible_filter_error(given, named):
    values = dict(state="started", docker_rc=0)
    values.update(given)
    with pytest.raises(AnsibleFilterError) as refused:
        stack_status(SERVICES, **values)
    assert named in str(refused.value)

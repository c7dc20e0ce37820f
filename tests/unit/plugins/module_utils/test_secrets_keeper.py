# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The secrets keeper: kept values win, values in use are never generated over, a move is
explicit, and runs at once (real processes on a real file) end with one set."""

from __future__ import annotations

import json
import multiprocessing
import os
import stat

import pytest

from ansible_collections.difyops.dify.plugins.module_utils import secrets_keeper as sk
from ansible_collections.difyops.dify.plugins.module_utils.secrets_keeper import KeeperError, Request, decide, keep

NAMES = ["SECRET_KEY", "DB_PASSWORD", "REDIS_PASSWORD"]
KEPT = {"SECRET_KEY": "k" * 48, "DB_PASSWORD": "d" * 48, "REDIS_PASSWORD": "r" * 48}


def counter():
    state = {"n": 0}

    def new_token(length: int) -> str:
        state["n"] += 1
        return ("%d" % state["n"]) * length

    return new_token


def test_a_fresh_deployment_generates_every_missing_name_once():
    decision = decide(None, Request(generate=NAMES, length=32), new_token=counter())
    assert decision.generated == sorted(NAMES)
    assert len(set(decision.values.values())) == 3
    assert all(len(v) == 32 for v in decision.values.values())


def test_kept_values_are_never_replaced_and_only_new_names_are_generated():
    kept = {"SECRET_KEY": KEPT["SECRET_KEY"]}
    decision = decide(kept, Request(generate=NAMES), new_token=counter())
    assert decision.values["SECRET_KEY"] == KEPT["SECRET_KEY"]
    assert decision.generated == ["DB_PASSWORD", "REDIS_PASSWORD"]


def test_a_given_value_replaces_the_kept_one_even_when_another_is_in_use():
    decision = decide(KEPT, Request(generate=NAMES, given={"SECRET_KEY": "g" * 40},
                                    in_use={"SECRET_KEY": KEPT["SECRET_KEY"]}))
    assert decision.values["SECRET_KEY"] == "g" * 40


def test_a_missing_keeper_with_secrets_in_use_is_refused_naming_names_and_places_but_no_value():
    request = Request(generate=NAMES, in_use={"SECRET_KEY": "s3cr3t-in-use-000000000000"},
                      in_use_at=["app1:/opt/dify/.env"], where="the keeper data1:/etc/difyops/dify-secrets.json")
    with pytest.raises(KeeperError) as refused:
        decide(None, request)
    message = str(refused.value)
    assert "SECRET_KEY" in message and "app1:/opt/dify/.env" in message and "data1:/etc/difyops" in message
    assert "dify_secrets_adopt" in message and "s3cr3t" not in message


def test_a_keeper_that_disagrees_with_the_values_in_use_is_refused():
    with pytest.raises(KeeperError, match="other values of DB_PASSWORD, SECRET_KEY than the ones in use"):
        decide(KEPT, Request(generate=NAMES, in_use={"SECRET_KEY": "x" * 48, "DB_PASSWORD": "y" * 48,
                                                     "REDIS_PASSWORD": KEPT["REDIS_PASSWORD"]}))


def test_adopting_takes_the_values_in_use_and_generates_only_what_nothing_uses():
    in_use = {"SECRET_KEY": "u" * 48}
    decision = decide(None, Request(generate=NAMES, in_use=in_use, adopt=True), new_token=counter())
    assert decision.values["SECRET_KEY"] == "u" * 48
    assert decision.adopted == ["SECRET_KEY"]
    assert decision.generated == ["DB_PASSWORD", "REDIS_PASSWORD"]


def test_a_move_brings_the_old_keepers_values_and_refuses_to_overwrite_other_ones():
    moved = decide(None, Request(generate=NAMES, seed=KEPT, seed_from="app1:/etc/difyops/dify-secrets.json"))
    assert moved.values == KEPT and moved.moved == sorted(NAMES) and moved.generated == []
    with pytest.raises(KeeperError, match="already holds other values of SECRET_KEY than app1"):
        decide({"SECRET_KEY": "z" * 48}, Request(generate=NAMES, seed=KEPT, seed_from="app1"))


def test_the_keeper_file_is_roots_0600_in_a_private_directory_and_a_rerun_changes_nothing(tmp_path):
    path = str(tmp_path / "difyops" / "dify-secrets.json")
    first, changed, created = keep(path, Request(generate=NAMES))
    assert changed and created
    info = os.stat(path)
    assert stat.S_IMODE(info.st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
    assert json.loads(open(path, encoding="utf-8").read()) == first.values
    again, changed, created = keep(path, Request(generate=NAMES))
    assert again.values == first.values and not changed and not created


def test_a_loose_mode_is_tightened_without_changing_a_value(tmp_path):
    path = str(tmp_path / "dify-secrets.json")
    first = keep(path, Request(generate=NAMES))[0]
    os.chmod(path, 0o644)
    again, changed = keep(path, Request(generate=NAMES))[:2]
    assert changed and again.values == first.values and stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_check_mode_writes_nothing_not_even_the_lock(tmp_path):
    path = str(tmp_path / "keep" / "dify-secrets.json")
    decision, changed, created = keep(path, Request(generate=NAMES), check_mode=True)
    assert changed and created and len(decision.values) == 3
    assert not os.path.exists(os.path.dirname(path))


def test_a_refusal_writes_nothing(tmp_path):
    path = str(tmp_path / "dify-secrets.json")
    with pytest.raises(KeeperError):
        keep(path, Request(generate=NAMES, in_use={"SECRET_KEY": "u" * 48}))
    assert not os.path.exists(path)


def test_a_corrupt_keeper_is_refused_and_left_as_it_is(tmp_path):
    path = tmp_path / "dify-secrets.json"
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(KeeperError, match="restore it from a backup"):
        keep(str(path), Request(generate=NAMES))
    assert path.read_text(encoding="utf-8") == "{not json"


def test_a_relative_path_is_refused():
    with pytest.raises(KeeperError, match="absolute"):
        keep("etc/dify-secrets.json", Request(generate=NAMES))


def test_a_held_lock_times_out_with_words(tmp_path):
    path = str(tmp_path / "dify-secrets.json")
    with sk.Lock(path, 1):
        with pytest.raises(KeeperError, match="another run holds"):
            keep(path, Request(generate=NAMES), lock_timeout=0)


def _run_once(path: str, start, results) -> None:
    start.wait()
    decision, created = keep(path, Request(generate=NAMES))[0::2]
    results.put((decision.values["SECRET_KEY"], created))


def test_runs_at_once_end_with_one_set_of_secrets(tmp_path):
    path = str(tmp_path / "difyops" / "dify-secrets.json")
    context = multiprocessing.get_context("fork")
    start, results = context.Event(), context.Queue()
    workers = [context.Process(target=_run_once, args=(path, start, results)) for _worker in range(8)]
    for worker in workers:
        worker.start()
    start.set()
    for worker in workers:
        worker.join(30)
    outcomes = [results.get(timeout=5) for _worker in workers]
    assert len({key for key, _created in outcomes}) == 1
    assert sum(created for _key, created in outcomes) == 1
    assert json.loads(open(path, encoding="utf-8").read())["SECRET_KEY"] == outcomes[0][0]

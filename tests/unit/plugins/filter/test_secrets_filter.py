# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""secrets_in_use: one value per secret from the deployed .env files, hosts that disagree, and the
databases whose password is a secret."""

from __future__ import annotations

import base64

from ansible_collections.difyops.dify.plugins.filter.secrets import env_values, secrets_in_use

NAMES = ["SECRET_KEY", "DB_PASSWORD"]


def slurped(text: str, path: str = "/opt/dify/.env") -> dict:
    return {"content": base64.b64encode(text.encode()).decode(), "source": path}


def test_only_the_named_secrets_are_read_from_a_dot_env():
    text = "# comment\nSECRET_KEY=abc=def\nLOG_LEVEL=INFO\n\nDB_PASSWORD=\n"
    assert env_values(text, NAMES) == {"SECRET_KEY": "abc=def"}


def test_hosts_that_agree_give_one_value_each_and_every_place_read():
    found = {"app1": {"env": slurped("SECRET_KEY=k1\nDB_PASSWORD=d1\n")},
             "app2": {"env": slurped("SECRET_KEY=k1\n")},
             "gw1": {"env": {}}}
    result = secrets_in_use(found, NAMES)
    assert result["values"] == {"SECRET_KEY": "k1", "DB_PASSWORD": "d1"}
    assert result["at"] == ["app1:/opt/dify/.env", "app2:/opt/dify/.env"]
    assert result["conflicts"] == [] and result["databases"] == []


def test_hosts_that_disagree_are_named():
    found = {"app1": {"env": slurped("SECRET_KEY=k1\n")}, "app2": {"env": slurped("SECRET_KEY=k2\n")},
             "app3": {"env": slurped("SECRET_KEY=k3\n")}}
    assert secrets_in_use(found, NAMES)["conflicts"] == [
        {"name": "SECRET_KEY", "at": ["app1:/opt/dify/.env", "app2:/opt/dify/.env", "app3:/opt/dify/.env"]}]


def test_initialised_databases_are_reported_with_their_secret():
    found = {"data1": {"env": {}, "databases": [["/opt/dify/volumes/db/data/PG_VERSION", "DB_PASSWORD"]]}}
    assert secrets_in_use(found, NAMES)["databases"] == [
        {"at": "data1:/opt/dify/volumes/db/data/PG_VERSION", "secret": "DB_PASSWORD"}]

# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The host's firewall as one nftables script rendered from the plan: the planned sources per
published port, the host's own traffic, both address families, and a whole-table replacement
(issue 18: a new host's rule after the drop, a removed host kept, the host's own containers
dropped, IPv4 only)."""

from __future__ import annotations

import pathlib
import re
import shutil
import subprocess

import pytest
import yaml

from ansible_collections.difyops.dify.plugins.filter.compose import compose_project
from ansible_collections.difyops.dify.plugins.plugin_utils.sizing.fleet import plan_fleet
from ansible_collections.difyops.dify.plugins.plugin_utils.stack import firewall

S3 = {"object_storage": {"endpoint": "https://s3.example", "bucket": "dify"}}


def fleet(apps=("10.0.0.2", "10.0.0.3"), data="10.0.0.4", gateway="10.0.0.1", pooler="pgbouncer"):
    hosts = [{"name": "gw", "vcpus": 2, "memory_mb": 4000, "components": ["gateway"], "address": gateway}]
    hosts += [{"name": "app%d" % (i + 1), "vcpus": 8, "memory_mb": 32000, "components": ["app"], "address": a}
              for i, a in enumerate(apps)]
    hosts.append({"name": "data", "vcpus": 8, "memory_mb": 32000, "components": ["database", "redis", "vector_store"],
                  "address": data})
    return plan_fleet(hosts, {"object_storage": True, "vector_store": "pgvector", "postgres_pooler": pooler})


def rules_of(script):
    """The rule lines of the 'published' chain, in order."""
    body = script.split("chain published {\n", 1)[1].split("\n\t}\n", 1)[0]
    return [line.strip() for line in body.splitlines()]


def port_lines(script, port):
    return [line for line in rules_of(script) if line.startswith("tcp dport %d " % port)]


def test_the_data_host_admits_the_app_hosts_to_each_port_and_drops_everyone_else():
    data = compose_project(fleet(), "data", S3)
    script = data["firewall_ruleset"]
    assert "\t\tip daddr 10.0.0.4 jump published\n" in script
    assert "type filter hook prerouting priority mangle; policy accept;" in script
    ports = sorted(r["port"] for r in data["firewall"])
    assert ports == [5433, 6379, 6432]  # pgvector, redis, pgbouncer (on the host's network)
    for port in ports:
        lines = port_lines(script, port)
        # The admission comes first, the drop last: a rule set rebuilt whole has no rule after its drop.
        assert lines[0].startswith("tcp dport %d ip saddr { 10.0.0.2/31 } accept" % port), lines
        assert lines[-1].startswith("tcp dport %d drop" % port) and len(lines) == 2, lines


def test_the_host_admits_its_own_processes_and_containers_before_any_drop():
    script = compose_project(fleet(), "data", S3)["firewall_ruleset"]
    lines = rules_of(script)
    first_drop = min(i for i, line in enumerate(lines) if " drop " in line)
    own = [i for i, line in enumerate(lines) if line.startswith("iifname ")]
    # Loopback (the host's processes and host-network containers such as PgBouncer), Docker's
    # default bridge and every Compose network's bridge: a container's packet to a published port
    # on the host's address enters prerouting there, with its bridge address as the source.
    assert [lines[i].split()[1] for i in own] == ['"lo"', '"docker0"', '"br-*"']
    assert max(own) < first_drop
    assert lines.index('ct direction reply accept comment "replies to this host\'s own connections"') < first_drop


def test_a_removed_app_host_is_absent_and_an_added_one_is_admitted_before_the_drop():
    before = compose_project(fleet(apps=("10.0.0.2", "10.0.0.3")), "data", S3)["firewall_ruleset"]
    removed = compose_project(fleet(apps=("10.0.0.2",)), "data", S3)["firewall_ruleset"]
    added = compose_project(fleet(apps=("10.0.0.2", "10.0.0.9")), "data", S3)["firewall_ruleset"]
    assert port_lines(before, 6379)[0].startswith("tcp dport 6379 ip saddr { 10.0.0.2/31 } accept")
    assert "10.0.0.3" not in removed and "10.0.0.2/31" not in removed
    assert port_lines(removed, 6379)[0].startswith("tcp dport 6379 ip saddr { 10.0.0.2 } accept")
    assert port_lines(added, 6379)[0].startswith("tcp dport 6379 ip saddr { 10.0.0.2, 10.0.0.9 } accept")
    # Each script replaces the whole table in one transaction: no rule of the old set survives.
    for script in (before, removed, added):
        head = [line for line in script.splitlines() if not line.startswith("#")][:3]
        assert head == ["table inet difyops", "delete table inet difyops", "table inet difyops {"]
        assert script.count("table inet difyops {") == 1


def test_an_ipv6_fleet_is_filtered_the_same_way():
    plan = fleet(apps=("2001:db8::2", "2001:db8::3"), data="2001:db8::4", gateway="2001:db8::1")
    data = compose_project(plan, "data", S3)
    script = data["firewall_ruleset"]
    assert "\t\tip6 daddr 2001:db8::4 jump published\n" in script
    assert " ip " not in script.replace("ip6", "")
    for port in (5433, 6379, 6432):
        lines = port_lines(script, port)
        assert lines[0].startswith("tcp dport %d ip6 saddr { 2001:db8::2/127 } accept" % port), lines
        assert lines[-1].startswith("tcp dport %d drop" % port)
    app1 = compose_project(plan, "app1", S3)["firewall_ruleset"]
    assert port_lines(app1, 5001)[0].startswith("tcp dport 5001 ip6 saddr { 2001:db8::1 } accept")
    # The plugin daemon admits the gateway and the other app host.
    assert port_lines(app1, 5002)[0].startswith("tcp dport 5002 ip6 saddr { 2001:db8::1, 2001:db8::3 } accept")


def test_a_single_node_has_no_firewall():
    plan = plan_fleet([{"name": "one", "vcpus": 4, "memory_mb": 16000, "address": "192.0.2.10",
                        "components": ["gateway", "app", "database", "redis", "vector_store"]}], {})
    bundle = compose_project(plan, "one")
    assert bundle["firewall"] == [] and bundle["firewall_ruleset"] == ""


def test_sources_are_merged_per_family_and_ports_sorted():
    rules = [
        {"service": "redis", "port": 6379, "sources": ["10.0.0.2/31", "10.0.0.3", "2001:db8::2", "10.0.0.4/32"]},
        {"service": "api", "port": 5001, "sources": ["10.0.1.1"]},
        {"service": "inference", "port": 8000, "sources": []},
    ]
    assert firewall.admitted("10.0.0.9", rules) == [
        {"port": 5001, "services": ["api"], "sources": ["10.0.1.1"]},
        {"port": 6379, "services": ["redis"], "sources": ["10.0.0.2/31", "10.0.0.4"]},
        {"port": 8000, "services": ["inference"], "sources": []},
    ]
    assert firewall.admitted("2001:db8::9", rules)[1]["sources"] == ["2001:db8::2"]
    script = firewall.ruleset("10.0.0.9", rules)
    # A port nobody is planned for is dropped for everyone but the host itself.
    assert port_lines(script, 8000) == ['tcp dport 8000 drop comment "inference from anyone else"']
    assert [int(re.match(r"tcp dport (\d+)", l).group(1)) for l in rules_of(script) if l.startswith("tcp")] == [
        5001, 5001, 6379, 6379, 8000]
    assert firewall.ruleset("10.0.0.9", list(reversed(rules))) == script


def test_without_rules_the_table_is_empty():
    assert firewall.ruleset("10.0.0.9", []).endswith("table inet difyops {\n}\n")
    assert "chain" not in firewall.ruleset("10.0.0.9", [])


@pytest.mark.parametrize("address, rules, message", [
    ("db-host", [], "must be an IP address, got 'db-host'"),
    ("10.0.0.9", [{"service": "redis", "port": 6379, "sources": ["10.0.0.300"]}], "redis: a source must be"),
    ("10.0.0.9", [{"service": "redis", "port": 0, "sources": []}], "redis: a port must be a number from 1 to 65535"),
])
def test_bad_values_are_refused_with_their_name(address, rules, message):
    with pytest.raises(firewall.FirewallError, match=re.escape(message)):
        firewall.ruleset(address, rules)


@pytest.mark.skipif(shutil.which("nft") is None, reason="nft is not installed on this machine")
def test_nft_accepts_the_script():
    script = compose_project(fleet(), "data", S3)["firewall_ruleset"]
    result = subprocess.run(["nft", "-c", "-f", "-"], input=script, text=True, capture_output=True, check=False)
    if "Operation not permitted" in result.stderr:
        pytest.skip("nft -c needs CAP_NET_ADMIN")
    assert result.returncode == 0, result.stderr


def test_the_role_loads_the_table_the_script_declares():
    role = pathlib.Path(__file__).resolve().parents[5] / "roles" / "dify_stack"
    variables = yaml.safe_load((role / "vars" / "main.yml").read_text(encoding="utf-8"))
    assert variables["_dify_stack_firewall_table"] == firewall.TABLE
    assert variables["_dify_stack_firewall_unit"] in firewall.ruleset("10.0.0.9", [])

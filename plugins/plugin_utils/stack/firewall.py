# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One host's firewall of its published ports, as one nftables script (pure Python, no Ansible imports).

The whole rule set lives in one table, ``inet difyops``: a base chain on the prerouting hook at
the mangle priority (-150) sends packets for the host's planned address to a chain that admits,
per published port, the planned sources and drops everyone else. It runs before Docker's DNAT
(priority -100), where the destination is still the host's address and the published port.

The script declares the table, deletes it and declares it again whole, so ``nft -f`` replaces
every rule of the table in one transaction: hosts added to and removed from the plan take effect
together, and no packet ever sees a half-written rule set. Rules of other owners (Docker's own
tables, an operator's) are untouched.

The host's own traffic is admitted whatever the plan says:

- its processes (and containers on the host's network, such as PgBouncer) reach its own address
  over the loopback interface;
- its containers on Docker's bridges (``docker0``, and ``br-<id>`` for each Compose network)
  reach a published port on the host's address with their bridge address as the source: the
  packet enters prerouting on the bridge, before any NAT;
- replies to connections the host opened (``ct direction reply``), whatever their port.
"""

from __future__ import annotations

import ipaddress
from typing import Any, Dict, List, Mapping, Sequence, Union

TABLE = "difyops"
# Interfaces whose packets come from this host itself: loopback, Docker's default bridge and the
# bridges of Docker's user-defined networks (named br-<network id>, as every Compose network is).
OWN_INTERFACES = ("lo", "docker0", "br-*")

Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]


class FirewallError(ValueError):
    """A rule that cannot be rendered; the message names the value."""


def _address(value: str) -> Union[ipaddress.IPv4Address, ipaddress.IPv6Address]:
    try:
        return ipaddress.ip_address(str(value).strip("[]"))
    except ValueError:
        raise FirewallError("the host's address must be an IP address, got %r" % (value,))


def _networks(sources: Sequence[str], service: str) -> List[Network]:
    networks = []
    for source in sources:
        try:
            networks.append(ipaddress.ip_network(str(source).strip("[]"), strict=False))
        except ValueError:
            raise FirewallError("%s: a source must be an address or a network in CIDR notation, got %r" % (service, source))
    return networks


def _port(value: Any, service: str) -> int:
    try:
        port = int(value)
    except (TypeError, ValueError):
        port = 0
    if not 1 <= port <= 65535:
        raise FirewallError("%s: a port must be a number from 1 to 65535, got %r" % (service, value))
    return port


def admitted(address: str, rules: Sequence[Mapping[str, Any]]) -> List[Dict[str, Any]]:
    """Per published port, in port order: {port, services, sources}, the sources being the rules'
    networks of the address's family, merged (overlaps and neighbours collapsed) and sorted. A
    source of the other family cannot reach the address and is left out."""
    family = _address(address).version
    by_port: Dict[int, Dict[str, Any]] = {}
    for rule in rules:
        service = str(rule.get("service") or "")
        port = _port(rule.get("port"), service)
        entry = by_port.setdefault(port, {"port": port, "services": [], "sources": []})
        if service and service not in entry["services"]:
            entry["services"].append(service)
        entry["sources"] += [n for n in _networks(rule.get("sources") or [], service) if n.version == family]
    result = []
    for port in sorted(by_port):
        entry = by_port[port]
        merged = ipaddress.collapse_addresses(entry["sources"])  # type: ignore[type-var]
        result.append({"port": port, "services": sorted(entry["services"]),
                       "sources": [n.with_prefixlen if n.prefixlen < n.max_prefixlen else str(n.network_address)
                                   for n in sorted(merged)]})
    return result


def _comment(text: str) -> str:
    return '"%s"' % text.replace('"', "'")


def ruleset(address: str, rules: Sequence[Mapping[str, Any]], table: str = TABLE) -> str:
    """The nftables script of the host's whole firewall: ``nft -f`` loads it atomically and a
    second load of the same script leaves the same rules. ``rules`` are the bundle's ``firewall``
    entries ({service, port, sources}); ``address`` is the host's planned address, the one its ports
    are published on. Without rules the table holds no chain, so nothing is filtered."""
    host = _address(address)
    ip = "ip" if host.version == 4 else "ip6"
    ports = admitted(str(host), rules)
    lines = [
        "#!/usr/sbin/nft -f",
        "# difyops.dify (role dify_stack): who may reach the ports this host publishes on %s." % host,
        "# Written from the fleet plan on every run; local edits are replaced. Loaded at boot by",
        "# difyops-firewall.service, before Docker starts.",
        "table inet %s" % table,
        "delete table inet %s" % table,
        "table inet %s {" % table,
    ]
    if ports:
        lines += [
            "\tchain prerouting {",
            "\t\ttype filter hook prerouting priority mangle; policy accept;",
            "\t\t%s daddr %s jump published" % (ip, host),
            "\t}",
            "",
            "\tchain published {",
            "\t\tct direction reply accept comment %s" % _comment("replies to this host's own connections"),
        ]
        lines += ["\t\tiifname %s accept comment %s" % (_comment(name), _comment("this host's processes and containers"))
                  for name in OWN_INTERFACES]
        for entry in ports:
            services = ", ".join(entry["services"]) or "port %d" % entry["port"]
            if entry["sources"]:
                lines.append("\t\ttcp dport %d %s saddr { %s } accept comment %s"
                             % (entry["port"], ip, ", ".join(entry["sources"]), _comment(services)))
            lines.append("\t\ttcp dport %d drop comment %s" % (entry["port"], _comment(services + " from anyone else")))
        lines.append("\t}")
    lines.append("}")
    return "\n".join(lines) + "\n"

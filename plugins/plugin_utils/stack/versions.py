# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the collection knows of each Dify version it deploys, one record per version (pure data).

Every consumer reads the record of the version the plan names: the sizing engine (which app
services a host runs), the Compose builder (images, services, networks, variables), the secrets
keeper (which secrets, in which format), the gateway (routes) and the SSRF proxy. The reference
module of each version (generated from upstream's files, ``reference_<version>.py``) lists
upstream's services, variables and default secrets; the record says what the collection does with
them: every upstream service is either deployed or left out with the reason.

Adding a version: generate its reference module (tools/stack_reference.py), then add its record
here; the unit tests check the record against the reference (every service placed or left out,
every variable the builder writes known to the version, every secret in its format).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Dict, List, Mapping, Optional, Tuple

from ..sizing.catalog import APP_SERVICES
from . import reference_1_13_3, reference_1_16_1

# Secret formats the keeper can generate. token: letters and digits (dify_secrets_length long);
# base64url32: 32 random bytes as unpadded base64url (43 characters), which Dify's agent backend
# requires of its server key (it derives a JWE key from it and refuses any other form).
SECRET_FORMATS = ("token", "base64url32")

# Services that hold Dify's core on an app host in every version; worker_beat and the plugin
# daemon run on one app host of a fleet only.
CORE_APP_SERVICES = APP_SERVICES

# Upstream services no version deploys, and why (the inventory's components place the rest).
ALWAYS_LEFT_OUT: Dict[str, str] = {
    "init_permissions": "dify_stack creates the storage directories owned by Dify's user itself",
    "db_mysql": "the collection runs PostgreSQL only (DB_TYPE=postgresql)",
    "certbot": "TLS is terminated in front of the gateway or by the operator's own certificates",
    "unstructured": "the optional Unstructured ETL service is off (ETL_TYPE=dify)",
}
OTHER_VECTOR_STORES = ("oceanbase", "seekdb", "couchbase-server", "vastbase", "pgvecto-rs", "chroma", "iris", "oracle",
                       "milvus-standalone", "opensearch", "opengauss", "myscale", "matrixone", "elasticsearch")
VECTOR_STORE_HELPERS = {"etcd": "milvus-standalone", "minio": "milvus-standalone",
                        "opensearch-dashboards": "opensearch", "kibana": "elasticsearch"}


def _left_out(extra: Mapping[str, str]) -> Dict[str, str]:
    reasons = dict(ALWAYS_LEFT_OUT)
    reasons.update({name: "the collection deploys Weaviate, Qdrant or pgvector (dify_vector_store)"
                    for name in OTHER_VECTOR_STORES})
    reasons.update({name: "serves %s, which the collection does not deploy" % store
                    for name, store in VECTOR_STORE_HELPERS.items()})
    reasons.update(extra)
    return reasons


@dataclass(frozen=True)
class Version:
    """One Dify version as the collection deploys it."""

    version: str
    # The release line and whether it is upstream's long-term support line.
    line: str
    lts: bool
    reference: ModuleType
    # App services beyond the core ones (on every app host), in start order.
    extra_app_services: Tuple[str, ...] = ()
    # Upstream services not deployed, with the reason.
    left_out: Mapping[str, str] = field(default_factory=dict)
    # Secrets the version needs beyond the core ones, and their formats.
    secrets: Mapping[str, str] = field(default_factory=dict)
    # Gateway routes to the api, besides the ones every version has.
    api_routes: Tuple[str, ...] = ()
    # 1.13's SSRF proxy also served a reverse proxy to the sandbox (SSRF_REVERSE_PROXY_PORT).
    sandbox_reverse_proxy: bool = True
    # Networks the plugin daemon joins (1.16 puts it behind the SSRF proxy too).
    plugin_daemon_networks: Tuple[str, ...] = ("default",)
    # The interpreter the sandbox's config.yaml names; empty: the sandbox finds it (0.2.15+).
    sandbox_python_path: str = "/opt/python/bin/python3"

    @property
    def app_services(self) -> Tuple[str, ...]:
        return CORE_APP_SERVICES + self.extra_app_services

    @property
    def images(self) -> Dict[str, str]:
        return dict(self.reference.IMAGES)


# Every version deploys these; the records add their own.
CORE_SECRETS: Dict[str, str] = {name: "token" for name in (
    "SECRET_KEY", "DB_PASSWORD", "REDIS_PASSWORD", "SANDBOX_API_KEY", "PLUGIN_DAEMON_KEY", "PLUGIN_DIFY_INNER_API_KEY",
    "WEAVIATE_API_KEY", "QDRANT_API_KEY", "PGVECTOR_PASSWORD", "INFERENCE_API_KEY")}
CORE_API_ROUTES = ("/console/api", "/api", "/v1", "/files", "/mcp", "/triggers")
WEB_ROUTES = ("/explore", "/")
PLUGIN_ROUTES = ("/e/",)

LTS_1_13 = Version(
    version="1.13.3", line="1.13", lts=True, reference=reference_1_13_3,
    left_out=_left_out({}),
)

V1_16 = Version(
    version="1.16.1", line="1.16", lts=False, reference=reference_1_16_1,
    extra_app_services=("agent_backend", "local_sandbox", "agent_ssrf_proxy"),
    left_out=_left_out({
        "api_websocket": "real-time collaboration (profile collaboration) is off: ENABLE_COLLABORATION_MODE=false",
    }),
    secrets={"DIFY_AGENT_SERVER_SECRET_KEY": "base64url32", "DIFY_AGENT_API_TOKEN": "token",
             "DIFY_AGENT_SHELLCTL_AUTH_TOKEN": "token"},
    api_routes=("/openapi",),
    sandbox_reverse_proxy=False,
    plugin_daemon_networks=("ssrf_proxy_network", "default"),
    sandbox_python_path="",
)

RECORDS: Dict[str, Version] = {record.version: record for record in (LTS_1_13, V1_16)}
# The version deployed when the inventory names none: the LTS line, until a newer one is proven here.
DEFAULT_VERSION = LTS_1_13.version
SUPPORTED = tuple(RECORDS)


def record(version: str) -> Version:
    """The record of a supported version; KeyError names the supported ones."""
    try:
        return RECORDS[str(version)]
    except KeyError:
        raise KeyError("Dify %s is not supported by this collection (supported: %s; set dify_stack_version to one)"
                       % (version, ", ".join(SUPPORTED)))


def parse(version: str) -> Tuple[int, ...]:
    """1.16.1 -> (1, 16, 1); ValueError for anything else."""
    parts = tuple(int(part) for part in str(version).split("."))
    if len(parts) != 3:
        raise ValueError(version)
    return parts


def upgrade(deployed: Mapping[str, Optional[str]], target: str) -> Dict[str, Any]:
    """What an upgrade of a fleet to ``target`` does, from the version each host runs (None: no
    project on the host; a project that records no version was deployed before versions were
    recorded, which only 1.13.3 was: pass it as that).

    Returns from (the oldest version deployed), to, needed (some host runs an older version),
    hosts (those to upgrade, in name order) and problems (each names the hosts and the fix; an
    upgrade with problems must change nothing). Hosts may run ``from`` or ``to`` (a run that
    stopped half way), never anything else."""
    problems: List[str] = []
    if target not in RECORDS:
        problems.append("dify_stack_version %s is not supported (supported: %s)" % (target, ", ".join(SUPPORTED)))
    running = {host: str(version) for host, version in deployed.items() if version}
    unknown = sorted(h for h, v in running.items() if v not in RECORDS)
    if unknown:
        seen = ", ".join(sorted({running[h] for h in unknown}))
        problems.append("%s run%s Dify %s, which this collection does not know; upgrade it with the collection "
                        "release that deployed it, or redeploy" % (", ".join(unknown), "s" if len(unknown) == 1 else "", seen))
    if not running:
        problems.append("no host runs a Dify project yet: deploy it with difyops.dify.site (dify_stack_version: %s)"
                        % target)
    if problems:
        return {"from": None, "to": target, "needed": False, "hosts": [], "problems": problems}
    newer = sorted(h for h, v in running.items() if parse(v) > parse(target))
    if newer:
        problems.append("%s already run%s Dify %s, newer than %s: the collection does not downgrade (the database "
                        "was migrated); restore a backup taken before the upgrade instead (difyops.dify.restore)"
                        % (", ".join(newer), "s" if len(newer) == 1 else "", running[newer[0]], target))
    oldest = min(running.values(), key=parse)
    mixed = sorted(h for h, v in running.items() if v not in (oldest, target))
    if mixed:
        problems.append("the fleet runs Dify %s; an upgrade goes from one version to %s: upgrade %s to %s first"
                        % (", ".join(sorted(set(running.values()), key=parse)), target, ", ".join(mixed), oldest))
    hosts = sorted(h for h, v in running.items() if v != target)
    return {"from": oldest, "to": target, "needed": bool(hosts) and not problems, "hosts": hosts, "problems": problems}


def secrets(version: str) -> Dict[str, str]:
    """Every secret a version's deployment may use, with its format."""
    out = dict(CORE_SECRETS)
    out.update(record(version).secrets)
    return out


def every_secret() -> Dict[str, str]:
    """Every secret of every supported version with its format, in the order the versions add them."""
    return {name: form for version in SUPPORTED for name, form in secrets(version).items()}


def gateway_routes(version: str) -> Dict[str, Tuple[str, ...]]:
    """The gateway's routes by the upstream that serves them. API routes carry streamed answers."""
    return {"api": CORE_API_ROUTES + record(version).api_routes, "web": WEB_ROUTES, "plugin_daemon": PLUGIN_ROUTES}

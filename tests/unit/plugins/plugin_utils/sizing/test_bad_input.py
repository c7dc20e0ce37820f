"""Bad input is refused before any host changes, with a message naming the variable, the host and
the fix; no input shape escapes as a raw Python error."""

from __future__ import annotations

import copy
import re

import pytest
import yaml
from hypothesis import HealthCheck, given, settings, strategies as st

from ansible_collections.difyops.dify.plugins.plugin_utils.sizing import validate
from ansible_collections.difyops.dify.plugins.plugin_utils.sizing.errors import PlanError
from ansible_collections.difyops.dify.plugins.plugin_utils.sizing.fleet import plan_fleet
from ansible_collections.difyops.dify.plugins.plugin_utils.sizing.host import OVERRIDABLE_SETTINGS

from sizing_helpers import FULL_NODE, ROOT, host

S3 = {"endpoint": "https://s3.example.com", "bucket": "dify"}
H100 = {"index": 0, "name": "NVIDIA H100 80GB HBM3", "memory_total_mib": 81559, "compute_capability": "9.0"}


def single(**extra):
    """One full node, with ``extra`` replacing its inputs."""
    data = host("h1", 4, 16384, FULL_NODE)
    data.update(extra)
    return [data]


def fleet(**changes):
    """A split fleet; ``changes`` maps a host name to the inputs that replace its own."""
    hosts = [
        host("gw", 2, 4000, ["gateway"], address="10.0.0.2"),
        host("app1", 4, 8000, ["app"], address="10.0.0.11"),
        host("app2", 4, 8000, ["app"], address="10.0.0.12"),
        host("data", 4, 16000, ["database", "redis", "vector_store"], address="10.0.0.21"),
    ]
    for entry in hosts:
        entry.update(changes.get(entry["name"], {}))
    return hosts


def overrides(**value):
    return single(overrides=value)


def storage(**value):
    return fleet(), {"object_storage": value}


# (id, hosts, options, parts the message must contain)
CASES = [
    # ------------------------------------------------------------------ dify_vcpus, dify_memory_mb
    ("vcpus-word", single(vcpus="four"), None,
     ["host 'h1': dify_vcpus must be an integer from 1 to 1024, got 'four'", "set dify_vcpus"]),
    ("vcpus-a-million", single(vcpus=10 ** 6), None,
     ["host 'h1': dify_vcpus must be an integer from 1 to 1024, got 1000000", "vCPU count"]),
    ("vcpus-zero", single(vcpus=0), None, ["host 'h1': dify_vcpus", "got 0", "set dify_vcpus"]),
    ("vcpus-negative", single(vcpus=-2), None, ["host 'h1': dify_vcpus", "got -2"]),
    ("vcpus-fraction", single(vcpus=4.5), None, ["host 'h1': dify_vcpus must be an integer", "got 4.5"]),
    ("vcpus-missing", single(vcpus=None), None,
     ["host 'h1': dify_vcpus", "got nothing", "gather the facts"]),
    ("vcpus-boolean", single(vcpus=True), None, ["host 'h1': dify_vcpus", "got true"]),
    ("vcpus-list", single(vcpus=[4]), None, ["host 'h1': dify_vcpus", "got a list [4]"]),
    ("memory-word", single(memory_mb="lots"), None,
     ["host 'h1': dify_memory_mb must be an integer from 256 to 67108864, got 'lots'", "set dify_memory_mb"]),
    ("memory-below-256", single(memory_mb=100), None, ["host 'h1': dify_memory_mb", "got 100"]),
    ("memory-above-64-tib", single(memory_mb=10 ** 9), None, ["host 'h1': dify_memory_mb", "got 1000000000"]),
    ("memory-mapping", single(memory_mb={"total": 1}), None,
     ["host 'h1': dify_memory_mb", "got a mapping (keys: total)"]),
    ("memory-nan", single(memory_mb="nan"), None, ["host 'h1': dify_memory_mb", "got 'nan'"]),
    ("memory-infinite", single(memory_mb=float("inf")), None, ["host 'h1': dify_memory_mb", "got inf"]),
    # ------------------------------------------------------ facts and other host variables
    ("architecture-unsupported", single(architecture="ppc64le"), None,
     ["host 'h1': ansible_facts.architecture must be one of x86_64, aarch64, got 'ppc64le'", "x86_64 and aarch64 only"]),
    ("architecture-number", single(architecture=64), None, ["host 'h1': ansible_facts.architecture", "got 64"]),
    ("disk-kind-typo", single(disk_kind="sdd"), None,
     ["host 'h1': dify_disk_kind must be one of nvme, ssd, hdd, virtual, network, got 'sdd'", "did you mean 'ssd'"]),
    ("disk-kind-list", single(disk_kind=["nvme"]), None, ["host 'h1': dify_disk_kind", "got a list ['nvme']"]),
    ("profile-unknown", single(profile="huge"), None,
     ["host 'h1': dify_profile must be one of auto, edge, small, standard, large, got 'huge'", "choose a profile"]),
    ("profile-number", single(profile=3), None, ["host 'h1': dify_profile", "got 3"]),
    ("components-string", single(components="app"), None,
     ["host 'h1': its components must be a non-empty list of gateway, app", "got 'app'", "dify_<component>"]),
    ("components-none", fleet(gw={"components": []}), {"object_storage": S3},
     ["host 'gw': its components must be a non-empty list", "got a list []", "take it out of the group dify"]),
    ("components-unknown", single(components=FULL_NODE + ["cache"]), None,
     ["host 'h1': unknown component(s) 'cache'", "dify_<component>"]),
    ("name-missing", [{"vcpus": 4, "memory_mb": 16384, "components": FULL_NODE}], None,
     ["hosts[0]: the host's name (its inventory hostname) must be a non-empty string, got nothing"]),
    ("name-empty", single(name=""), None, ["hosts[0]: the host's name", "got ''"]),
    ("name-twice", fleet(app2={"name": "app1"}), {"object_storage": S3},
     ["host names appear more than once: app1", "its own inventory name"]),
    ("unknown-host-key", single(memory=4096), None,
     ["host 'h1': the host input has an unknown key 'memory'", "did you mean 'memory_mb'", "stack_plan documents"]),
    ("open-files-word", single(open_files_limit="lots"), None,
     ["host 'h1': dify_open_files_limit must be an integer from 1024", "got 'lots'", "PID 1's limit"]),
    ("open-files-low", single(open_files_limit=100), None, ["host 'h1': dify_open_files_limit", "got 100"]),
    ("open-files-negative", single(open_files_limit="-1"), None, ["host 'h1': dify_open_files_limit", "got '-1'"]),
    # ----------------------------------------------------------------------- dify_worker_beat
    ("beat-maybe", fleet(app1={"worker_beat": "maybe"}), {"object_storage": S3},
     ["host 'app1': dify_worker_beat must be a boolean, true or false", "got 'maybe'",
      "the one app host that runs Celery beat"]),
    ("beat-two", fleet(app1={"worker_beat": "2"}), {"object_storage": S3},
     ["host 'app1': dify_worker_beat must be a boolean", "got '2'"]),
    ("beat-list", fleet(app1={"worker_beat": ["true"]}), {"object_storage": S3},
     ["host 'app1': dify_worker_beat", "got a list ['true']"]),
    ("beat-on-two-hosts-as-strings", fleet(app1={"worker_beat": "yes"}, app2={"worker_beat": "True"}),
     {"object_storage": S3}, ["dify_worker_beat is true on 2 hosts (app1, app2)", "one app host only"]),
    ("beat-off-the-app", fleet(data={"worker_beat": "on"}), {"object_storage": S3},
     ["host 'data': dify_worker_beat is true but the host is not in the group dify_app", "set it on an app host"]),
    # ------------------------------------------------------------------ dify_sizing_overrides
    ("overrides-string", single(overrides="big"), None,
     ["host 'h1': dify_sizing_overrides must be a mapping with the keys services and/or settings, got 'big'",
      "write it as"]),
    ("overrides-list", single(overrides=["services"]), None,
     ["host 'h1': dify_sizing_overrides must be a mapping", "got a list ['services']"]),
    ("overrides-typo-service", overrides(service={"api": {"memory_mb": 4096}}), None,
     ["host 'h1': dify_sizing_overrides has an unknown key 'service'", "did you mean 'services'",
      "silently ignored"]),
    ("overrides-services-list", overrides(services=["api"]), None,
     ["host 'h1': dify_sizing_overrides.services must be a mapping of service", "got a list ['api']"]),
    ("override-service-string", overrides(services={"api": "4096"}), None,
     ["host 'h1': dify_sizing_overrides.services.api must be a mapping of memory_mb and/or cpus, got '4096'"]),
    ("override-service-unknown", overrides(services={"apii": {"cpus": 1}}), None,
     ["host 'h1': dify_sizing_overrides.services has an unknown service 'apii'", "did you mean 'api'"]),
    ("override-key-unknown", overrides(services={"api": {"memory": 4096}}), None,
     ["host 'h1': dify_sizing_overrides.services.api has an unknown key 'memory'", "did you mean 'memory_mb'"]),
    ("override-cpus-word", overrides(services={"api": {"cpus": "two"}}), None,
     ["host 'h1': dify_sizing_overrides.services.api.cpus must be a number above 0", "got 'two'",
      "fix or remove the override"]),
    ("override-cpus-zero", overrides(services={"api": {"cpus": 0}}), None,
     ["host 'h1': dify_sizing_overrides.services.api.cpus", "got 0"]),
    ("override-cpus-negative", overrides(services={"worker": {"cpus": -1}}), None,
     ["host 'h1': dify_sizing_overrides.services.worker.cpus", "got -1"]),
    ("override-memory-negative", overrides(services={"api": {"memory_mb": -5}}), None,
     ["host 'h1': dify_sizing_overrides.services.api.memory_mb must be a number above 0", "got -5"]),
    ("override-memory-boolean", overrides(services={"api": {"memory_mb": True}}), None,
     ["host 'h1': dify_sizing_overrides.services.api.memory_mb", "got true"]),
    ("override-cpus-above-host", overrides(services={"api": {"cpus": 64}}), None,
     ["host 'h1': dify_sizing_overrides.services.api.cpus must be above 0 and at most 3.50", "got 64",
      "give the host more CPUs"]),
    ("override-memory-above-host", overrides(services={"api": {"memory_mb": 10 ** 6}}), None,
     ["host 'h1': dify_sizing_overrides.services.api.memory_mb must be at most the 14.9 GiB usable", "got 1000000",
      "give the host more memory"]),
    ("override-service-not-placed", overrides(services={"inference": {"memory_mb": 4096}}), None,
     ["host 'h1': dify_sizing_overrides.services.inference overrides a service this host does not run",
      "set it on the host that runs inference"]),
    ("settings-list", overrides(settings=["api_workers"]), None,
     ["host 'h1': dify_sizing_overrides.settings must be a mapping of setting -> integer"]),
    ("setting-unknown", overrides(settings={"threads": 4}), None,
     ["host 'h1': dify_sizing_overrides.settings has an unknown key 'threads'", "silently ignored"]),
    ("setting-typo", overrides(settings={"api_worker": 4}), None,
     ["host 'h1': dify_sizing_overrides.settings has an unknown key 'api_worker'", "did you mean 'api_workers'"]),
    ("context-tokens-negative", overrides(settings={"context_tokens": -5}), None,
     ["host 'h1': dify_sizing_overrides.settings.context_tokens must be an integer from 512 to 1048576, got -5",
      "fix or remove the override"]),
    ("context-tokens-small", overrides(settings={"context_tokens": 100}), None,
     ["dify_sizing_overrides.settings.context_tokens", "got 100"]),
    ("context-tokens-huge", overrides(settings={"context_tokens": 10 ** 7}), None,
     ["dify_sizing_overrides.settings.context_tokens", "got 10000000"]),
    ("context-tokens-word", overrides(settings={"context_tokens": "8k"}), None,
     ["dify_sizing_overrides.settings.context_tokens", "got '8k'"]),
    ("api-workers-zero", overrides(settings={"api_workers": 0}), None,
     ["host 'h1': dify_sizing_overrides.settings.api_workers must be an integer from 1 to 128, got 0"]),
    ("api-workers-fraction", overrides(settings={"api_workers": 2.5}), None,
     ["dify_sizing_overrides.settings.api_workers", "got 2.5"]),
    ("rate-limit-zero", overrides(settings={"rate_limit_rps": 0}), None,
     ["host 'h1': dify_sizing_overrides.settings.rate_limit_rps must be an integer from 1 to 100000, got 0"]),
    ("nginx-connections-low", overrides(settings={"nginx_worker_connections": 10}), None,
     ["dify_sizing_overrides.settings.nginx_worker_connections must be an integer from 64 to 65536, got 10"]),
    ("celery-workers-high", overrides(settings={"celery_workers": 10000}), None,
     ["dify_sizing_overrides.settings.celery_workers must be an integer from 1 to 256, got 10000"]),
    ("api-connections-word", overrides(settings={"api_worker_connections": "many"}), None,
     ["dify_sizing_overrides.settings.api_worker_connections", "got 'many'"]),
    # -------------------------------------------------------------------------------- dify_gpus
    ("gpus-string", single(gpus="A100"), None,
     ["host 'h1': dify_gpus must be a list of GPUs", "got 'A100'", "difyops.dify.gpu_facts"]),
    ("gpus-list-of-strings", single(gpus=["A100"]), None,
     ["host 'h1': dify_gpus[0] must be a mapping with memory_total_mib, got 'A100'"]),
    ("gpu-without-memory", single(gpus=[{"name": "NVIDIA L4"}]), None,
     ["host 'h1': dify_gpus[0].memory_total_mib must be an integer", "got nothing"]),
    ("gpu-memory-word", single(gpus=[dict(H100, memory_total_mib="lots")]), None,
     ["host 'h1': dify_gpus[0].memory_total_mib", "got 'lots'"]),
    ("gpu-capability-word", single(gpus=[dict(H100, compute_capability="new")]), None,
     ["host 'h1': dify_gpus[0].compute_capability must be a version such as 8.9, got 'new'"]),
    ("gpu-index-negative", single(gpus=[H100, dict(H100, index=-1)]), None,
     ["host 'h1': dify_gpus[1].index must be an integer from 0", "got -1"]),
    ("gpu-name-mapping", single(gpus=[dict(H100, name={"model": "x"})]), None,
     ["host 'h1': dify_gpus[0].name must be a string"]),
    # ----------------------------------------------------------------------- fleet addresses
    ("address-loopback", fleet(app1={"address": "127.0.0.1"}), {"object_storage": S3},
     ["host 'app1': dify_address (or ansible_host) must be an address other hosts can reach, got '127.0.0.1'",
      "loopback", "set dify_address to the IP address the other Dify hosts reach app1 at"]),
    ("address-loopback-v6", fleet(app1={"address": "::1"}), {"object_storage": S3},
     ["host 'app1': dify_address (or ansible_host)", "got '::1'", "loopback"]),
    ("address-unspecified", fleet(gw={"address": "0.0.0.0"}), {"object_storage": S3},
     ["host 'gw': dify_address (or ansible_host)", "got '0.0.0.0'", "unspecified"]),
    ("address-unspecified-v6", fleet(gw={"address": "::"}), {"object_storage": S3},
     ["host 'gw': dify_address", "got '::'", "unspecified"]),
    ("address-multicast", fleet(data={"address": "224.0.0.1"}), {"object_storage": S3},
     ["host 'data': dify_address", "multicast"]),
    ("address-link-local", fleet(data={"address": "169.254.10.1"}), {"object_storage": S3},
     ["host 'data': dify_address", "link-local"]),
    ("address-link-local-v6", fleet(data={"address": "fe80::1"}), {"object_storage": S3},
     ["host 'data': dify_address", "link-local"]),
    ("address-broadcast", fleet(data={"address": "255.255.255.255"}), {"object_storage": S3},
     ["host 'data': dify_address", "broadcast"]),
    ("address-shared", fleet(app2={"address": "10.0.0.11"}), {"object_storage": S3},
     ["host 'app2': dify_address (or ansible_host) must be the host's own, got '10.0.0.11', which host 'app1' has too",
      "give every host its own address"]),
    ("address-shared-v6-spelled-twice", fleet(app1={"address": "2001:db8::11"}, app2={"address": "2001:DB8:0::11"}),
     {"object_storage": S3}, ["host 'app2'", "got '2001:db8::11', which host 'app1' has too"]),
    ("address-host-name", fleet(app1={"address": "app-one.example"}), {"object_storage": S3},
     ["host 'app1': dify_address (or ansible_host) must be an IP address such as 10.0.0.11 or 2001:db8::11, got 'app-one.example'"]),
    ("address-missing-in-fleet", fleet(app1={"address": None}), {"object_storage": S3},
     ["host 'app1': dify_address (or ansible_host) must be an IP address in a fleet of several hosts, got nothing"]),
    ("address-number", fleet(app1={"address": 167772161}), {"object_storage": S3},
     ["host 'app1': dify_address", "got 167772161"]),
    ("address-unspecified-single-node", single(address="0.0.0.0"), None,
     ["host 'h1': dify_address (or ansible_host)", "unspecified", "set dify_address to the host's IP address"]),
    # ------------------------------------------------------------------------ dify_object_storage
    ("storage-yes", fleet(), {"object_storage": "yes"},
     ["dify_object_storage (an option of the group 'dify') must be a mapping with endpoint and bucket", "got 'yes'",
      "S3_ACCESS_KEY"]),
    ("storage-list", fleet(), {"object_storage": ["s3"]}, ["dify_object_storage", "got a list ['s3']"]),
    ("storage-empty-split", fleet(), {"object_storage": {}},
     ["app hosts app1, app2 are split over 2 hosts but no shared object storage", "set dify_object_storage"]),
    ("storage-false-string-split", fleet(), {"object_storage": "false"},
     ["no shared object storage is configured", "set dify_object_storage"]),
    ("storage-without-bucket", *storage(endpoint="https://s3.example.com"),
     ["dify_object_storage.bucket (an option of the group 'dify') must be an S3 bucket name", "got nothing",
      "name an existing bucket"]),
    ("storage-without-endpoint", *storage(bucket="dify"),
     ["dify_object_storage.endpoint (an option of the group 'dify') must be an http(s) URL, got nothing"]),
    ("storage-endpoint-without-scheme", *storage(endpoint="s3.example.com", bucket="dify"),
     ["dify_object_storage.endpoint", "with a host", "got 's3.example.com'"]),
    ("storage-endpoint-ftp", *storage(endpoint="ftp://s3.example.com", bucket="dify"),
     ["dify_object_storage.endpoint", "got 'ftp://s3.example.com'"]),
    ("storage-endpoint-port", *storage(endpoint="http://s3.example.com:99999", bucket="dify"),
     ["dify_object_storage.endpoint (an option of the group 'dify') must be an http(s) URL", "99999"]),
    ("storage-endpoint-localhost", *storage(endpoint="http://localhost:9000", bucket="dify"),
     ["dify_object_storage.endpoint", "localhost leads every container back to itself"]),
    ("storage-bucket-invalid", *storage(endpoint="https://s3.example.com", bucket="My_Bucket"),
     ["dify_object_storage.bucket", "got 'My_Bucket'"]),
    ("storage-plugin-bucket-short", *storage(endpoint="https://s3.example.com", bucket="dify", plugin_bucket="x"),
     ["dify_object_storage.plugin_bucket", "got 'x'"]),
    ("storage-region-invalid", *storage(endpoint="https://s3.example.com", bucket="dify", region="us east"),
     ["dify_object_storage.region (an option of the group 'dify') must be a region name", "got 'us east'"]),
    ("storage-path-style-maybe", *storage(endpoint="https://s3.example.com", bucket="dify", path_style="maybe"),
     ["dify_object_storage.path_style (an option of the group 'dify') must be a boolean", "got 'maybe'"]),
    ("storage-unknown-key", *storage(endpoint="https://s3.example.com", bucket="dify", bucket_name="dify"),
     ["dify_object_storage (an option of the group 'dify') has an unknown key 'bucket_name'", "remove it"]),
    # ------------------------------------------------------------------------ other fleet options
    ("vector-store-unknown", single(), {"vector_store": "chromadb"},
     ["dify_vector_store (an option of the group 'dify') must be one of auto, weaviate, qdrant, pgvector, "
      "got 'chromadb'"]),
    ("vector-store-typo", single(), {"vector_store": "qdrnt"}, ["dify_vector_store", "did you mean 'qdrant'"]),
    ("vector-store-number", single(), {"vector_store": 5}, ["dify_vector_store", "got 5"]),
    ("profile-default-unknown", single(), {"profile": "huge"},
     ["dify_profile_default (an option of the group 'dify') must be one of auto, edge", "got 'huge'"]),
    ("option-unknown", single(), {"vector-store": "qdrant"},
     ["the plan's options have an unknown key 'vector-store'", "did you mean 'vector_store'"]),
    ("options-string", single(), "auto", ["the plan's options must be a mapping", "got 'auto'"]),
    # ------------------------------------------------------------------------------ host list
    ("hosts-mapping", {"h1": single()[0]}, None, ["the hosts to plan must be a list of mappings", "plan_inputs"]),
    ("hosts-string", "h1", None, ["the hosts to plan must be a list of mappings, got 'h1'"]),
    ("host-string", ["h1"], None, ["hosts[0] must be a mapping", "got 'h1'"]),
    ("host-none", single() + [None], None, ["hosts[1] must be a mapping", "got nothing"]),
    ("hosts-empty", [], None, ["no hosts to plan: the inventory group 'dify' is empty"]),
]


@pytest.mark.parametrize("hosts, options, parts", [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_bad_input_is_refused_with_variable_host_and_fix(hosts, options, parts):
    with pytest.raises(PlanError) as exc:
        plan_fleet(copy.deepcopy(hosts), options)
    message = str(exc.value)
    for part in parts:
        assert part in message
    for problem in exc.value.problems:
        # Each sentence says what to do: "...; FIX" or a placement rule with its remedy.
        assert ";" in problem or ":" in problem, problem


def test_there_are_at_least_sixty_cases_with_unique_ids():
    ids = [case[0] for case in CASES]
    assert len(ids) >= 60 and len(set(ids)) == len(ids)


def test_object_storage_credentials_never_reach_the_message():
    with pytest.raises(PlanError) as exc:
        plan_fleet(fleet(), {"object_storage": {"endpoint": "https://AKIA:hunter2@s3.example.com", "bucket": "dify",
                                                "secret_key": "hunter2"}})
    message = str(exc.value)
    assert "hunter2" not in message and "AKIA" not in message
    assert "dify_object_storage.endpoint (an option of the group 'dify') must be a URL without credentials" in message
    assert "unknown key 'secret_key'" in message and "dify_secrets_given as S3_ACCESS_KEY and S3_SECRET_KEY" in message


def test_every_problem_is_listed_at_once():
    hosts = fleet(app1={"vcpus": "x", "worker_beat": "maybe"}, app2={"address": "10.0.0.2"},
                  data={"overrides": {"service": {}}})
    problems = pytest.raises(PlanError, plan_fleet, hosts, {"object_storage": "yes"}).value.problems
    assert len(problems) == 5, problems


@pytest.mark.parametrize("value, expected", [
    (True, True), (False, False), ("true", True), ("false", False), ("False", False), ("YES", True), ("no", False),
    ("on", True), ("off", False), ("1", True), ("0", False), (1, True), (0, False), (" y ", True), ("n", False),
    ("t", True), ("f", False), ("maybe", None), ("", None), (2, None), ([], None), (None, None), ("2", None)])
def test_booleans_are_read_as_ansible_reads_them(value, expected):
    assert validate.as_bool(value) is expected


@pytest.mark.parametrize("value", ["false", "no", "off", "0", "False", 0, False, None])
def test_worker_beat_given_as_a_false_string_is_false(value):
    plan = plan_fleet(fleet(app1={"worker_beat": "false"}, app2={"worker_beat": value}), {"object_storage": S3})
    assert plan["fleet"]["worker_beat_host"] == plan["fleet"]["migration_host"] == "app1"
    assert "worker_beat" not in plan["hosts"]["app2"]["services"]


@pytest.mark.parametrize("value", ["true", "yes", "on", "1", "True", 1, True])
def test_worker_beat_given_as_a_true_string_is_true(value):
    plan = plan_fleet(fleet(app2={"worker_beat": value}), {"object_storage": S3})
    assert plan["fleet"]["worker_beat_host"] == "app2"


def test_numbers_and_addresses_as_inventories_give_them_are_read():
    plan = plan_fleet(fleet(app1={"vcpus": "4", "memory_mb": "8000.0", "open_files_limit": "524288",
                                  "overrides": {"settings": {"api_workers": "2"}, "services": {"api": {"cpus": "1.5"}}}},
                            data={"address": " [10.0.0.21] "}),
                      {"object_storage": dict(S3, path_style="true", region="us-east-1", plugin_bucket="dify-plugins")})
    app1 = plan["hosts"]["app1"]
    assert app1["resources"]["vcpus"] == 4 and app1["resources"]["memory_mb"] == 8000
    assert app1["settings"]["api"]["server_worker_amount"] == 2 and app1["services"]["api"]["cpus"] == 1.5
    assert plan["hosts"]["data"]["address"] == "10.0.0.21"


def test_a_single_node_may_have_a_loopback_address_or_none():
    assert plan_fleet(single(address="127.0.0.1"))["hosts"]["h1"]["address"] == "127.0.0.1"
    assert plan_fleet(single())["hosts"]["h1"]["address"] is None


def test_every_overridable_setting_has_a_range():
    assert set(validate.SETTING_RANGES) == set(OVERRIDABLE_SETTINGS)


def _nginx_endpoint_pattern():
    with (ROOT / "roles" / "nginx_gateway" / "vars" / "main.yml").open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)["_nginx_gateway_endpoint_pattern"]


def test_ipv6_fleet_brackets_every_address_joined_with_a_port():
    hosts = [
        host("gw", 2, 4000, ["gateway"], address="2001:db8::2"),
        host("app1", 4, 8000, ["app"], address="2001:db8::11"),
        host("app2", 4, 8000, ["app"], address="2001:db8::12"),
        host("data", 4, 16000, ["database", "redis", "vector_store"], address="2001:db8::21"),
        host("gpu", 16, 64000, ["gpu_inference"], address="2001:DB8::41", gpus=[H100]),
    ]
    fleet_plan = plan_fleet(hosts, {"object_storage": S3})["fleet"]
    upstreams = fleet_plan["gateway_upstreams"]
    assert upstreams["api"] == ["[2001:db8::11]:5001", "[2001:db8::12]:5001"]
    assert upstreams["web"] == ["[2001:db8::11]:3000", "[2001:db8::12]:3000"]
    assert upstreams["plugin_daemon"] == ["[2001:db8::11]:5002"]
    assert fleet_plan["inference_endpoints"] == ["http://[2001:db8::41]:8000/v1"]
    assert fleet_plan["data_access"]["database"] == ["2001:db8::11/128", "2001:db8::12/128"]
    pattern = _nginx_endpoint_pattern()
    assert all(re.match(pattern, e) for endpoints in upstreams.values() for e in endpoints)


@pytest.mark.parametrize("address, joined", [("10.0.0.1", "10.0.0.1:80"), ("2001:db8::1", "[2001:db8::1]:80"),
                                             ("[2001:db8::1]", "[2001:db8::1]:80"), ("api", "api:80")])
def test_host_port(address, joined):
    assert validate.host_port(address, 80) == joined


ANY = st.recursive(
    st.none() | st.booleans() | st.integers(-10 ** 12, 10 ** 12) | st.floats(allow_nan=True)
    | st.text(max_size=12) | st.sampled_from(["true", "false", "4", "1e3", "nan", "::1", "10.0.0.1", "api", "cpus"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["services", "settings", "api", "memory_mb", "cpus", "context_tokens", "endpoint", "bucket",
                         "name", "index", "memory_total_mib", "x"]), inner, max_size=3),
    max_leaves=8)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key=st.sampled_from(validate.HOST_KEYS), value=ANY, storage_value=ANY, which=st.integers(0, 3))
def test_no_input_shape_escapes_as_a_raw_python_error(key, value, storage_value, which):
    hosts = fleet()
    hosts[which][key] = value
    try:
        plan_fleet(hosts, {"object_storage": storage_value})
    except PlanError as exc:
        assert exc.problems and all(isinstance(p, str) for p in exc.problems)

# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Checks of everything the sizing engine reads, before any host is planned or changed.

Each check takes a raw value as an inventory gives it (YAML, INI strings, facts), returns the clean
value, and appends one sentence per problem to ``problems``:

    host 'NAME': VARIABLE must be WHAT, got VALUE; FIX

VARIABLE is the inventory variable the operator sets (``dify_vcpus``,
``dify_sizing_overrides.services.api.memory_mb``, ...). No input shape raises anything but a
problem: strings where mappings belong, lists where numbers belong, and so on.
"""

from __future__ import annotations

import difflib
import ipaddress
import math
import re
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union
from urllib.parse import urlsplit

from ..stack import versions
from .catalog import COMPONENTS, POSTGRES_POOLER_CHOICES, PROFILES, SERVICE_SPECS, VECTOR_STORES
from .host import OVERRIDABLE_SETTINGS

# Bounds of a host: far above any machine sold today, low enough to catch a typo (a million vCPUs).
MAX_VCPUS = 1024
MIN_MEMORY_MB = 256
MAX_MEMORY_MB = 64 * 1024 * 1024  # 64 TiB
# The open-files limit of PID 1: at least Linux's default soft limit, at most its largest fs.nr_open.
MIN_OPEN_FILES = 1024
MAX_OPEN_FILES = 2147483584
MAX_GPU_MEMORY_MIB = 1024 * 1024  # 1 TiB per GPU
MAX_COMPUTE_CAPABILITY = 99.0
# Dify's images are built for these two (the names Ansible's facts give).
ARCHITECTURES = ("x86_64", "aarch64")

# Setting overrides: whole numbers in these ranges (both ends included).
SETTING_RANGES: Dict[str, Tuple[int, int]] = {
    "api_workers": (1, 128),
    "api_worker_connections": (1, 10000),
    "celery_workers": (1, 256),
    "nginx_worker_connections": (64, 65536),
    # The gateway role refuses fewer than 1 request per second (nginx_gateway's preflight).
    "rate_limit_rps": (1, 100000),
    "context_tokens": (512, 1048576),
}
SERVICE_OVERRIDE_KEYS = ("memory_mb", "cpus")
OVERRIDE_KEYS = ("services", "settings")
HOST_KEYS = ("name", "components", "vcpus", "memory_mb", "architecture", "address", "disk_kind", "gpus", "profile",
             "worker_beat", "overrides", "open_files_limit")
OPTION_KEYS = ("profile", "vector_store", "object_storage", "postgres_pooler", "version")
STORAGE_KEYS = ("endpoint", "bucket", "region", "path_style", "plugin_bucket")
# S3 bucket names: 3-63 lowercase letters, digits, dots and hyphens, a letter or digit at each end.
BUCKET_PATTERN = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
REGION_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
LOOPBACK_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")

# The strings (compared in lower case) and numbers Ansible's own boolean conversion accepts.
BOOLEAN_TRUE = frozenset(("y", "yes", "on", "1", "true", "t"))
BOOLEAN_FALSE = frozenset(("n", "no", "off", "0", "false", "f"))
BOOLEAN_WORDS = "true or false (yes/no, on/off, 1/0 also do)"

# The inventory variable behind each key of the engine's host input.
VARIABLES = {
    "vcpus": "dify_vcpus",
    "memory_mb": "dify_memory_mb",
    "architecture": "ansible_facts.architecture",
    "address": "dify_address (or ansible_host)",
    "disk_kind": "dify_disk_kind",
    "gpus": "dify_gpus",
    "profile": "dify_profile",
    "worker_beat": "dify_worker_beat",
    "overrides": "dify_sizing_overrides",
    "open_files_limit": "dify_open_files_limit",
}
FLEET = "the group 'dify'"


# --------------------------------------------------------------------------------------- wording

def describe(value: Any) -> str:
    """A value as a message shows it: strings quoted (so 'false' differs from false), mappings by
    their keys only (their values may be credentials), long values cut."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return "%r" % (float(value) if isinstance(value, float) else int(value))
    if isinstance(value, str):
        text = "%s" % value
        return repr(text if len(text) <= 60 else text[:57] + "...")
    if isinstance(value, Mapping):
        keys = ", ".join(sorted("%s" % k for k in value))
        return "a mapping (keys: %s)" % (keys[:60] or "none")
    if isinstance(value, (list, tuple)):
        text = "[%s]" % ", ".join(describe(v) for v in value[:5])
        return "a list %s" % (text if len(value) <= 5 else text[:-1] + ", ...]")
    return "a %s" % type(value).__name__


def refusal(host: str, variable: str, need: str, value: Any, fix: str) -> str:
    """One problem of one host's variable."""
    return "host '%s': %s must be %s, got %s; %s" % (host, variable, need, describe(value), fix)


def fleet_refusal(variable: str, need: str, value: Any, fix: str) -> str:
    """One problem of a fleet option (a variable of the group 'dify')."""
    return "%s (an option of %s) must be %s, got %s; %s" % (variable, FLEET, need, describe(value), fix)


def suggestion(key: Any, known: Sequence[str]) -> str:
    """' (did you mean 'x'?)' for a near miss among the known names, else ''."""
    close = difflib.get_close_matches("%s" % key, known, n=1, cutoff=0.6)
    return " (did you mean '%s'?)" % close[0] if close else ""


def unknown_keys(mapping: Mapping[Any, Any], known: Sequence[str], host: str, variable: str, fix: str,
                 problems: List[str]) -> None:
    """A problem for each key of ``mapping`` that is not one of ``known``."""
    for key in mapping:
        if key not in known:
            problems.append("host '%s': %s has an unknown key %s%s (known: %s); %s"
                            % (host, variable, describe(key), suggestion(key, known), ", ".join(known), fix))


# ------------------------------------------------------------------------------------- conversions

def as_bool(value: Any) -> Optional[bool]:
    """A boolean as Ansible reads one (true/false, yes/no, on/off, 1/0, y/n, t/f in any case,
    the numbers 1 and 0); None for anything else. Never Python's truthiness: 'false' is false."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return True if value == 1 else False if value == 0 else None
    if isinstance(value, str):
        word = value.strip().lower()
        if word in BOOLEAN_TRUE:
            return True
        if word in BOOLEAN_FALSE:
            return False
    return None


def as_number(value: Any) -> Optional[float]:
    """A finite number from a number or a numeric string; None otherwise (booleans included)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def as_int(value: Any) -> Optional[int]:
    """A whole number from an integer, an integral float or such a string ('4', '4.0', '1e3')."""
    number = as_number(value)
    if number is None or not number.is_integer():
        return None
    if isinstance(value, int):
        return int(value)
    return int(number)


def bracketed(address: str) -> str:
    """An address as it goes before ':port': IPv6 in brackets."""
    return "[%s]" % address if ":" in address and not address.startswith("[") else address


def host_port(address: str, port: int) -> str:
    """address:port, with an IPv6 address in brackets ([2001:db8::1]:5001)."""
    return "%s:%d" % (bracketed(address), port)


# ------------------------------------------------------------------------------------- host inputs

def checked_int(value: Any, host: str, variable: str, low: int, high: int, fix: str, problems: List[str]) -> Optional[int]:
    """A whole number from ``low`` to ``high``, or None after a problem."""
    number = as_int(value)
    if number is None or not low <= number <= high:
        problems.append(refusal(host, variable, "an integer from %d to %d" % (low, high), value, fix))
        return None
    return number


def checked_bool(value: Any, host: str, variable: str, fix: str, problems: List[str]) -> bool:
    """A boolean; unset (None) is false."""
    if value is None:
        return False
    flag = as_bool(value)
    if flag is None:
        problems.append(refusal(host, variable, "a boolean, " + BOOLEAN_WORDS, value, fix))
        return False
    return flag


def checked_choice(value: Any, host: str, variable: str, choices: Sequence[str], default: str, fix: str,
                   problems: List[str]) -> str:
    """One of ``choices``; unset (None or '') is ``default``."""
    if value is None or value == "":
        return default
    if not isinstance(value, str) or value not in choices:
        problems.append(refusal(host, variable, "one of " + ", ".join(choices), value,
                                fix + suggestion(value, choices) if isinstance(value, str) else fix))
        return default
    return "%s" % value


def checked_name(raw: Mapping[str, Any], index: int, problems: List[str]) -> str:
    """The host's name (its inventory name); 'hosts[i]' stands in for a missing one."""
    name = raw.get("name")
    if isinstance(name, str) and name.strip():
        return "%s" % name
    problems.append("hosts[%d]: the host's name (its inventory hostname) must be a non-empty string, got %s; "
                    "give every host in the group 'dify' a name" % (index, describe(name)))
    return "hosts[%d]" % index


def checked_components(value: Any, host: str, problems: List[str]) -> Tuple[str, ...]:
    """The components placed on the host, in the catalog's order."""
    fix = "put the host in the inventory groups dify_<component> of the components it runs"
    if not isinstance(value, (list, tuple)) or not value:
        problems.append(refusal(host, "its components", "a non-empty list of " + ", ".join(COMPONENTS), value,
                                fix + ", or take it out of the group dify"))
        return ()
    unknown = [c for c in value if not isinstance(c, str) or c not in COMPONENTS]
    if unknown:
        problems.append("host '%s': unknown component(s) %s (known: %s); %s"
                        % (host, ", ".join(describe(c) for c in unknown), ", ".join(COMPONENTS), fix))
    return tuple(c for c in COMPONENTS if c in value)


def checked_architecture(value: Any, host: str, problems: List[str]) -> str:
    """The CPU architecture from the facts (x86_64 when unknown)."""
    return checked_choice(value, host, VARIABLES["architecture"], ARCHITECTURES, "x86_64",
                          "Dify's images exist for x86_64 and aarch64 only: run the stack on such hosts", problems)


def address_problem(address: Union[ipaddress.IPv4Address, ipaddress.IPv6Address], in_fleet: bool) -> Optional[str]:
    """Why an IP cannot be where other hosts (in a fleet) or the host's own services reach it."""
    if address.is_unspecified:
        return "an unspecified address (any address of the host), which no host can connect to"
    if address.is_multicast:
        return "a multicast address, never one host's"
    if address.is_reserved and not address.is_loopback:
        return "a reserved or broadcast address, never one host's"
    if in_fleet and address.is_loopback:
        return "a loopback address: every other host reaching it reaches itself"
    if in_fleet and address.is_link_local:
        return "a link-local address, which only reaches the same link and needs a zone on IPv6"
    return None


def checked_address(value: Any, host: str, in_fleet: bool, problems: List[str]) -> Optional[str]:
    """The host's IP in its canonical form (IPv6 without brackets). A fleet needs one for every host,
    reachable from the others; a single node may have none, or a loopback one."""
    variable = VARIABLES["address"]
    fix = ("set dify_address to the IP address the other Dify hosts reach %s at" % host if in_fleet
           else "set dify_address to the host's IP address, or leave it and ansible_host unset")
    if value is None or value == "":
        if in_fleet:
            problems.append(refusal(host, variable, "an IP address in a fleet of several hosts", value, fix))
        return None
    if not isinstance(value, str):
        problems.append(refusal(host, variable, "an IP address (a string)", value, fix))
        return None
    text = value.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        problems.append(refusal(host, variable, "an IP address such as 10.0.0.11 or 2001:db8::11", value, fix))
        return None
    why = address_problem(address, in_fleet)
    if why:
        problems.append(refusal(host, variable, "an address other hosts can reach", value, "it is %s; %s" % (why, fix)))
        return None
    return str(address)


def shared_addresses(addresses: Sequence[Tuple[str, Optional[str]]]) -> List[str]:
    """A problem for each host whose address an earlier host already has."""
    first: Dict[str, str] = {}
    problems = []
    for name, address in addresses:
        if address is None:
            continue
        if address in first:
            problems.append("host '%s': %s must be the host's own, got %s, which host '%s' has too; give every host "
                            "its own address (dify_address when hosts share an SSH address)"
                            % (name, VARIABLES["address"], describe(address), first[address]))
        else:
            first[address] = name
    return problems


def _checked_gpu(gpu: Any, position: int, host: str, problems: List[str]) -> Optional[Dict[str, Any]]:
    variable = "%s[%d]" % (VARIABLES["gpus"], position)
    fix = "describe each GPU as difyops.dify.gpu_facts does, or unset dify_gpus to use the gathered facts"
    if not isinstance(gpu, Mapping):
        problems.append(refusal(host, variable, "a mapping with memory_total_mib", gpu, fix))
        return None
    before = len(problems)
    memory = checked_int(gpu.get("memory_total_mib"), host, variable + ".memory_total_mib", 1, MAX_GPU_MEMORY_MIB,
                         fix, problems)
    index = gpu.get("index", position)
    index = checked_int(index, host, variable + ".index", 0, 1023, fix, problems)
    capability = gpu.get("compute_capability")
    if capability not in (None, ""):
        number = as_number(capability)
        if number is None or not 0 < number <= MAX_COMPUTE_CAPABILITY:
            problems.append(refusal(host, variable + ".compute_capability", "a version such as 8.9", capability, fix))
    name = gpu.get("name")
    if name is not None and not isinstance(name, str):
        problems.append(refusal(host, variable + ".name", "a string", name, fix))
    if len(problems) > before:
        return None
    return dict(gpu, memory_total_mib=memory, index=index)


def checked_gpus(value: Any, host: str, problems: List[str]) -> Tuple[Dict[str, Any], ...]:
    """The host's GPUs: a list of mappings as difyops.dify.gpu_facts describes them."""
    if value is None or value == "":
        return ()
    if not isinstance(value, (list, tuple)):
        problems.append(refusal(host, VARIABLES["gpus"], "a list of GPUs (mappings with memory_total_mib)", value,
                                "describe each GPU as difyops.dify.gpu_facts does, or unset dify_gpus"))
        return ()
    gpus = [_checked_gpu(gpu, i, host, problems) for i, gpu in enumerate(value)]
    return tuple(g for g in gpus if g is not None)


def _checked_service_override(service: Any, override: Any, host: str, problems: List[str]) -> Dict[str, float]:
    variable = "%s.services.%s" % (VARIABLES["overrides"], service)
    fix = "give memory_mb (MiB) and/or cpus as positive numbers"
    if not isinstance(override, Mapping):
        problems.append(refusal(host, variable, "a mapping of memory_mb and/or cpus", override, fix))
        return {}
    unknown_keys(override, SERVICE_OVERRIDE_KEYS, host, variable, fix, problems)
    limits = {"memory_mb": (MAX_MEMORY_MB, "MiB"), "cpus": (float(MAX_VCPUS), "CPUs")}
    clean = {}
    for key, (high, unit) in limits.items():
        if key not in override:
            continue
        number = as_number(override[key])
        if number is None or not 0 < number <= high:
            problems.append(refusal(host, "%s.%s" % (variable, key), "a number above 0 and at most %g (%s)" % (high, unit),
                                    override[key], "fix or remove the override"))
        else:
            clean[key] = number
    return clean


def checked_overrides(value: Any, host: str, problems: List[str]) -> Tuple[Dict[str, Dict[str, float]], Dict[str, int]]:
    """dify_sizing_overrides: ``services`` (service -> memory_mb, cpus) and ``settings`` (name ->
    whole number in its range), as clean numbers."""
    variable = VARIABLES["overrides"]
    if value is None or value == "":
        return {}, {}
    if not isinstance(value, Mapping):
        problems.append(refusal(host, variable, "a mapping with the keys services and/or settings", value,
                                "write it as {services: {api: {memory_mb: 4096}}, settings: {api_workers: 4}}"))
        return {}, {}
    unknown_keys(value, OVERRIDE_KEYS, host, variable, "an unknown key would be silently ignored", problems)
    services: Dict[str, Dict[str, float]] = {}
    raw_services = value.get("services")
    if isinstance(raw_services, Mapping):
        for service, override in raw_services.items():
            if service not in SERVICE_SPECS:
                problems.append("host '%s': %s.services has an unknown service %s%s (known: %s); name a Compose "
                                "service of the stack" % (host, variable, describe(service),
                                                          suggestion(service, list(SERVICE_SPECS)),
                                                          ", ".join(SERVICE_SPECS)))
                continue
            services["%s" % service] = _checked_service_override(service, override, host, problems)
    elif raw_services not in (None, ""):
        problems.append(refusal(host, variable + ".services", "a mapping of service -> {memory_mb, cpus}",
                                raw_services, "write it as services: {api: {memory_mb: 4096, cpus: 2}}"))
    settings: Dict[str, int] = {}
    raw_settings = value.get("settings")
    if isinstance(raw_settings, Mapping):
        unknown_keys(raw_settings, OVERRIDABLE_SETTINGS, host, variable + ".settings",
                     "an unknown setting would be silently ignored", problems)
        for key in OVERRIDABLE_SETTINGS:
            if key in raw_settings:
                low, high = SETTING_RANGES[key]
                number = checked_int(raw_settings[key], host, "%s.settings.%s" % (variable, key), low, high,
                                     "fix or remove the override", problems)
                if number is not None:
                    settings[key] = number
    elif raw_settings not in (None, ""):
        problems.append(refusal(host, variable + ".settings", "a mapping of setting -> integer", raw_settings,
                                "write it as settings: {api_workers: 4}"))
    return services, settings


def placed_overrides(host: str, overridden: Sequence[str], services: Sequence[str]) -> List[str]:
    """A problem for each service override of a service the host does not run."""
    return ["host '%s': %s.services.%s overrides a service this host does not run (its services: %s); remove it, "
            "or set it on the host that runs %s" % (host, VARIABLES["overrides"], s, ", ".join(services) or "none", s)
            for s in overridden if s not in services]


# ------------------------------------------------------------------------------------ fleet options

def checked_storage(value: Any, problems: List[str]) -> bool:
    """dify_object_storage: a mapping checked in full (what the dify_stack role needs of it), or
    unset/false/{} for none. True means the caller checked it elsewhere (the filter's own API).
    Returns whether storage is given: a refused one counts, so that its own problem is the only one."""
    variable = "dify_object_storage"
    need = "a mapping with endpoint and bucket (false or {} for none)"
    fix = ("write it as {endpoint: https://s3.example.com, bucket: dify}, with the keys in dify_secrets_given "
           "as S3_ACCESS_KEY and S3_SECRET_KEY")
    if value is None or value == "" or as_bool(value) is False:
        return False
    if value is True:
        return True
    if not isinstance(value, Mapping):
        problems.append(fleet_refusal(variable, need, value, fix))
        return True
    if not value:
        return False
    for key in value:
        if key not in STORAGE_KEYS:
            secretish = any(word in ("%s" % key).lower() for word in ("key", "secret", "password", "token"))
            problems.append("%s (an option of %s) has an unknown key %s%s (known: %s); %s"
                            % (variable, FLEET, describe(key), suggestion(key, STORAGE_KEYS), ", ".join(STORAGE_KEYS),
                               "credentials go in dify_secrets_given as S3_ACCESS_KEY and S3_SECRET_KEY" if secretish
                               else "remove it"))
    _check_endpoint(value.get("endpoint"), problems)
    for key in ("bucket", "plugin_bucket"):
        bucket = value.get(key)
        if (key == "bucket" or bucket not in (None, "")) and not (isinstance(bucket, str) and BUCKET_PATTERN.match(bucket)):
            problems.append(fleet_refusal("%s.%s" % (variable, key), "an S3 bucket name (3-63 lowercase letters, "
                                          "digits, dots and hyphens)", bucket, "name an existing bucket"))
    region = value.get("region")
    if region not in (None, "") and not (isinstance(region, str) and REGION_PATTERN.match(region)):
        problems.append(fleet_refusal(variable + ".region", "a region name such as us-east-1", region,
                                      "give the store's region, or leave it unset for us-east-1"))
    if value.get("path_style") is not None and as_bool(value.get("path_style")) is None:
        problems.append(fleet_refusal(variable + ".path_style", "a boolean, " + BOOLEAN_WORDS, value.get("path_style"),
                                      "true for http://host/bucket addressing (MinIO and most stores), false for "
                                      "http://bucket.host"))
    return True


def _check_endpoint(endpoint: Any, problems: List[str]) -> None:
    variable = "dify_object_storage.endpoint"
    fix = "give the URL every app host reaches the store at, such as https://s3.example.com"
    if not isinstance(endpoint, str) or not endpoint:
        problems.append(fleet_refusal(variable, "an http(s) URL", endpoint, fix))
        return
    try:
        parts = urlsplit(endpoint)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        problems.append(fleet_refusal(variable, "an http(s) URL", endpoint, fix))
        return
    if parts.scheme not in ("http", "https") or not host or parts.query or parts.fragment or port == 0:
        problems.append(fleet_refusal(variable, "an http(s) URL with a host and no query", endpoint, fix))
    elif parts.username is not None or parts.password is not None:
        problems.append(fleet_refusal(variable, "a URL without credentials", "%s://...@%s" % (parts.scheme, host),
                                      "credentials go in dify_secrets_given as S3_ACCESS_KEY and S3_SECRET_KEY"))
    elif unusable_host(host):
        problems.append(fleet_refusal(variable, "a URL of a host the app containers can reach", endpoint,
                                      "%s leads every container back to itself; %s" % (host, fix)))


def unusable_host(host: str) -> bool:
    """Loopback or unspecified (a name or an address, IPv6 with or without brackets): a host that
    leads every other machine back to itself."""
    name = host.strip("[]").lower()
    if name in LOOPBACK_NAMES or name.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


def checked_options(options: Any, problems: List[str]) -> Dict[str, Any]:
    """The fleet options: profile (dify_profile_default), vector_store (dify_vector_store),
    object_storage (dify_object_storage, reduced to whether it is configured), postgres_pooler
    (dify_postgres_pooler) and version (dify_stack_version, the Dify version deployed)."""
    clean: Dict[str, Any] = {"profile": "auto", "vector_store": "auto", "object_storage": False, "postgres_pooler": "auto",
                             "version": versions.DEFAULT_VERSION}
    if options is None:
        return clean
    if not isinstance(options, Mapping):
        problems.append("the plan's options must be a mapping of %s, got %s; pass "
                        "{'profile': ..., 'vector_store': ..., 'object_storage': ..., 'postgres_pooler': ...}"
                        % (", ".join(OPTION_KEYS), describe(options)))
        return clean
    for key in options:
        if key not in OPTION_KEYS:
            problems.append("the plan's options have an unknown key %s%s (known: %s); remove it"
                            % (describe(key), suggestion(key, OPTION_KEYS), ", ".join(OPTION_KEYS)))
    for key, variable, choices in (("profile", "dify_profile_default", ("auto",) + PROFILES),
                                   ("vector_store", "dify_vector_store", ("auto",) + VECTOR_STORES),
                                   ("postgres_pooler", "dify_postgres_pooler", POSTGRES_POOLER_CHOICES),
                                   ("version", "dify_stack_version", versions.SUPPORTED)):
        value = options.get(key)
        if value is None or value == "":
            continue
        if isinstance(value, str) and value in choices:
            clean[key] = "%s" % value
        else:
            problems.append(fleet_refusal(variable, "one of " + ", ".join(choices), value,
                                          "choose one of them" + (suggestion(value, choices) if isinstance(value, str) else "")))
    clean["object_storage"] = checked_storage(options.get("object_storage"), problems)
    return clean

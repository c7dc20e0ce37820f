# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Describe a host's NVIDIA GPUs without ever failing or hanging on a host that has none.

Three sources, tried in order by `describe_gpus`:

1. NVML through the `pynvml` module (package nvidia-ml-py), passed in by the caller so that tests
   can hand in a stand-in;
2. `nvidia-smi --query-gpu ... --format=csv,noheader,nounits`, only when the NVML library or the
   Python binding is missing;
3. a PCI scan of sysfs, always, which can tell "an NVIDIA device is present but has no driver".

Every outcome is data: a host without GPU, driver or library gets `count: 0` and a machine-readable
`reason`; each source tried is listed under `attempts`. No Ansible imports: the module wraps this.
"""

from __future__ import annotations

import os
import re
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from .bounded import CallTimeout, bounded
from .sysfs import parse_numa_node, read_attribute

NVIDIA_PCI_VENDOR = "0x10de"
# PCI classes 0x0300 (VGA controller) and 0x0302 (3D controller) are GPUs; NVIDIA's audio and USB
# functions on the same card are not.
GPU_PCI_CLASSES = ("0x0300", "0x0302")

SMI_FIELDS = ("index", "uuid", "name", "memory.total", "memory.free", "compute_cap",
              "mig.mode.current", "pci.bus_id", "power.limit", "driver_version")
# Drivers older than 510 do not know compute_cap; they are asked again without it.
SMI_FIELDS_OLD = tuple(f for f in SMI_FIELDS if f != "compute_cap")
SMI_MISSING = ("[N/A]", "[Not Supported]", "N/A", "[Unknown Error]", "")

MIB = 1024 * 1024

Runner = Callable[[List[str]], Tuple[int, str, str]]


def _text(value: Any) -> str:
    """NVML strings are bytes in old bindings and str in new ones."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def snake_case(name: str) -> str:
    """'DriverNotLoaded' -> 'driver_not_loaded'."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def nvml_reason(exc: BaseException) -> str:
    """A stable reason code from a pynvml exception: NVMLError_DriverNotLoaded -> nvml_driver_not_loaded."""
    name = type(exc).__name__
    if name.startswith("NVMLError_"):
        return "nvml_" + snake_case(name[len("NVMLError_"):])
    return "nvml_error"


def nvml_detail(exc: BaseException) -> str:
    code = getattr(exc, "value", None)
    text = str(exc) or type(exc).__name__
    if code is None:
        return "%s: %s" % (type(exc).__name__, text)
    return "%s (code %s): %s" % (type(exc).__name__, code, text)


def attempt(backend: str, result: str, reason: Optional[str] = None, detail: Optional[str] = None) -> Dict[str, Any]:
    return {"backend": backend, "result": result, "reason": reason, "detail": detail}


def sysfs_bus_id(nvml_bus_id: str) -> str:
    """NVML writes '00000000:3B:00.0' (8-digit domain); sysfs names it '0000:3b:00.0'."""
    bus_id = nvml_bus_id.strip().lower()
    domain, _sep, rest = bus_id.partition(":")
    if rest and len(domain) > 4:
        domain = domain[-4:]
    return "%s:%s" % (domain, rest) if rest else bus_id


def cpu_list_from_masks(masks: Sequence[int], bits: int = 64) -> List[int]:
    """NVML's CPU affinity is an array of 64-bit masks; turn it into CPU numbers."""
    cpus = []
    for word, mask in enumerate(masks):
        mask = int(mask)
        for bit in range(bits):
            if mask >> bit & 1:
                cpus.append(word * bits + bit)
    return cpus


def numa_node_from_sysfs(bus_id: str, sysfs: str = "/sys") -> Optional[int]:
    return parse_numa_node(read_attribute(os.path.join(sysfs, "bus", "pci", "devices", sysfs_bus_id(bus_id), "numa_node")))


def parse_cpu_list(text: Optional[str]) -> List[int]:
    """'0-3,8,10-11' -> [0, 1, 2, 3, 8, 10, 11]."""
    cpus: List[int] = []
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            low, high = part.split("-", 1)
            cpus.extend(range(int(low), int(high) + 1))
        else:
            cpus.append(int(part))
    return cpus


def scan_pci(sysfs: str = "/sys") -> List[Dict[str, Any]]:
    """NVIDIA GPUs on the PCI bus, with the kernel driver bound to each (None when unbound)."""
    root = os.path.join(sysfs, "bus", "pci", "devices")
    try:
        entries = sorted(os.listdir(root))
    except OSError:
        return []
    found = []
    for bus_id in entries:
        device_dir = os.path.join(root, bus_id)
        if read_attribute(os.path.join(device_dir, "vendor")) != NVIDIA_PCI_VENDOR:
            continue
        pci_class = read_attribute(os.path.join(device_dir, "class")) or ""
        if not pci_class.startswith(GPU_PCI_CLASSES):
            continue
        driver_link = os.path.join(device_dir, "driver")
        driver = os.path.basename(os.path.realpath(driver_link)) if os.path.islink(driver_link) else None
        found.append({
            "pci_bus_id": bus_id,
            "device_id": read_attribute(os.path.join(device_dir, "device")),
            "class": pci_class,
            "driver": driver,
            "numa_node": parse_numa_node(read_attribute(os.path.join(device_dir, "numa_node"))),
            "cpu_affinity": parse_cpu_list(read_attribute(os.path.join(device_dir, "local_cpulist"))),
        })
    return found


# ---------------------------------------------------------------------------------------------- NVML

def _optional(nvml: Any, func_name: str, *args: Any) -> Any:
    """Call an NVML query that a device or an older binding may not support; None when it cannot."""
    func = getattr(nvml, func_name, None)
    if func is None:
        return None
    try:
        return func(*args)
    except getattr(nvml, "NVMLError", Exception):
        return None


def _mig_mode(nvml: Any, handle: Any) -> Tuple[str, Optional[str]]:
    modes = _optional(nvml, "nvmlDeviceGetMigMode", handle)
    if modes is None:
        return "unsupported", None
    enabled = getattr(nvml, "NVML_DEVICE_MIG_ENABLE", 1)
    current, pending = modes
    return ("enabled" if current == enabled else "disabled"), ("enabled" if pending == enabled else "disabled")


def _nvml_device(nvml: Any, index: int, vcpus: int, sysfs: str) -> Dict[str, Any]:
    handle = nvml.nvmlDeviceGetHandleByIndex(index)
    memory = nvml.nvmlDeviceGetMemoryInfo(handle)
    capability = _optional(nvml, "nvmlDeviceGetCudaComputeCapability", handle)
    pci = _optional(nvml, "nvmlDeviceGetPciInfo", handle)
    bus_id = sysfs_bus_id(_text(pci.busId)) if pci is not None else None
    power_mw = _optional(nvml, "nvmlDeviceGetPowerManagementLimit", handle)
    masks = _optional(nvml, "nvmlDeviceGetCpuAffinity", handle, max(1, (vcpus + 63) // 64))
    numa = _optional(nvml, "nvmlDeviceGetNumaNodeId", handle)
    if numa is None and bus_id:
        numa = numa_node_from_sysfs(bus_id, sysfs)
    mig_mode, mig_pending = _mig_mode(nvml, handle)
    return {
        "index": index,
        "uuid": _text(nvml.nvmlDeviceGetUUID(handle)),
        "name": _text(nvml.nvmlDeviceGetName(handle)),
        "memory_total_mib": int(memory.total) // MIB,
        "memory_free_mib": int(memory.free) // MIB,
        "compute_capability": "%d.%d" % tuple(capability) if capability else None,
        "mig_mode": mig_mode,
        "mig_mode_pending": mig_pending,
        "pci_bus_id": bus_id,
        "power_limit_w": round(power_mw / 1000.0, 1) if power_mw is not None else None,
        "cpu_affinity": cpu_list_from_masks(masks) if masks is not None else [],
        "numa_node": int(numa) if numa is not None and int(numa) >= 0 else None,
    }


def _cuda_version(raw: Any) -> Optional[str]:
    if raw is None:
        return None
    raw = int(raw)
    return "%d.%d" % (raw // 1000, raw % 1000 // 10)


def query_nvml(nvml: Any, vcpus: int = 1, sysfs: str = "/sys") -> Dict[str, Any]:
    """Everything NVML says about the host's GPUs. NVML is shut down whatever happens after init."""
    nvml.nvmlInit()
    try:
        count = int(nvml.nvmlDeviceGetCount())
        return {
            "driver_version": _text(nvml.nvmlSystemGetDriverVersion()),
            "cuda_driver_version": _cuda_version(_optional(nvml, "nvmlSystemGetCudaDriverVersion_v2")
                                                 or _optional(nvml, "nvmlSystemGetCudaDriverVersion")),
            "devices": [_nvml_device(nvml, index, vcpus, sysfs) for index in range(count)],
        }
    finally:
        try:
            nvml.nvmlShutdown()
        except Exception:  # pylint: disable=broad-except
            pass  # a failed shutdown after a successful query changes nothing for the facts


# ----------------------------------------------------------------------------------------- nvidia-smi

def _smi_value(raw: str) -> Optional[str]:
    value = raw.strip()
    return None if value in SMI_MISSING else value


def _smi_number(raw: str) -> Optional[float]:
    value = _smi_value(raw)
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def parse_nvidia_smi(output: str, fields: Sequence[str] = SMI_FIELDS) -> Dict[str, Any]:
    """Parse `nvidia-smi --query-gpu=<fields> --format=csv,noheader,nounits` output."""
    devices = []
    driver = None
    for line in output.splitlines():
        if not line.strip():
            continue
        row = dict(zip(fields, [cell.strip() for cell in line.split(",")]))
        total = _smi_number(row.get("memory.total", ""))
        free = _smi_number(row.get("memory.free", ""))
        power = _smi_number(row.get("power.limit", ""))
        mig = (_smi_value(row.get("mig.mode.current", "")) or "").lower()
        bus_id = _smi_value(row.get("pci.bus_id", ""))
        driver = _smi_value(row.get("driver_version", "")) or driver
        devices.append({
            "index": int(row["index"]),
            "uuid": _smi_value(row.get("uuid", "")),
            "name": _smi_value(row.get("name", "")),
            "memory_total_mib": int(total) if total is not None else 0,
            "memory_free_mib": int(free) if free is not None else None,
            "compute_capability": _smi_value(row.get("compute_cap", "")),
            "mig_mode": mig if mig in ("enabled", "disabled") else "unsupported",
            "mig_mode_pending": None,
            "pci_bus_id": sysfs_bus_id(bus_id) if bus_id else None,
            "power_limit_w": power,
            "cpu_affinity": [],
            "numa_node": None,
        })
    return {"driver_version": driver, "cuda_driver_version": None, "devices": devices}


def query_nvidia_smi(binary: str, run: Runner) -> Dict[str, Any]:
    """Run nvidia-smi; raise RuntimeError with its own words when it fails."""
    for fields in (SMI_FIELDS, SMI_FIELDS_OLD):
        rc, out, err = run([binary, "--query-gpu=" + ",".join(fields), "--format=csv,noheader,nounits"])
        if rc == 0:
            return parse_nvidia_smi(out, fields)
        message = (out.strip() or err.strip() or "no output").splitlines()[0]
        if "is not a valid field" not in message:
            raise RuntimeError("nvidia-smi exited %d: %s" % (rc, message))
    raise RuntimeError("nvidia-smi does not know the queried fields")


# ------------------------------------------------------------------------------------------ the facts

def _enrich_from_pci(devices: List[Dict[str, Any]], pci: List[Dict[str, Any]]) -> None:
    """nvidia-smi knows neither NUMA node nor CPU affinity; sysfs does."""
    by_bus = {entry["pci_bus_id"]: entry for entry in pci}
    for device in devices:
        entry = by_bus.get(device.get("pci_bus_id") or "")
        if entry:
            if device.get("numa_node") is None:
                device["numa_node"] = entry["numa_node"]
            if not device.get("cpu_affinity"):
                device["cpu_affinity"] = entry["cpu_affinity"]


def _pci_reason(pci: List[Dict[str, Any]]) -> Tuple[str, str]:
    if not pci:
        return "no_nvidia_device", "no NVIDIA GPU on the PCI bus"
    bound = [entry for entry in pci if entry["driver"] in ("nvidia", "nvidia-gpu")]
    if bound:
        return ("nvidia_driver_without_nvml",
                "%d NVIDIA GPU(s) bound to the nvidia driver, but neither NVML nor nvidia-smi is installed" % len(bound))
    drivers = sorted({entry["driver"] or "none" for entry in pci})
    return ("nvidia_device_without_driver",
            "%d NVIDIA GPU(s) present, no NVIDIA driver bound (driver: %s)" % (len(pci), ", ".join(drivers)))


def describe_gpus(nvml: Any = None, nvml_import_error: Optional[str] = None, nvidia_smi: Optional[str] = None,
                  run: Optional[Runner] = None, backend: str = "auto", timeout: float = 15.0, vcpus: int = 1,
                  sysfs: str = "/sys") -> Dict[str, Any]:
    """The `gpus` fact. `nvml` is the imported pynvml module or None (then `nvml_import_error` says
    why); `nvidia_smi` is the tool's path or None; `run` runs a command and returns (rc, out, err),
    raising CallTimeout when it overruns."""
    attempts: List[Dict[str, Any]] = []
    pci = scan_pci(sysfs)
    result: Optional[Dict[str, Any]] = None
    used = "none"
    failure: Optional[Tuple[str, str]] = None
    fall_back_to_smi = backend in ("auto", "nvidia_smi")

    if backend in ("auto", "nvml"):
        if nvml is None:
            attempts.append(attempt("nvml", "unavailable", "nvml_binding_missing",
                                    nvml_import_error or "the pynvml module (nvidia-ml-py) is not installed"))
        else:
            try:
                result = bounded("NVML", timeout, query_nvml, nvml, vcpus, sysfs)
                used = "nvml"
                attempts.append(attempt("nvml", "ok"))
            except CallTimeout as exc:
                failure = ("nvml_timeout", str(exc))
                attempts.append(attempt("nvml", "failed", *failure))
                fall_back_to_smi = False
            except Exception as exc:  # pylint: disable=broad-except
                reason = nvml_reason(exc)
                if reason == "nvml_library_not_found":
                    attempts.append(attempt("nvml", "unavailable", reason, nvml_detail(exc)))
                    if backend == "nvml":
                        failure = (reason, nvml_detail(exc))  # asked for NVML alone: its absence is the answer
                else:
                    failure = (reason, nvml_detail(exc))
                    attempts.append(attempt("nvml", "failed", *failure))
                    fall_back_to_smi = False  # nvidia-smi sits on the same library and fails the same way

    if result is None and fall_back_to_smi and backend != "pci":
        if not nvidia_smi or run is None:
            attempts.append(attempt("nvidia_smi", "unavailable", "nvidia_smi_missing", "nvidia-smi is not installed"))
        else:
            try:
                result = query_nvidia_smi(nvidia_smi, run)
                used = "nvidia_smi"
                attempts.append(attempt("nvidia_smi", "ok"))
            except CallTimeout as exc:
                failure = ("nvidia_smi_timeout", str(exc))
                attempts.append(attempt("nvidia_smi", "failed", *failure))
            except Exception as exc:  # pylint: disable=broad-except
                failure = ("nvidia_smi_failed", str(exc))
                attempts.append(attempt("nvidia_smi", "failed", *failure))

    if result is not None:
        _enrich_from_pci(result["devices"], pci)
        reason, detail = (None, None) if result["devices"] else ("no_gpu_reported", "%s reports no GPU" % used)
    else:
        result = {"driver_version": None, "cuda_driver_version": None, "devices": []}
        pci_reason = _pci_reason(pci)
        attempts.append(attempt("pci", "ok", *pci_reason))
        reason, detail = failure or pci_reason
        if failure and pci:
            detail += "; PCI: " + pci_reason[1]

    return {
        "count": len(result["devices"]),
        "backend": used,
        "reason": reason,
        "reason_detail": detail,
        "driver_version": result["driver_version"],
        "cuda_driver_version": result["cuda_driver_version"],
        "devices": result["devices"],
        "pci_devices": pci,
        "attempts": attempts,
    }

# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""GPU facts. This machine has no NVIDIA GPU, so hardware that is not here is played by FakeNVML,
a stand-in for the pynvml module with the same function names, return shapes and (real pynvml)
exception classes. The no-GPU paths also run against the real pynvml binding, whose library is
absent here, and the molecule scenario `gpu_facts` runs them against Debian's real libnvidia-ml1."""

from __future__ import annotations

import os
import subprocess
import time
from types import SimpleNamespace
from typing import Any, Dict, List

import pynvml
import pytest

from ansible_collections.difyops.dify.plugins.module_utils.bounded import CallTimeout, bounded, run_bounded
from ansible_collections.difyops.dify.plugins.module_utils.gpu_inventory import (
    cpu_list_from_masks, describe_gpus, parse_cpu_list, parse_nvidia_smi, snake_case, sysfs_bus_id)
from ansible_collections.difyops.dify.plugins.plugin_utils.sizing.gpu import usable_gpus

GIB = 1024 ** 3


class FakeNVML:
    """Stands in for pynvml on hardware this machine does not have (see the module docstring)."""

    NVMLError = pynvml.NVMLError
    NVML_DEVICE_MIG_ENABLE = pynvml.NVML_DEVICE_MIG_ENABLE

    def __init__(self, gpus: List[Dict[str, Any]], init_error: int = 0, init_delay: float = 0.0,
                 driver: str = "550.127.05", cuda: int = 12040) -> None:
        self.gpus = gpus
        self.init_error = init_error
        self.init_delay = init_delay
        self.driver = driver
        self.cuda = cuda
        self.initialised = False
        self.shutdowns = 0

    def nvmlInit(self) -> None:
        time.sleep(self.init_delay)
        if self.init_error:
            raise pynvml.NVMLError(self.init_error)
        self.initialised = True

    def nvmlShutdown(self) -> None:
        self.shutdowns += 1
        self.initialised = False

    def _ready(self) -> None:
        if not self.initialised:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_UNINITIALIZED)

    def nvmlSystemGetDriverVersion(self) -> str:
        self._ready()
        return self.driver

    def nvmlSystemGetCudaDriverVersion_v2(self) -> int:
        self._ready()
        return self.cuda

    def nvmlDeviceGetCount(self) -> int:
        self._ready()
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> Dict[str, Any]:
        self._ready()
        return self.gpus[index]

    @staticmethod
    def nvmlDeviceGetName(handle: Dict[str, Any]) -> bytes:
        return handle["name"].encode()  # older bindings return bytes

    @staticmethod
    def nvmlDeviceGetUUID(handle: Dict[str, Any]) -> str:
        return handle["uuid"]

    @staticmethod
    def nvmlDeviceGetMemoryInfo(handle: Dict[str, Any]) -> Any:
        if handle.get("memory_error"):
            raise pynvml.NVMLError(pynvml.NVML_ERROR_GPU_IS_LOST)
        return SimpleNamespace(total=handle["total_gib"] * GIB, free=handle["free_gib"] * GIB, used=0)

    @staticmethod
    def nvmlDeviceGetCudaComputeCapability(handle: Dict[str, Any]) -> Any:
        return handle["cc"]

    @staticmethod
    def nvmlDeviceGetMigMode(handle: Dict[str, Any]) -> Any:
        if "mig" not in handle:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return handle["mig"]

    @staticmethod
    def nvmlDeviceGetPciInfo(handle: Dict[str, Any]) -> Any:
        return SimpleNamespace(busId=handle["bus"].encode())

    @staticmethod
    def nvmlDeviceGetPowerManagementLimit(handle: Dict[str, Any]) -> int:
        return handle["power_mw"]

    @staticmethod
    def nvmlDeviceGetCpuAffinity(handle: Dict[str, Any], size: int) -> List[int]:
        assert size >= 1
        return handle["affinity"]

    @staticmethod
    def nvmlDeviceGetNumaNodeId(handle: Dict[str, Any]) -> int:
        if handle.get("numa") is None:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return handle["numa"]


A100_MIG = {"name": "NVIDIA A100-SXM4-80GB", "uuid": "GPU-aaaa", "total_gib": 80, "free_gib": 79, "cc": (8, 0),
            "mig": (1, 1), "bus": "00000000:07:00.0", "power_mw": 400000, "affinity": [0xFFFF], "numa": 0}
A100 = dict(A100_MIG, uuid="GPU-bbbb", mig=(0, 0), bus="00000000:0F:00.0")
L4 = {"name": "NVIDIA L4", "uuid": "GPU-cccc", "total_gib": 24, "free_gib": 23, "cc": (8, 9), "bus": "00000000:3B:00.0",
      "power_mw": 72000, "affinity": [0xFFFF0000, 0x1], "numa": None}


def runner(rc: int = 0, out: str = "", err: str = "", calls: List[List[str]] = None):
    def run(argv: List[str]):
        if calls is not None:
            calls.append(argv)
        return rc, out, err
    return run


def no_pci(tmp_path) -> str:
    (tmp_path / "bus" / "pci" / "devices").mkdir(parents=True)
    return str(tmp_path)


def pci_fixture(tmp_path, devices: List[Dict[str, str]]) -> str:
    """A sysfs tree with the given PCI functions; a 'driver' key links a driver."""
    root = tmp_path / "sys"
    for device in devices:
        node = root / "bus" / "pci" / "devices" / device["bus"]
        node.mkdir(parents=True)
        (node / "vendor").write_text(device["vendor"] + "\n")
        (node / "device").write_text(device.get("device", "0x27b8") + "\n")
        (node / "class").write_text(device["class"] + "\n")
        (node / "numa_node").write_text(device.get("numa", "-1") + "\n")
        (node / "local_cpulist").write_text(device.get("cpus", "0-3") + "\n")
        if device.get("driver"):
            driver_dir = root / "bus" / "pci" / "drivers" / device["driver"]
            driver_dir.mkdir(parents=True, exist_ok=True)
            os.symlink(str(driver_dir), str(node / "driver"))
    (root / "bus" / "pci" / "devices").mkdir(parents=True, exist_ok=True)
    return str(root)


def test_two_gpus_one_with_mig_and_mixed_models(tmp_path):
    nvml = FakeNVML([A100_MIG, A100, L4])
    facts = describe_gpus(nvml=nvml, sysfs=no_pci(tmp_path), vcpus=80)
    assert facts["count"] == 3 and facts["backend"] == "nvml" and facts["reason"] is None
    assert facts["driver_version"] == "550.127.05" and facts["cuda_driver_version"] == "12.4"
    mig, whole, l4 = facts["devices"]
    assert mig["mig_mode"] == "enabled" and mig["mig_mode_pending"] == "enabled"
    assert whole["mig_mode"] == "disabled" and l4["mig_mode"] == "unsupported"
    assert mig["memory_total_mib"] == 80 * 1024 and mig["memory_free_mib"] == 79 * 1024
    assert l4["name"] == "NVIDIA L4" and l4["compute_capability"] == "8.9" and l4["power_limit_w"] == 72.0
    assert l4["pci_bus_id"] == "0000:3b:00.0"
    assert l4["cpu_affinity"] == list(range(16, 32)) + [64] and l4["numa_node"] is None
    assert mig["numa_node"] == 0 and mig["cpu_affinity"] == list(range(16))
    assert nvml.shutdowns == 1 and not nvml.initialised
    # The facts feed the sizing engine as they are: the MIG device is left to its users and of the
    # mixed models the larger group is taken.
    assigned, notes = usable_gpus(facts["devices"])
    assert [g["uuid"] for g in assigned] == ["GPU-bbbb"]
    assert any("MIG" in note for note in notes) and any("NVIDIA L4" in note for note in notes)


@pytest.mark.parametrize("code, reason", [
    (pynvml.NVML_ERROR_DRIVER_NOT_LOADED, "nvml_driver_not_loaded"),
    (pynvml.NVML_ERROR_UNKNOWN, "nvml_unknown"),
    (pynvml.NVML_ERROR_NO_PERMISSION, "nvml_no_permission"),
])
def test_nvml_init_failure_gives_count_zero_and_names_the_error(tmp_path, code, reason):
    calls: List[List[str]] = []
    nvml = FakeNVML([L4], init_error=code)
    facts = describe_gpus(nvml=nvml, nvidia_smi="/usr/bin/nvidia-smi", run=runner(calls=calls), sysfs=no_pci(tmp_path))
    assert facts["count"] == 0 and facts["devices"] == []
    assert facts["reason"] == reason
    assert "code %d" % code in facts["reason_detail"]
    assert calls == [], "nvidia-smi uses the same library; it is not asked when NVML itself failed"
    assert [a["backend"] for a in facts["attempts"]] == ["nvml", "pci"]


def test_failure_while_querying_a_device_still_shuts_nvml_down(tmp_path):
    nvml = FakeNVML([dict(L4, memory_error=True)])
    facts = describe_gpus(nvml=nvml, sysfs=no_pci(tmp_path))
    assert facts["count"] == 0 and facts["reason"] == "nvml_gpu_is_lost"
    assert nvml.shutdowns == 1


def test_hung_nvml_is_given_up_at_the_deadline(tmp_path):
    nvml = FakeNVML([L4], init_delay=5)
    started = time.monotonic()
    facts = describe_gpus(nvml=nvml, timeout=0.2, sysfs=no_pci(tmp_path))
    assert time.monotonic() - started < 3
    assert facts["count"] == 0 and facts["reason"] == "nvml_timeout"


SMI_OUTPUT = ("0, GPU-cccc, NVIDIA L4, 23034, 22500, 8.9, [N/A], 00000000:3B:00.0, 72.00, 550.163.01\n"
              "1, GPU-dddd, NVIDIA H100 80GB HBM3, 81559, 81000, 9.0, Enabled, 00000000:9A:00.0, 700.00, 550.163.01\n")


def test_nvidia_smi_is_used_when_the_library_is_missing(tmp_path):
    calls: List[List[str]] = []
    sysfs = pci_fixture(tmp_path, [{"bus": "0000:3b:00.0", "vendor": "0x10de", "class": "0x030200", "driver": "nvidia",
                                    "numa": "1", "cpus": "8-11"}])
    facts = describe_gpus(nvml=FakeNVML([], init_error=pynvml.NVML_ERROR_LIBRARY_NOT_FOUND),
                          nvidia_smi="/usr/bin/nvidia-smi", run=runner(out=SMI_OUTPUT, calls=calls), sysfs=sysfs)
    assert facts["backend"] == "nvidia_smi" and facts["count"] == 2 and facts["reason"] is None
    assert calls[0][0] == "/usr/bin/nvidia-smi" and "--format=csv,noheader,nounits" in calls[0]
    l4, h100 = facts["devices"]
    assert l4["memory_total_mib"] == 23034 and l4["mig_mode"] == "unsupported" and l4["compute_capability"] == "8.9"
    assert l4["numa_node"] == 1 and l4["cpu_affinity"] == [8, 9, 10, 11], "NUMA and CPUs come from sysfs"
    assert h100["mig_mode"] == "enabled" and h100["power_limit_w"] == 700.0
    assert facts["driver_version"] == "550.163.01"
    assert [a["result"] for a in facts["attempts"]] == ["unavailable", "ok"]


def test_nvidia_smi_failing_the_real_way_without_a_driver(tmp_path):
    # What Debian's nvidia-smi prints in a podman host without a driver (see the molecule scenario).
    facts = describe_gpus(nvml=None, nvml_import_error="No module named 'pynvml'", nvidia_smi="/usr/bin/nvidia-smi",
                          run=runner(rc=255, out="Failed to initialize NVML: Unknown Error\n"), sysfs=no_pci(tmp_path))
    assert facts["count"] == 0 and facts["reason"] == "nvidia_smi_failed"
    assert "exited 255: Failed to initialize NVML: Unknown Error" in facts["reason_detail"]
    assert facts["attempts"][0]["reason"] == "nvml_binding_missing"


def test_old_nvidia_smi_without_compute_cap_is_asked_again(tmp_path):
    calls: List[List[str]] = []
    answers = iter([(6, 'Field "compute_cap" is not a valid field to query.\n', ""),
                    (0, "0, GPU-eeee, Tesla T4, 15360, 15000, Disabled, 00000000:00:1E.0, 70.00, 470.82.01\n", "")])

    def run(argv):
        calls.append(argv)
        return next(answers)
    facts = describe_gpus(nvml=None, nvidia_smi="nvidia-smi", run=run, sysfs=no_pci(tmp_path))
    assert facts["count"] == 1 and facts["devices"][0]["compute_capability"] is None
    assert "compute_cap" not in calls[1][1]


def test_hung_nvidia_smi(tmp_path):
    def run(argv):
        raise CallTimeout(argv[0], 15)
    facts = describe_gpus(nvml=None, nvidia_smi="nvidia-smi", run=run, sysfs=no_pci(tmp_path))
    assert facts["reason"] == "nvidia_smi_timeout"


def test_pci_scan_tells_a_gpu_without_driver(tmp_path):
    sysfs = pci_fixture(tmp_path, [
        {"bus": "0000:01:00.0", "vendor": "0x10de", "class": "0x030000"},                       # GPU, no driver
        {"bus": "0000:01:00.1", "vendor": "0x10de", "class": "0x040300", "driver": "snd_hda_intel"},  # its audio
        {"bus": "0000:00:02.0", "vendor": "0x8086", "class": "0x030000", "driver": "i915"},     # Intel iGPU
    ])
    facts = describe_gpus(nvml=None, sysfs=sysfs)
    assert facts["count"] == 0 and facts["reason"] == "nvidia_device_without_driver"
    assert [d["pci_bus_id"] for d in facts["pci_devices"]] == ["0000:01:00.0"]
    assert facts["pci_devices"][0]["driver"] is None and facts["pci_devices"][0]["cpu_affinity"] == [0, 1, 2, 3]


def test_pci_scan_with_nouveau_and_with_nvidia_but_no_userspace(tmp_path):
    nouveau = pci_fixture(tmp_path / "a", [{"bus": "0000:01:00.0", "vendor": "0x10de", "class": "0x030000",
                                            "driver": "nouveau"}])
    facts = describe_gpus(nvml=None, sysfs=nouveau)
    assert facts["reason"] == "nvidia_device_without_driver" and "nouveau" in facts["reason_detail"]
    bound = pci_fixture(tmp_path / "b", [{"bus": "0000:01:00.0", "vendor": "0x10de", "class": "0x030200",
                                          "driver": "nvidia"}])
    assert describe_gpus(nvml=None, sysfs=bound)["reason"] == "nvidia_driver_without_nvml"


def test_nvml_failure_mentions_what_pci_sees(tmp_path):
    sysfs = pci_fixture(tmp_path, [{"bus": "0000:01:00.0", "vendor": "0x10de", "class": "0x030200"}])
    facts = describe_gpus(nvml=FakeNVML([], init_error=pynvml.NVML_ERROR_DRIVER_NOT_LOADED), sysfs=sysfs)
    assert facts["reason"] == "nvml_driver_not_loaded"
    assert "PCI: 1 NVIDIA GPU(s) present, no NVIDIA driver bound" in facts["reason_detail"]


def test_pci_backend_only_scans(tmp_path):
    nvml = FakeNVML([L4])
    facts = describe_gpus(nvml=nvml, backend="pci", sysfs=no_pci(tmp_path))
    assert facts["count"] == 0 and nvml.shutdowns == 0 and [a["backend"] for a in facts["attempts"]] == ["pci"]


def test_real_pynvml_binding_on_this_gpu_less_machine(tmp_path):
    """Not a fake: the real binding, whose shared library is not installed here."""
    facts = describe_gpus(nvml=pynvml, sysfs=no_pci(tmp_path))
    assert facts["count"] == 0
    assert facts["attempts"][0]["reason"] in ("nvml_library_not_found", "nvml_driver_not_loaded", "nvml_unknown")
    assert facts["reason"] in ("no_nvidia_device", "nvml_driver_not_loaded", "nvml_unknown")


def test_small_helpers():
    assert snake_case("DriverNotLoaded") == "driver_not_loaded"
    assert sysfs_bus_id("00000000:3B:00.0") == "0000:3b:00.0" and sysfs_bus_id("0000:3b:00.0") == "0000:3b:00.0"
    assert cpu_list_from_masks([0b101, 0b1]) == [0, 2, 64]
    assert parse_cpu_list("0-2,8, 10-11") == [0, 1, 2, 8, 10, 11] and parse_cpu_list("") == []
    assert parse_nvidia_smi("\n") == {"driver_version": None, "cuda_driver_version": None, "devices": []}


def test_bounded_passes_values_and_errors_through():
    assert bounded("add", 1, lambda a, b: a + b, 1, 2) == 3
    with pytest.raises(ZeroDivisionError):
        bounded("divide", 1, lambda: 1 / 0)
    with pytest.raises(CallTimeout, match="sleep did not return within 0.1 s"):
        bounded("sleep", 0.1, time.sleep, 3)


def test_nvml_alone_without_its_library_says_so(tmp_path):
    facts = describe_gpus(nvml=FakeNVML([], init_error=pynvml.NVML_ERROR_LIBRARY_NOT_FOUND), backend="nvml",
                          nvidia_smi="/usr/bin/nvidia-smi", run=runner(out=SMI_OUTPUT), sysfs=no_pci(tmp_path))
    assert facts["count"] == 0 and facts["reason"] == "nvml_library_not_found"
    assert [a["backend"] for a in facts["attempts"]] == ["nvml", "pci"]


def run_command(argv):
    """What AnsibleModule.run_command returns for argv (no shell)."""
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    return done.returncode, done.stdout, done.stderr


def test_run_bounded_runs_real_commands_with_a_deadline():
    assert run_bounded(["sh", "-c", "echo out; echo err >&2; exit 3"], 5, run_command) == (3, "out\n", "err\n")
    started = time.monotonic()
    with pytest.raises(CallTimeout, match="sleep did not return within 0.2 s"):
        run_bounded(["sleep", "5"], 0.2, run_command)
    assert time.monotonic() - started < 3


def test_run_bounded_kills_a_command_that_ignores_term():
    started = time.monotonic()
    with pytest.raises(CallTimeout):
        run_bounded(["sh", "-c", "trap '' TERM; sleep 10"], 0.2, run_command)
    assert time.monotonic() - started < 6

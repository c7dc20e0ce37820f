# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The monitoring role's NVML collector (roles/monitoring/files/difyops_gpu_metrics.py).

No GPU can be had here, so most tests give the collector a stand-in for the pynvml module that
answers as NVML answers (bytes-free strings, MiB-less byte counts, milliwatts, XID events, the
error classes). The last tests run the file as the role runs it, with the real pynvml and without
it: this machine has no NVML library, so NVML fails the real way and the file must say so."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any, Dict, List, Optional

import pytest

SCRIPT = Path(__file__).resolve().parents[3] / "roles" / "monitoring" / "files" / "difyops_gpu_metrics.py"
MIB = 1024 * 1024


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("difyops_gpu_metrics", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


gm = load()


class FakeNvml(ModuleType):
    """pynvml's calls the collector makes, over a list of GPUs (dicts); ``fail`` names a call that
    raises the given error class next time."""

    NVML_TEMPERATURE_GPU = 0
    nvmlEventTypeXidCriticalError = 8

    class NVMLError(Exception):
        pass

    class NVMLError_NotSupported(NVMLError):
        pass

    class NVMLError_Timeout(NVMLError):
        pass

    class NVMLError_DriverNotLoaded(NVMLError):
        pass

    class NVMLError_GpuIsLost(NVMLError):
        pass

    def __init__(self, gpus: List[Dict[str, Any]]) -> None:
        super().__init__("pynvml")
        self.gpus = gpus
        self.fail: Dict[str, type] = {}
        self.events: List[SimpleNamespace] = []
        self.calls: List[str] = []
        self.registered: List[int] = []

    def _call(self, name: str) -> None:
        self.calls.append(name)
        if name in self.fail:
            raise self.fail.pop(name)("injected")

    def _gpu(self, handle: int, field: str) -> Any:
        value = self.gpus[handle][field]
        if value is None:
            raise self.NVMLError_NotSupported("not supported")
        return value

    def nvmlInit(self) -> None:
        self._call("nvmlInit")

    def nvmlShutdown(self) -> None:
        self._call("nvmlShutdown")

    def nvmlDeviceGetCount(self) -> int:
        self._call("nvmlDeviceGetCount")
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index

    def nvmlDeviceGetUUID(self, handle: int) -> str:
        return self._gpu(handle, "uuid")

    def nvmlDeviceGetName(self, handle: int) -> Any:
        return self._gpu(handle, "name")

    def nvmlDeviceGetMinorNumber(self, handle: int) -> int:
        return self._gpu(handle, "minor")

    def nvmlDeviceGetPciInfo(self, handle: int) -> SimpleNamespace:
        return SimpleNamespace(busId=self._gpu(handle, "bus"))

    def nvmlDeviceGetUtilizationRates(self, handle: int) -> SimpleNamespace:
        gpu, memory = self._gpu(handle, "util")
        return SimpleNamespace(gpu=gpu, memory=memory)

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> SimpleNamespace:
        used, total = self._gpu(handle, "memory")
        return SimpleNamespace(used=used, free=total - used, total=total)

    def nvmlDeviceGetTemperature(self, handle: int, sensor: int) -> int:
        assert sensor == self.NVML_TEMPERATURE_GPU
        return self._gpu(handle, "temp")

    def nvmlDeviceGetPowerUsage(self, handle: int) -> int:
        return self._gpu(handle, "milliwatts")

    def nvmlEventSetCreate(self) -> str:
        return "events"

    def nvmlEventSetFree(self, events: str) -> None:
        self.calls.append("nvmlEventSetFree")

    def nvmlDeviceRegisterEvents(self, handle: int, types: int, events: str) -> None:
        assert types == self.nvmlEventTypeXidCriticalError and events == "events"
        if not self.gpus[handle].get("xid_events", True):
            raise self.NVMLError_NotSupported("no events")
        self.registered.append(handle)

    def nvmlEventSetWait_v2(self, events: str, timeout_ms: int) -> SimpleNamespace:
        self._call("nvmlEventSetWait_v2")
        if not self.events:
            raise self.NVMLError_Timeout("timeout")
        return self.events.pop(0)


def gpus() -> List[Dict[str, Any]]:
    return [
        {"uuid": "GPU-aaaa", "name": "NVIDIA L4", "minor": 0, "bus": "00000000:01:00.0", "util": (37, 12),
         "memory": (18000 * MIB + 5, 23034 * MIB), "temp": 61, "milliwatts": 71500},
        # An older board: bytes for strings, no power reading, no XID events.
        {"uuid": b"GPU-bbbb", "name": b"Tesla T4", "minor": 3, "bus": b"00000000:02:00.0", "util": (0, 0),
         "memory": (0, 15360 * MIB), "temp": 40, "milliwatts": None, "xid_events": False},
    ]


def parse(text: str) -> Dict[str, float]:
    """``name{labels}`` -> value for every sample line."""
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            samples[key] = float(value)
    return samples


L4 = 'device="nvidia0",gpu="0",modelName="NVIDIA L4",pci_bus_id="00000000:01:00.0",UUID="GPU-aaaa"'
T4 = 'device="nvidia3",gpu="1",modelName="Tesla T4",pci_bus_id="00000000:02:00.0",UUID="GPU-bbbb"'


def labels(text: str) -> str:
    # Labels are written sorted by name (uppercase first); the constants above are for reading.
    return ",".join(sorted(text.split(","), key=lambda pair: pair.split("=")[0]))


def test_each_gpu_is_written_under_dcgm_exporter_names_and_units():
    nvml = FakeNvml(gpus())
    samples = parse(gm.Collector(nvml).scrape())
    l4, t4 = "{%s}" % labels(L4), "{%s}" % labels(T4)
    assert samples["difyops_gpu_nvml_up"] == 1
    assert samples["DCGM_FI_DEV_GPU_UTIL" + l4] == 37 and samples["DCGM_FI_DEV_MEM_COPY_UTIL" + l4] == 12
    # Framebuffer figures are whole MiB, as DCGM reports them; power in watts.
    assert samples["DCGM_FI_DEV_FB_USED" + l4] == 18000 and samples["DCGM_FI_DEV_FB_FREE" + l4] == 23034 - 18000 - 1
    assert samples["DCGM_FI_DEV_GPU_TEMP" + l4] == 61 and samples["DCGM_FI_DEV_POWER_USAGE" + l4] == 71.5
    assert samples["DCGM_FI_DEV_FB_FREE" + t4] == 15360 and samples["DCGM_FI_DEV_GPU_TEMP" + t4] == 40
    # What a GPU does not support is left out for that GPU alone.
    assert "DCGM_FI_DEV_POWER_USAGE" + t4 not in samples
    # Every GPU has the XID counter from 0, so that its first error is an increase.
    assert samples["difyops_gpu_xid_errors_total" + l4] == 0 and samples["difyops_gpu_xid_errors_total" + t4] == 0
    assert samples["DCGM_FI_DEV_XID_ERRORS" + l4] == 0


def test_xid_errors_are_counted_between_writes_per_gpu_and_kept_across_nvml_sessions():
    nvml = FakeNvml(gpus())
    collector = gm.Collector(nvml)
    collector.scrape()
    assert nvml.registered == [0]  # the T4 reports no events; the L4 does
    nvml.events = [SimpleNamespace(eventType=8, eventData=79, device=0), SimpleNamespace(eventType=8, eventData=48, device=0)]
    collector.wait(5)
    l4 = "{%s}" % labels(L4)
    samples = parse(collector.scrape())
    assert samples["difyops_gpu_xid_errors_total" + l4] == 2
    assert samples["DCGM_FI_DEV_XID_ERRORS" + l4] == 48  # the last one, as DCGM reports it
    # NVML fails, then comes back: the count is the collector's, not the session's.
    nvml.fail["nvmlDeviceGetCount"] = FakeNvml.NVMLError_GpuIsLost
    assert parse(collector.scrape()) == {'difyops_gpu_nvml_up{error="NVMLError_GpuIsLost"}': 0}
    assert nvml.calls.count("nvmlShutdown") == 1
    assert parse(collector.scrape())["difyops_gpu_xid_errors_total" + l4] == 2
    assert nvml.calls.count("nvmlInit") == 2


def test_a_wait_with_no_xid_event_ends_at_its_timeout_and_sleeps_when_no_gpu_reports_events():
    nvml = FakeNvml(gpus())
    slept: List[float] = []
    xids = gm.XidWatch(nvml, sleep=slept.append)
    collector = gm.Collector(nvml, xids)
    collector.wait(2)  # no session yet: nothing to wait on
    assert slept == [2]
    collector.scrape()
    collector.wait(2)
    assert nvml.calls.count("nvmlEventSetWait_v2") == 1 and slept == [2]
    only_t4 = FakeNvml(gpus()[1:])
    xids = gm.XidWatch(only_t4, sleep=slept.append)
    gm.Collector(only_t4, xids).scrape()
    xids.wait(3)
    assert slept == [2, 3] and "nvmlEventSetFree" in only_t4.calls


def test_gpus_whose_xid_events_nvml_refuses_are_still_read():
    # XID events are best effort: a GPU (or a vGPU) whose driver refuses the event set must not
    # keep the collector from reading the figures NVML does give.
    nvml = FakeNvml(gpus())

    def refuse(*_args):
        raise FakeNvml.NVMLError_NotSupported("no event sets here")
    nvml.nvmlEventSetCreate = refuse
    collector = gm.Collector(nvml)
    samples = parse(collector.scrape())
    assert samples["difyops_gpu_nvml_up"] == 1 and samples["DCGM_FI_DEV_GPU_TEMP{%s}" % labels(L4)] == 61
    slept: List[float] = []
    collector.xids.sleep = slept.append
    collector.wait(4)
    assert slept == [4] and collector.open


def test_nvml_that_does_not_start_is_reported_with_its_error_and_tried_again():
    nvml = FakeNvml(gpus())
    nvml.fail["nvmlInit"] = FakeNvml.NVMLError_DriverNotLoaded
    collector = gm.Collector(nvml)
    text = collector.scrape()
    assert parse(text) == {'difyops_gpu_nvml_up{error="NVMLError_DriverNotLoaded"}': 0}
    assert "DCGM_" not in text and "nvmlShutdown" not in nvml.calls
    assert parse(collector.scrape())["difyops_gpu_nvml_up"] == 1


def test_an_error_while_waiting_for_events_drops_the_session():
    nvml = FakeNvml(gpus())
    collector = gm.Collector(nvml)
    collector.scrape()
    nvml.fail["nvmlEventSetWait_v2"] = FakeNvml.NVMLError_GpuIsLost
    collector.wait(1)
    assert not collector.open and nvml.calls.count("nvmlShutdown") == 1
    assert parse(collector.scrape())["difyops_gpu_nvml_up"] == 1 and nvml.calls.count("nvmlInit") == 2


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian's prometheus) is installed by .ci/run")
@pytest.mark.parametrize("fail", [None, FakeNvml.NVMLError_DriverNotLoaded], ids=["gpus", "nvml-down"])
def test_promtool_accepts_the_file(tmp_path, fail):
    nvml = FakeNvml(gpus())
    if fail:
        nvml.fail["nvmlInit"] = fail
    path = tmp_path / "difyops_gpu.prom"
    gm.write_atomically(str(path), gm.Collector(nvml).scrape())
    assert os.stat(path).st_mode & 0o777 == 0o644
    check = subprocess.run(["promtool", "check", "metrics"], input=path.read_text(encoding="utf-8"),
                           capture_output=True, text=True, check=False)
    # The file parses (exit 1 otherwise); promtool's lint (exit 3) may only object to dcgm-exporter's
    # own label names, UUID and modelName, which the collector keeps so that both sources read alike.
    problems = [line for line in check.stderr.splitlines() if "label names should be written in 'snake_case'" not in line]
    assert check.returncode in (0, 3) and not problems, check.stdout + check.stderr


def run(tmp_path: Path, *python_flags: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *python_flags, str(SCRIPT), "--once", "--output", str(tmp_path / "gpu.prom")],
                          capture_output=True, text=True, check=False)


def test_with_the_real_pynvml_and_no_nvml_library_the_file_says_why(tmp_path):
    pytest.importorskip("pynvml")  # nvidia-ml-py is a test requirement
    done = run(tmp_path)
    assert done.returncode == 0, done.stderr
    assert parse((tmp_path / "gpu.prom").read_text(encoding="utf-8")) == {
        'difyops_gpu_nvml_up{error="NVMLError_LibraryNotFound"}': 0}


def test_without_pynvml_the_file_says_so_and_the_collector_fails(tmp_path):
    done = run(tmp_path, "-S")  # no site-packages: no pynvml
    assert done.returncode == 1 and "python3-pynvml" in done.stderr
    assert parse((tmp_path / "gpu.prom").read_text(encoding="utf-8")) == {'difyops_gpu_nvml_up{error="pynvml_missing"}': 0}


def test_only_the_standard_library_and_pynvml_are_imported():
    imports = [line.split()[1] for line in SCRIPT.read_text(encoding="utf-8").splitlines()
               if line.strip().startswith(("import ", "from ")) and "__future__" not in line]
    assert set(imports) <= {"argparse", "os", "sys", "tempfile", "time", "types", "typing", "pynvml"}, imports


def main_once(nvml: Optional[ModuleType], path: Path) -> int:
    return gm.main(["--once", "--output", str(path)], nvml)


def test_main_writes_once_and_closes_nvml(tmp_path):
    nvml = FakeNvml(gpus())
    assert main_once(nvml, tmp_path / "gpu.prom") == 0
    assert nvml.calls[0] == "nvmlInit" and nvml.calls[-1] == "nvmlShutdown"
    assert "DCGM_FI_DEV_FB_USED" in (tmp_path / "gpu.prom").read_text(encoding="utf-8")

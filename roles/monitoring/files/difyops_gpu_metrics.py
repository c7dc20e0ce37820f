# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""GPU metrics of a Dify host for node_exporter's textfile collector (role difyops.dify.monitoring).

Reads NVML through pynvml (NVIDIA's nvidia-ml-py, Debian's python3-pynvml) and writes each GPU's
figures under the names and labels of NVIDIA's dcgm-exporter, so that the alert rules and the
dashboard read either source alike (labels gpu, UUID, device, modelName, pci_bus_id):

- DCGM_FI_DEV_GPU_UTIL, DCGM_FI_DEV_MEM_COPY_UTIL: nvmlDeviceGetUtilizationRates (percent);
- DCGM_FI_DEV_FB_USED, DCGM_FI_DEV_FB_FREE: nvmlDeviceGetMemoryInfo (MiB);
- DCGM_FI_DEV_GPU_TEMP: nvmlDeviceGetTemperature of the GPU die (degrees C);
- DCGM_FI_DEV_POWER_USAGE: nvmlDeviceGetPowerUsage (watts);
- DCGM_FI_DEV_XID_ERRORS: the last XID error NVML reported for the GPU (0: none yet);
- difyops_gpu_xid_errors_total: XID errors reported since the collector started, a counter that
  starts at 0 for every GPU, so that its first error is an increase.

XID errors are NVML events (nvmlEventTypeXidCriticalError): the collector waits for them between
two writes. A figure the GPU does not support (NVMLError_NotSupported) is left out for that GPU.

``difyops_gpu_nvml_up`` is 1 while NVML answers. When it does not (the driver is not loaded, the
driver and library versions differ after an upgrade, the library or pynvml is missing), it is 0 with
an ``error`` label naming the pynvml exception, no GPU series are written, and NVML is tried again
at the next write. The file is written whole and renamed into place, so node_exporter never reads
half of it. Python's standard library and pynvml only: it runs on the host's python3.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from types import ModuleType
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

MIB = 1024 * 1024
FAMILIES = (
    ("DCGM_FI_DEV_GPU_UTIL", "gauge", "GPU utilization (in %)."),
    ("DCGM_FI_DEV_MEM_COPY_UTIL", "gauge", "Memory utilization (in %)."),
    ("DCGM_FI_DEV_FB_USED", "gauge", "Framebuffer memory used (in MiB)."),
    ("DCGM_FI_DEV_FB_FREE", "gauge", "Framebuffer memory free (in MiB)."),
    ("DCGM_FI_DEV_GPU_TEMP", "gauge", "GPU temperature (in C)."),
    ("DCGM_FI_DEV_POWER_USAGE", "gauge", "Power draw (in W)."),
    ("DCGM_FI_DEV_XID_ERRORS", "gauge", "Value of the last XID error encountered (0: none since the collector started)."),
    ("difyops_gpu_xid_errors_total", "counter", "XID errors NVML reported since the collector started."),
)
UP = ("difyops_gpu_nvml_up", "gauge", "1 when NVML answered at the last write; 0 with the error's name when not.")

Sample = Tuple[Dict[str, str], Dict[str, float]]


def _text(value: Any) -> str:
    """pynvml returns bytes before nvidia-ml-py 11.515 and str since."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def error_name(exc: BaseException) -> str:
    """The pynvml exception's class name (NVMLError_DriverNotLoaded), as difyops.dify.gpu_facts names it."""
    return type(exc).__name__


def _supported(nvml: ModuleType, read: Callable[[], Any]) -> Optional[Any]:
    """``read()``, or None when the GPU does not support that query."""
    try:
        return read()
    except nvml.NVMLError_NotSupported:
        return None


def device_labels(nvml: ModuleType, index: int, handle: Any) -> Dict[str, str]:
    """dcgm-exporter's labels of one GPU."""
    minor = _supported(nvml, lambda: nvml.nvmlDeviceGetMinorNumber(handle))
    labels = {"gpu": str(index), "UUID": _text(nvml.nvmlDeviceGetUUID(handle)),
              "device": "nvidia%d" % (index if minor is None else minor),
              "modelName": _text(nvml.nvmlDeviceGetName(handle))}
    pci = _supported(nvml, lambda: nvml.nvmlDeviceGetPciInfo(handle))
    if pci is not None:
        labels["pci_bus_id"] = _text(pci.busId)
    return labels


def device_values(nvml: ModuleType, handle: Any) -> Dict[str, float]:
    """One GPU's figures that it supports, by metric name."""
    values: Dict[str, float] = {}
    rates = _supported(nvml, lambda: nvml.nvmlDeviceGetUtilizationRates(handle))
    if rates is not None:
        values.update(DCGM_FI_DEV_GPU_UTIL=rates.gpu, DCGM_FI_DEV_MEM_COPY_UTIL=rates.memory)
    memory = _supported(nvml, lambda: nvml.nvmlDeviceGetMemoryInfo(handle))
    if memory is not None:
        values.update(DCGM_FI_DEV_FB_USED=memory.used // MIB, DCGM_FI_DEV_FB_FREE=memory.free // MIB)
    temperature = _supported(nvml, lambda: nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU))
    if temperature is not None:
        values["DCGM_FI_DEV_GPU_TEMP"] = temperature
    milliwatts = _supported(nvml, lambda: nvml.nvmlDeviceGetPowerUsage(handle))
    if milliwatts is not None:
        values["DCGM_FI_DEV_POWER_USAGE"] = milliwatts / 1000.0
    return values


class XidWatch:
    """XID errors of every GPU that reports them, counted by UUID across NVML sessions."""

    def __init__(self, nvml: ModuleType, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.nvml = nvml
        self.clock = clock
        self.sleep = sleep
        self.counts: Dict[str, int] = {}
        self.last: Dict[str, int] = {}
        self.events: Optional[Any] = None

    def register(self, handles: Sequence[Any]) -> None:
        """Ask NVML for the XID events of every GPU that supports them (a new NVML session). Events
        are best effort: a driver that refuses them leaves the figures to be read all the same."""
        nvml = self.nvml
        self.events = None
        try:
            events = nvml.nvmlEventSetCreate()
        except nvml.NVMLError_NotSupported:
            return
        registered = 0
        for handle in handles:
            try:
                nvml.nvmlDeviceRegisterEvents(handle, nvml.nvmlEventTypeXidCriticalError, events)
                registered += 1
            except nvml.NVMLError_NotSupported:
                continue
        if registered:
            self.events = events
        else:
            nvml.nvmlEventSetFree(events)

    def forget(self) -> None:
        """Drop the event set of an NVML session that failed (its handles are gone with it)."""
        self.events = None

    def wait(self, seconds: float) -> None:
        """Count the XID events reported within ``seconds``; sleep when no GPU reports them."""
        if self.events is None:
            self.sleep(seconds)
            return
        nvml = self.nvml
        wait = getattr(nvml, "nvmlEventSetWait_v2", None) or nvml.nvmlEventSetWait
        deadline = self.clock() + seconds
        while True:
            remaining = deadline - self.clock()
            if remaining <= 0:
                return
            try:
                event = wait(self.events, max(1, int(remaining * 1000)))
            except nvml.NVMLError_Timeout:
                return
            if event.eventType & nvml.nvmlEventTypeXidCriticalError:
                uuid = _text(nvml.nvmlDeviceGetUUID(event.device))
                self.counts[uuid] = self.counts.get(uuid, 0) + 1
                self.last[uuid] = int(event.eventData)


def collect(nvml: ModuleType, xids: XidWatch) -> List[Sample]:
    """Every GPU's labels and figures, in NVML's index order."""
    samples: List[Sample] = []
    for index in range(nvml.nvmlDeviceGetCount()):
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        labels = device_labels(nvml, index, handle)
        values = device_values(nvml, handle)
        values["DCGM_FI_DEV_XID_ERRORS"] = xids.last.get(labels["UUID"], 0)
        values["difyops_gpu_xid_errors_total"] = xids.counts.get(labels["UUID"], 0)
        samples.append((labels, values))
    return samples


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: Dict[str, str]) -> str:
    return "{%s}" % ",".join('%s="%s"' % (key, _escape(labels[key])) for key in sorted(labels)) if labels else ""


def _number(value: float) -> str:
    return repr(float(value)) if isinstance(value, float) else str(value)


def render(samples: Sequence[Sample], error: Optional[str] = None) -> str:
    """NVML's state and the GPUs' samples in Prometheus' text format, one family after another."""
    name, kind, text = UP
    lines = ["# HELP %s %s" % (name, text), "# TYPE %s %s" % (name, kind),
             "%s%s %d" % (name, _labels({"error": error} if error else {}), 0 if error else 1)]
    for name, kind, text in FAMILIES:
        series = [(labels, values[name]) for labels, values in samples if name in values]
        if series:
            lines += ["# HELP %s %s" % (name, text), "# TYPE %s %s" % (name, kind)]
            lines += ["%s%s %s" % (name, _labels(labels), _number(value)) for labels, value in series]
    return "\n".join(lines) + "\n"


def write_atomically(path: str, content: str) -> None:
    """Write to a file beside ``path`` and rename it into place, readable by node_exporter."""
    directory = os.path.dirname(path) or "."
    handle, temporary = tempfile.mkstemp(prefix=".difyops-", dir=directory)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(content)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


class Collector:
    """One NVML session at a time: opened when needed, dropped when NVML fails."""

    def __init__(self, nvml: ModuleType, xids: Optional[XidWatch] = None) -> None:
        self.nvml = nvml
        self.xids = xids or XidWatch(nvml)
        self.open = False

    def scrape(self) -> str:
        """The file's next content: the GPUs' figures, or NVML's error."""
        nvml = self.nvml
        try:
            if not self.open:
                nvml.nvmlInit()
                self.open = True
                self.xids.register([nvml.nvmlDeviceGetHandleByIndex(i) for i in range(nvml.nvmlDeviceGetCount())])
            return render(collect(nvml, self.xids))
        except nvml.NVMLError as exc:
            self.close()
            return render([], error_name(exc))

    def wait(self, seconds: float) -> None:
        try:
            self.xids.wait(seconds)
        except self.nvml.NVMLError:
            self.close()

    def close(self) -> None:
        self.xids.forget()
        if self.open:
            self.open = False
            try:
                self.nvml.nvmlShutdown()
            except self.nvml.NVMLError:
                pass


def arguments(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--output", default="/var/lib/prometheus/node-exporter/difyops_gpu.prom")
    parser.add_argument("--interval", type=float, default=15.0, help="seconds between two writes")
    parser.add_argument("--once", action="store_true", help="write once and exit")
    return parser.parse_args(argv)


def load_nvml() -> Optional[ModuleType]:
    try:
        import pynvml  # pylint: disable=import-outside-toplevel
    except ImportError:
        return None
    return pynvml


def main(argv: Sequence[str], nvml: Optional[ModuleType] = None) -> int:
    args = arguments(argv)
    nvml = nvml or load_nvml()
    if nvml is None:
        # Said in the file too, where Prometheus sees it: the role installs python3-pynvml.
        write_atomically(args.output, render([], "pynvml_missing"))
        sys.stderr.write("pynvml is not installed: install python3-pynvml (Debian contrib) or nvidia-ml-py\n")
        return 1
    collector = Collector(nvml)
    while True:
        write_atomically(args.output, collector.scrape())
        if args.once:
            collector.close()
            return 0
        collector.wait(args.interval)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

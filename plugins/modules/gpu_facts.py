#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: gpu_facts
short_description: Describe a host's NVIDIA GPUs through NVML, nvidia-smi or the PCI bus
version_added: "0.1.0"
description:
  - Returns under C(ansible_facts.gpus) the driver and CUDA driver versions, the number of GPUs and,
    per device, its index, UUID, name, total and free memory in MiB, compute capability, MIG mode,
    PCI bus id, power limit, and the CPUs and NUMA node near it.
  - Sources are tried in order. NVML through the C(pynvml) module (package C(nvidia-ml-py));
    C(nvidia-smi --query-gpu) only when the NVML library or its Python binding is missing; and
    always a scan of C(/sys/bus/pci) that can tell an NVIDIA device without a driver.
  - A host without GPU, driver or library is not an error. It gets C(count=0) and a
    machine-readable C(reason) naming what failed; every source tried is listed under
    C(attempts). NVML is always shut down after use, and every source has a deadline, so a wedged
    driver cannot hang the play.
  - The sizing engine reads C(ansible_facts.gpus.devices) (see P(difyops.dify.plan_inputs#filter)).
author:
  - difyops contributors (@difyops)
options:
  backend:
    description:
      - Which source to use.
      - V(auto) tries NVML, then nvidia-smi when NVML is not installed, then the PCI scan.
      - V(nvml) requires the C(pynvml) Python module on the target and fails with installation
        advice when it is missing. A present library that cannot reach a driver still gives
        C(count=0) with a reason.
      - V(nvidia_smi) skips NVML. V(pci) only scans the PCI bus and never reports usable devices.
    type: str
    choices: [auto, nvml, nvidia_smi, pci]
    default: auto
  timeout:
    description:
      - Seconds that NVML or nvidia-smi may take before the source is given up with the reason
        C(nvml_timeout) or C(nvidia_smi_timeout).
    type: int
    default: 15
  nvidia_smi_path:
    description:
      - Path of nvidia-smi. By default it is looked up on the PATH and in C(/usr/bin).
    type: path
requirements:
  - C(nvidia-ml-py) (imported as C(pynvml)) on the target for the NVML source; Debian packages it
    as C(python3-pynvml). Without it the module falls back to nvidia-smi and the PCI scan.
attributes:
  check_mode:
    support: full
    description: The module only reads; it runs the same way in check mode.
  diff_mode:
    support: none
    description: Nothing is changed, so there is nothing to show.
  facts:
    support: full
    description: Sets C(ansible_facts.gpus).
notes:
  - Reason codes; C(null) when GPUs were found.
    C(nvml_driver_not_loaded), C(nvml_unknown), C(nvml_no_permission) and other C(nvml_*) codes
    are NVML errors, named after the C(pynvml) exception;
    C(nvml_timeout) means NVML did not answer in time;
    C(nvidia_smi_failed) and C(nvidia_smi_timeout) are failures of the command;
    C(no_nvidia_device) means the PCI bus has no NVIDIA GPU;
    C(nvidia_device_without_driver) means an NVIDIA GPU without the nvidia kernel driver;
    C(nvidia_driver_without_nvml) means a driver but neither NVML nor nvidia-smi;
    C(no_gpu_reported) means NVML or nvidia-smi worked and listed no GPU.
seealso:
  - module: difyops.dify.disk_facts
  - name: NVIDIA Management Library (NVML)
    description: The API behind this module and nvidia-smi.
    link: https://developer.nvidia.com/management-library-nvml
"""

EXAMPLES = r"""
- name: Gather GPU facts
  difyops.dify.gpu_facts:

- name: Show what the host has
  ansible.builtin.debug:
    msg: "{{ ansible_facts.gpus.count }} GPU(s), reason: {{ ansible_facts.gpus.reason | default('none', true) }}"

- name: Require NVML (fails with installation advice when pynvml is missing)
  difyops.dify.gpu_facts:
    backend: nvml

- name: Run GPU tasks only where GPUs are usable
  ansible.builtin.include_tasks: gpu.yml
  when: ansible_facts.gpus.count | int > 0
"""

RETURN = r"""
ansible_facts:
  description: The facts.
  returned: always
  type: dict
  contains:
    gpus:
      description: The host's NVIDIA GPUs.
      returned: always
      type: dict
      contains:
        count:
          description: Number of GPUs that NVML or nvidia-smi reported; 0 when none could be used.
          type: int
          sample: 2
        backend:
          description: The source the devices came from, V(nvml), V(nvidia_smi), or V(none).
          type: str
          sample: nvml
        reason:
          description: Why C(count) is 0, as a code (see the notes); null when GPUs were found.
          type: str
          sample: nvml_driver_not_loaded
        reason_detail:
          description: The same in words, with the library's own error text.
          type: str
          sample: "NVMLError_DriverNotLoaded (code 9): Driver Not Loaded"
        driver_version:
          description: NVIDIA driver version.
          type: str
          sample: "550.163.01"
        cuda_driver_version:
          description: Highest CUDA version the driver supports (NVML only).
          type: str
          sample: "12.4"
        devices:
          description: One entry per GPU.
          type: list
          elements: dict
          contains:
            index:
              description: NVML device index.
              type: int
            uuid:
              description: GPU UUID.
              type: str
              sample: GPU-5a1c2f3e-0000-4000-8000-000000000000
            name:
              description: Product name.
              type: str
              sample: NVIDIA L4
            memory_total_mib:
              description: Total memory in MiB.
              type: int
              sample: 23034
            memory_free_mib:
              description: Free memory in MiB when the facts were gathered.
              type: int
              sample: 22500
            compute_capability:
              description: CUDA compute capability, C(major.minor).
              type: str
              sample: "8.9"
            mig_mode:
              description: Current MIG mode, V(enabled), V(disabled) or V(unsupported).
              type: str
              sample: disabled
            mig_mode_pending:
              description: MIG mode after the next GPU reset (NVML only), or null.
              type: str
            pci_bus_id:
              description: PCI address as sysfs writes it.
              type: str
              sample: "0000:3b:00.0"
            power_limit_w:
              description: Power management limit in watts.
              type: float
              sample: 72.0
            cpu_affinity:
              description: CPUs closest to the GPU.
              type: list
              elements: int
            numa_node:
              description: NUMA node of the GPU, null on single-node machines.
              type: int
        pci_devices:
          description: NVIDIA GPUs found on the PCI bus, whatever their driver state.
          type: list
          elements: dict
          contains:
            pci_bus_id:
              description: PCI address.
              type: str
            device_id:
              description: PCI device id.
              type: str
              sample: "0x27b8"
            class:
              description: PCI class (C(0x0300xx) VGA or C(0x0302xx) 3D controller).
              type: str
            driver:
              description: Kernel driver bound to the device, null when none.
              type: str
              sample: nvidia
            numa_node:
              description: NUMA node, null when unknown.
              type: int
            cpu_affinity:
              description: Local CPUs.
              type: list
              elements: int
        attempts:
          description: Each source tried, in order, with V(ok), V(unavailable) or V(failed) and why.
          type: list
          elements: dict
          sample:
            - {backend: nvml, result: failed, reason: nvml_unknown, detail: "NVMLError_Unknown (code 999): Unknown Error"}
            - {backend: pci, result: ok, reason: no_nvidia_device, detail: no NVIDIA GPU on the PCI bus}
"""

import functools
import os
import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.difyops.dify.plugins.module_utils.bounded import run_bounded
from ansible_collections.difyops.dify.plugins.module_utils.gpu_inventory import describe_gpus

try:
    import pynvml
    NVML_IMPORT_ERROR = None
except ImportError:
    pynvml = None
    NVML_IMPORT_ERROR = traceback.format_exc()


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "backend": {"type": "str", "choices": ["auto", "nvml", "nvidia_smi", "pci"], "default": "auto"},
            "timeout": {"type": "int", "default": 15},
            "nvidia_smi_path": {"type": "path"},
        },
        supports_check_mode=True,
    )
    params = module.params
    if params["timeout"] < 1:
        module.fail_json(msg="timeout must be at least 1 second, got %d" % params["timeout"])
    if params["backend"] == "nvml" and pynvml is None:
        module.fail_json(msg=missing_required_lib("nvidia-ml-py (Debian/Ubuntu package python3-pynvml)"),
                         exception=NVML_IMPORT_ERROR)

    smi = params["nvidia_smi_path"] or module.get_bin_path("nvidia-smi", opt_dirs=["/usr/bin", "/usr/local/nvidia/bin"])
    if smi and not os.access(smi, os.X_OK):
        smi = None
    gpus = describe_gpus(
        nvml=pynvml,
        nvml_import_error=NVML_IMPORT_ERROR.strip().splitlines()[-1] if NVML_IMPORT_ERROR else None,
        nvidia_smi=smi,
        run=functools.partial(run_bounded, seconds=params["timeout"], runner=module.run_command),
        backend=params["backend"],
        timeout=params["timeout"],
        vcpus=os.cpu_count() or 1,
    )
    module.exit_json(changed=False, ansible_facts={"gpus": gpus})


if __name__ == "__main__":
    main()

#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: disk_facts
short_description: Describe the filesystems and physical disks behind data paths
version_added: "0.1.0"
description:
  - Returns under C(ansible_facts.disks) for each path in O(paths) its mount point, filesystem,
    mount options, total and free bytes, and the physical disks behind it, found by walking sysfs
    through partitions, device-mapper (LVM, dm-crypt, multipath) and md RAID. Each disk has a kind,
    V(nvme), V(ssd), V(hdd) or V(virtual); a network filesystem is V(network). A path whose backing
    device this host cannot see (an overlay root in a container, ZFS) is V(unknown).
  - Also returns every block device of C(/sys/block).
  - The mount is looked up in C(/proc/self/mountinfo), which is text, before any call touches the
    path. A network filesystem is never statted unless O(stat_network=true), and every call that
    touches a filesystem has a deadline (O(timeout)), so a stale NFS mount cannot hang the play.
  - Problems with one path (relative, a file, missing with O(missing=error), a stat that timed out)
    become an C(error) entry for that path; O(strict=true) turns them into a task failure that
    names every such path.
  - Optionally measures 4 KiB random-read IOPS with fio on one path (O(iops_probe)).
author:
  - difyops contributors (@difyops)
options:
  paths:
    description:
      - Absolute paths of the directories to describe. The defaults are the Docker data root and
        the collection's data directory.
    type: list
    elements: str
    default: [/var/lib/docker, /srv/dify]
  missing:
    description:
      - What a path that does not exist yet gets.
      - V(parent) describes the nearest existing parent directory, where the path will be created,
        and sets C(exists=false). This is what planning a fresh host needs.
      - V(error) gives the path an C(error) entry.
    type: str
    choices: [parent, error]
    default: parent
  stat_network:
    description:
      - Call statvfs on network filesystems too (still bounded by O(timeout)). Off by default, so
        their sizes are not reported.
    type: bool
    default: false
  timeout:
    description:
      - Seconds any one filesystem call may take before the path gets an error entry.
    type: int
    default: 10
  strict:
    description:
      - Fail the task when any path has an error entry, naming each path and its problem.
    type: bool
    default: false
  iops_probe:
    description:
      - Run a short random-read test with fio (when installed) in O(iops_probe_path). It writes a
        64 MiB scratch file and removes it; it is skipped in check mode.
    type: bool
    default: false
  iops_probe_path:
    description:
      - Directory for the probe. By default the first path that exists, or its nearest existing
        parent.
    type: path
  iops_probe_seconds:
    description:
      - How long the probe reads, 1 to 60 seconds.
    type: int
    default: 5
attributes:
  check_mode:
    support: full
    description: The module only reads; the optional IOPS probe is skipped in check mode.
  diff_mode:
    support: none
    description: Nothing is changed, so there is nothing to show.
  facts:
    support: full
    description: Sets C(ansible_facts.disks).
notes:
  - In a container the root filesystem is usually an overlay whose disk the container cannot see;
    its kind is V(unknown), its sizes are still those C(df) reports.
seealso:
  - module: difyops.dify.gpu_facts
  - module: ansible.builtin.setup
    description: Its C(mounts) fact stats every mount and can hang on a stale network mount.
"""

EXAMPLES = r"""
- name: Describe the default data paths
  difyops.dify.disk_facts:

- name: Describe the database directory and fail on any problem
  difyops.dify.disk_facts:
    paths:
      - /srv/dify/postgres
    missing: error
    strict: true

- name: Measure random-read IOPS where Postgres will live
  difyops.dify.disk_facts:
    paths: [/srv/dify]
    iops_probe: true
    iops_probe_seconds: 3

- name: Show the kind of disk behind the data directory
  ansible.builtin.debug:
    msg: "{{ ansible_facts.disks.paths['/srv/dify'].kind }}"
"""

RETURN = r"""
ansible_facts:
  description: The facts.
  returned: always
  type: dict
  contains:
    disks:
      description: Storage facts.
      returned: always
      type: dict
      contains:
        paths:
          description:
            - One entry per path in O(paths), keyed by the path as given. An entry with a problem
              has only C(path) and C(error).
          type: dict
          sample:
            /srv/dify:
              path: /srv/dify
              exists: true
              described_path: /srv/dify
              mount_point: /srv
              fstype: ext4
              source: /dev/mapper/vg0-srv
              options: [rw, relatime]
              device: "254:1"
              total_bytes: 107374182400
              free_bytes: 95000000000
              used_bytes: 12374182400
              inodes_total: 6553600
              inodes_free: 6500000
              kind: nvme
              disks: [{name: nvme0n1, kind: nvme, size_bytes: 512110190592, rotational: false, model: Samsung SSD 980}]
              layers: [{name: dm-1, type: lvm, detail: vg0-srv}, {name: nvme0n1p3, type: partition, detail: null}]
              note: null
              statted: true
          contains:
            path:
              description: The path as given.
              type: str
            error:
              description: What is wrong with the path; present only then.
              type: str
            exists:
              description: Whether the path exists; null for an unstatted network path.
              type: bool
            described_path:
              description: The resolved path described (the nearest existing parent when it does not exist).
              type: str
            mount_point:
              description: Mount point holding the path.
              type: str
            fstype:
              description: Filesystem type.
              type: str
            source:
              description: Mount source (device, server export, or pseudo name).
              type: str
            options:
              description: Mount and superblock options.
              type: list
              elements: str
            device:
              description: C(major:minor) of the mount from mountinfo.
              type: str
            total_bytes:
              description: Filesystem size; absent for an unstatted network path.
              type: int
            free_bytes:
              description: Bytes available to unprivileged users (what C(df) calls Available).
              type: int
            used_bytes:
              description: Bytes in use.
              type: int
            inodes_total:
              description: Inodes in all.
              type: int
            inodes_free:
              description: Free inodes.
              type: int
            space_error:
              description: Why sizes are missing when statvfs failed or timed out.
              type: str
            kind:
              description: V(nvme), V(ssd), V(hdd), V(virtual), V(network) or V(unknown); the slowest disk when several.
              type: str
            disks:
              description: Physical disks behind the path.
              type: list
              elements: dict
            layers:
              description: Partitions, LVM, dm-crypt and md RAID devices between the mount and the disks.
              type: list
              elements: dict
            note:
              description: Why no disk is listed, when none is.
              type: str
            statted:
              description: Whether the path's filesystem was touched.
              type: bool
        block_devices:
          description: Every block device in C(/sys/block); empty ones (unused loop and zram devices, a drive without medium) are left out.
          type: list
          elements: dict
          sample:
            - {name: nvme0n1, kind: nvme, type: disk, detail: null, size_bytes: 512110190592, rotational: false, model: Samsung SSD 980, disks: []}
            - {name: md0, kind: hdd, type: md, detail: raid1, size_bytes: 4000650887168, rotational: true, model: null, disks: [sda, sdb]}
        iops_probe:
          description: Result of the fio probe, when O(iops_probe=true).
          returned: when O(iops_probe=true)
          type: dict
          sample: {path: /srv/dify, result: ok, seconds: 3, read_iops: 41200, mean_latency_us: 387.5}
"""

import functools

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.difyops.dify.plugins.module_utils.bounded import run_bounded
from ansible_collections.difyops.dify.plugins.module_utils.disk_inventory import describe_paths, probe_iops


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "paths": {"type": "list", "elements": "str", "default": ["/var/lib/docker", "/srv/dify"]},
            "missing": {"type": "str", "choices": ["parent", "error"], "default": "parent"},
            "stat_network": {"type": "bool", "default": False},
            "timeout": {"type": "int", "default": 10},
            "strict": {"type": "bool", "default": False},
            "iops_probe": {"type": "bool", "default": False},
            "iops_probe_path": {"type": "path"},
            "iops_probe_seconds": {"type": "int", "default": 5},
        },
        supports_check_mode=True,
    )
    params = module.params
    if params["timeout"] < 1:
        module.fail_json(msg="timeout must be at least 1 second, got %d" % params["timeout"])
    if not 1 <= params["iops_probe_seconds"] <= 60:
        module.fail_json(msg="iops_probe_seconds must be between 1 and 60, got %d" % params["iops_probe_seconds"])
    if not params["paths"]:
        module.fail_json(msg="paths is empty; give at least one absolute directory")

    with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as handle:
        mountinfo = handle.read()
    disks = describe_paths(params["paths"], mountinfo, timeout=params["timeout"], missing=params["missing"],
                           stat_network=params["stat_network"])

    problems = [entry["error"] for entry in disks["paths"].values() if "error" in entry]
    if params["strict"] and problems:
        module.fail_json(msg="disk_facts could not describe %d path(s): %s" % (len(problems), "; ".join(problems)),
                         ansible_facts={"disks": disks})

    if params["iops_probe"]:
        directory = params["iops_probe_path"]
        if not directory:
            described = [entry for entry in disks["paths"].values() if entry.get("statted")]
            directory = described[0]["described_path"] if described else None
        if directory is None:
            disks["iops_probe"] = {"path": None, "result": "skipped", "reason": "no described local path to probe"}
        else:
            disks["iops_probe"] = probe_iops(module.get_bin_path("fio"), directory, params["iops_probe_seconds"],
                                             functools.partial(run_bounded, runner=module.run_command), module.check_mode)

    for problem in problems:
        module.warn(problem)
    module.exit_json(changed=False, ansible_facts={"disks": disks})


if __name__ == "__main__":
    main()

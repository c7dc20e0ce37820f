# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Disk facts against fixture sysfs trees shaped like the kernel's (NVMe, SATA SSD, HDD, LVM on
NVMe, md RAID1, virtio, a network mount). Mount points are real directories under tmp_path, so
stat and statvfs run for real; only the device tree and mountinfo are fixtures."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Dict, List, Optional

import pytest

from ansible_collections.difyops.dify.plugins.module_utils import disk_inventory
from ansible_collections.difyops.dify.plugins.module_utils.disk_inventory import (
    describe_paths, mount_for, parse_fio, parse_mountinfo, probe_iops, slowest_kind)

PCI = "devices/pci0000:00"


class SysfsTree:
    """Builds /sys/devices/..., /sys/block, /sys/class/block and /sys/dev/block like the kernel."""

    def __init__(self, root: Path) -> None:
        self.root = root
        for sub in ("block", "class/block", "dev/block", "devices/virtual/block"):
            (root / sub).mkdir(parents=True, exist_ok=True)

    def _register(self, node: Path, name: str, dev: str, whole: bool) -> None:
        (node / "dev").write_text(dev + "\n")
        os.symlink(os.path.relpath(node, self.root / "class" / "block"), self.root / "class" / "block" / name)
        os.symlink(os.path.relpath(node, self.root / "dev" / "block"), self.root / "dev" / "block" / dev)
        if whole:
            os.symlink(os.path.relpath(node, self.root / "block"), self.root / "block" / name)

    def disk(self, parent: str, name: str, dev: str, rotational: int, sectors: int = 2 ** 30,
             vendor: Optional[str] = None, model: Optional[str] = None) -> Path:
        node = self.root / parent / name
        (node / "queue").mkdir(parents=True)
        (node / "device").mkdir()
        (node / "queue" / "rotational").write_text("%d\n" % rotational)
        (node / "size").write_text("%d\n" % sectors)
        if vendor:
            (node / "device" / "vendor").write_text(vendor + "\n")
        if model:
            (node / "device" / "model").write_text(model + "   \n")
        self._register(node, name, dev, whole=True)
        return node

    def partition(self, disk: Path, name: str, dev: str, sectors: int = 2 ** 29) -> Path:
        node = disk / name
        node.mkdir()
        (node / "partition").write_text("1\n")
        (node / "size").write_text("%d\n" % sectors)
        self._register(node, name, dev, whole=False)
        return node

    def stacked(self, name: str, dev: str, slaves: List[Path], dm: Optional[Dict[str, str]] = None,
                md_level: Optional[str] = None) -> Path:
        node = self.root / "devices" / "virtual" / "block" / name
        (node / "slaves").mkdir(parents=True)
        (node / "queue").mkdir()
        (node / "queue" / "rotational").write_text("0\n")
        (node / "size").write_text("%d\n" % 2 ** 28)
        for slave in slaves:
            os.symlink(os.path.relpath(slave, node / "slaves"), node / "slaves" / slave.name)
        if dm:
            (node / "dm").mkdir()
            (node / "dm" / "name").write_text(dm["name"] + "\n")
            (node / "dm" / "uuid").write_text(dm["uuid"] + "\n")
        if md_level:
            (node / "md").mkdir()
            (node / "md" / "level").write_text(md_level + "\n")
        self._register(node, name, dev, whole=True)
        return node


@pytest.fixture(name="fleet")
def fixture_fleet(tmp_path):
    """One machine with every kind of storage, and a mountinfo that mounts each on a real directory."""
    tree = SysfsTree(tmp_path / "sys")
    nvme = tree.disk(PCI + "/0000:00:1d.0/0000:3d:00.0/nvme/nvme0", "nvme0n1", "259:0", 0, model="Samsung SSD 980 PRO 1TB")
    nvme_p1 = tree.partition(nvme, "nvme0n1p1", "259:1")
    nvme_p2 = tree.partition(nvme, "nvme0n1p2", "259:2")
    tree.disk(PCI + "/0000:00:17.0/ata1/host0/target0:0:0/0:0:0:0/block", "sda", "8:0", 0,
              vendor="ATA", model="Samsung SSD 870")
    sda1 = tree.partition(tree.root / PCI / "0000:00:17.0/ata1/host0/target0:0:0/0:0:0:0/block/sda", "sda1", "8:1")
    sdb = tree.disk(PCI + "/0000:00:17.0/ata2/host1/target1:0:0/1:0:0:0/block", "sdb", "8:16", 1,
                    vendor="ATA", model="ST4000NM000A")
    sdc = tree.disk(PCI + "/0000:00:17.0/ata3/host2/target2:0:0/2:0:0:0/block", "sdc", "8:32", 1,
                    vendor="ATA", model="ST4000NM000A")
    sdb1 = tree.partition(sdb, "sdb1", "8:17")
    sdc1 = tree.partition(sdc, "sdc1", "8:33")
    tree.stacked("dm-0", "253:0", [nvme_p2], dm={"name": "vg0-data", "uuid": "LVM-abcdefgh"})
    tree.stacked("md0", "9:0", [sdb1, sdc1], md_level="raid1")
    vda = tree.disk(PCI + "/0000:00:04.0/virtio1/block", "vda", "254:0", 1)
    tree.partition(vda, "vda1", "254:1")
    tree.disk(PCI + "/0000:00:05.0/host3/target3:0:0/3:0:0:0/block", "sdd", "8:48", 1, vendor="QEMU",
              model="QEMU HARDDISK")
    tree.stacked("loop0", "7:0", [])
    (tree.root / "devices" / "virtual" / "block" / "loop0" / "size").write_text("0\n")
    del nvme_p1, sda1

    mnt = tmp_path / "mnt"
    names = ["lvm", "ssd", "hdd", "raid", "vm", "btrfs", "tmp", "overlay"]
    for name in names:
        (mnt / name).mkdir(parents=True)
    (mnt / "ssd" / "afile").write_text("x")
    lines = [
        "21 1 253:0 / %s/lvm rw,relatime shared:1 - ext4 /dev/mapper/vg0-data rw,errors=remount-ro" % mnt,
        "22 1 8:1 / %s/ssd rw,noatime - xfs /dev/sda1 rw,attr2,inode64" % mnt,
        "23 1 8:16 / %s/hdd rw - ext4 /dev/sdb rw" % mnt,
        "24 1 9:0 / %s/raid rw - ext4 /dev/md0 rw" % mnt,
        "25 1 254:1 / %s/vm rw - ext4 /dev/vda1 rw" % mnt,
        "26 1 0:45 /@data %s/btrfs rw - btrfs /dev/nvme0n1p1 rw,ssd,space_cache=v2" % mnt,
        "27 1 0:46 / %s/tmp rw - tmpfs tmpfs rw,size=1024k" % mnt,
        "28 1 0:47 / %s/overlay rw - overlay overlay rw,lowerdir=/a,upperdir=/b,workdir=/c" % mnt,
        "29 1 0:48 / /mnt/nfs-hung rw,relatime - nfs4 server:/export rw,vers=4.2,hard",
        "30 1 0:49 / %s/with\\040space rw - tmpfs tmpfs rw" % mnt,
    ]
    return {"sysfs": str(tree.root), "mnt": mnt, "mountinfo": "\n".join(lines) + "\n"}


def describe(fleet, *paths: str, **kwargs):
    return describe_paths(list(paths), fleet["mountinfo"], sysfs_root=fleet["sysfs"], **kwargs)


@pytest.mark.parametrize("name, kind, disks, layers", [
    ("lvm", "nvme", ["nvme0n1"], [("dm-0", "lvm", "vg0-data"), ("nvme0n1p2", "partition", None)]),
    ("ssd", "ssd", ["sda"], [("sda1", "partition", None)]),
    ("hdd", "hdd", ["sdb"], []),
    ("raid", "hdd", ["sdb", "sdc"], [("md0", "md", "raid1"), ("sdb1", "partition", None), ("sdc1", "partition", None)]),
    ("vm", "virtual", ["vda"], [("vda1", "partition", None)]),
    ("btrfs", "nvme", ["nvme0n1"], [("nvme0n1p1", "partition", None)]),
])
def test_every_kind_of_backing_storage(fleet, name, kind, disks, layers):
    path = str(fleet["mnt"] / name)
    entry = describe(fleet, path)["paths"][path]
    assert "error" not in entry, entry
    assert entry["kind"] == kind
    assert [d["name"] for d in entry["disks"]] == disks
    assert [(lay["name"], lay["type"], lay["detail"]) for lay in entry["layers"]] == layers
    assert entry["mount_point"] == path and entry["exists"] is True and entry["statted"] is True
    st = os.statvfs(path)
    assert entry["total_bytes"] == st.f_blocks * st.f_frsize


def test_mount_details_and_disk_attributes(fleet):
    path = str(fleet["mnt"] / "ssd")
    entry = describe(fleet, path)["paths"][path]
    assert entry["fstype"] == "xfs" and entry["source"] == "/dev/sda1" and entry["device"] == "8:1"
    assert entry["options"] == ["rw", "noatime", "attr2", "inode64"]
    assert entry["disks"] == [{"name": "sda", "kind": "ssd", "size_bytes": 2 ** 30 * 512, "rotational": False,
                               "model": "Samsung SSD 870"}]


def test_memory_and_overlay_filesystems(fleet):
    tmp, overlay = str(fleet["mnt"] / "tmp"), str(fleet["mnt"] / "overlay")
    facts = describe(fleet, tmp, overlay)["paths"]
    assert facts[tmp]["kind"] == "virtual" and "memory" in facts[tmp]["note"]
    assert facts[overlay]["kind"] == "unknown" and "no block device visible" in facts[overlay]["note"]


def test_network_mount_is_never_touched_unless_asked(fleet, monkeypatch):
    touched: List[str] = []
    real_stat = os.stat

    def spy(path, *args, **kwargs):
        touched.append(str(path))
        return real_stat(path, *args, **kwargs)
    monkeypatch.setattr(disk_inventory.os, "stat", spy)
    monkeypatch.setattr(disk_inventory.os, "statvfs", touched.append)
    entry = describe(fleet, "/mnt/nfs-hung/dify")["paths"]["/mnt/nfs-hung/dify"]
    assert [path for path in touched if not path.startswith(fleet["sysfs"])] == [], "only sysfs was read"
    assert entry["kind"] == "network" and entry["statted"] is False and entry["exists"] is None
    assert entry["fstype"] == "nfs4" and entry["source"] == "server:/export" and "total_bytes" not in entry


def test_a_hung_filesystem_call_is_given_up(fleet, monkeypatch):
    """A stand-in for a stale NFS server: the stat sleeps far past the deadline."""
    monkeypatch.setattr(disk_inventory, "_inspect", lambda path: time.sleep(5))
    started = time.monotonic()
    entry = describe(fleet, "/mnt/nfs-hung/dify", stat_network=True, timeout=0.2)["paths"]["/mnt/nfs-hung/dify"]
    assert time.monotonic() - started < 3
    assert "did not return within 0.2 s" in entry["error"] and "/mnt/nfs-hung/dify" in entry["error"]


def test_bad_paths_get_entries_that_name_them(fleet):
    afile = str(fleet["mnt"] / "ssd" / "afile")
    missing = str(fleet["mnt"] / "ssd" / "not" / "yet")
    facts = describe(fleet, "relative/dir", afile, missing, missing="error")["paths"]
    assert facts["relative/dir"] == {"path": "relative/dir", "error": (
        "relative/dir is not an absolute path; give it from / (for example /srv/dify/relative/dir)")}
    assert facts[afile]["error"] == "%s is a file, not a directory; give the directory that holds the data" % afile
    assert facts[missing]["error"] == "%s does not exist" % missing


def test_missing_path_describes_where_it_will_be_created(fleet):
    missing = str(fleet["mnt"] / "raid" / "postgres" / "data")
    entry = describe(fleet, missing)["paths"][missing]
    assert entry["exists"] is False and entry["described_path"] == str(fleet["mnt"] / "raid")
    assert entry["kind"] == "hdd" and entry["mount_point"] == str(fleet["mnt"] / "raid")


def test_escaped_mount_points(fleet):
    spaced = fleet["mnt"] / "with space"
    spaced.mkdir()
    entry = describe(fleet, str(spaced))["paths"][str(spaced)]
    assert entry["mount_point"] == str(spaced) and entry["fstype"] == "tmpfs"


def test_block_device_list(fleet):
    devices = {d["name"]: d for d in describe(fleet, "/")["block_devices"]}
    assert "loop0" not in devices, "empty loop devices are left out"
    assert devices["nvme0n1"]["kind"] == "nvme" and devices["nvme0n1"]["type"] == "disk"
    assert devices["sdb"]["kind"] == "hdd" and devices["sda"]["kind"] == "ssd"
    assert devices["vda"]["kind"] == "virtual" and devices["sdd"]["kind"] == "virtual"
    assert devices["md0"]["type"] == "md" and devices["md0"]["disks"] == ["sdb", "sdc"] and devices["md0"]["kind"] == "hdd"
    assert devices["dm-0"]["type"] == "lvm" and devices["dm-0"]["detail"] == "vg0-data" and devices["dm-0"]["kind"] == "nvme"


def test_mount_lookup_prefers_the_longest_and_latest_mount():
    mounts = parse_mountinfo("1 0 8:1 / / rw - ext4 /dev/sda1 rw\n"
                             "2 1 8:2 / /srv rw - ext4 /dev/sda2 rw\n"
                             "3 1 8:3 / /srv rw - ext4 /dev/sda3 rw\n"
                             "garbage line\n")
    assert mount_for("/srv/dify", mounts).source == "/dev/sda3"
    assert mount_for("/srvx", mounts).source == "/dev/sda1"
    assert mount_for("/srv", mounts).source == "/dev/sda3"


def test_this_machines_root_against_df():
    """The real /proc and /sys of the machine running the tests."""
    with open("/proc/self/mountinfo", encoding="utf-8") as handle:
        facts = describe_paths(["/"], handle.read())
    entry = facts["paths"]["/"]
    st = os.statvfs("/")
    assert entry["mount_point"] == "/" and entry["total_bytes"] == st.f_blocks * st.f_frsize
    assert entry["kind"] in ("nvme", "ssd", "hdd", "virtual", "unknown")


def test_slowest_kind():
    assert slowest_kind(["nvme", "hdd"]) == "hdd" and slowest_kind([]) == "unknown"
    assert slowest_kind(["ssd", "nvme"]) == "ssd"


FIO_JSON = ('note: both iodepth >= 1 and synchronous I/O engine are selected\n'
            '{"fio version": "fio-3.33", "jobs": [{"jobname": "difyops-iops-probe", '
            '"read": {"iops": 41234.56, "clat_ns": {"mean": 387512.0}}}]}')


def test_iops_probe_parses_fio_and_removes_its_scratch_file(tmp_path):
    calls = []

    def run(argv, seconds):
        calls.append((argv, seconds))
        (tmp_path / disk_inventory.FIO_FILE).write_bytes(b"scratch")
        return 0, FIO_JSON, ""
    result = probe_iops("/usr/bin/fio", str(tmp_path), 3, run)
    assert result == {"path": str(tmp_path), "result": "ok", "seconds": 3, "read_iops": 41235, "mean_latency_us": 387.5}
    assert not (tmp_path / disk_inventory.FIO_FILE).exists()
    assert "--runtime=3" in calls[0][0] and "--rw=randread" in calls[0][0] and calls[0][1] == 63


def test_iops_probe_skips_and_fails_cleanly(tmp_path):
    assert probe_iops(None, str(tmp_path), 3, None)["reason"] == "fio is not installed"
    assert probe_iops("/usr/bin/fio", str(tmp_path), 3, None, check_mode=True)["result"] == "skipped"
    failed = probe_iops("/usr/bin/fio", str(tmp_path), 3, lambda argv, s: (1, "", "fio: O_DIRECT not supported"))
    assert failed["result"] == "failed" and "O_DIRECT" in failed["reason"]
    with pytest.raises(ValueError):
        parse_fio("no json here")

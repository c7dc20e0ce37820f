# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Describe the storage behind data paths: mount, filesystem, space, and the physical disks.

The mount is found in /proc/self/mountinfo (text, never a filesystem call), the disks by walking
sysfs from the mount's device through partitions, device-mapper (LVM, dm-crypt) and md RAID down
to the whole disks, each classified as nvme, ssd, hdd or virtual; network filesystems are
`network`. Calls that touch the path's filesystem (realpath, stat, statvfs) are bounded by a
deadline, and a network filesystem is not touched at all unless the caller asks for it, so a stale
NFS mount cannot hang the play. No Ansible imports: the module wraps this.
"""

from __future__ import annotations

import os
import stat
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from .bounded import CallTimeout, bounded
from .sysfs import read_attribute

NETWORK_FSTYPES = frozenset((
    "nfs", "nfs4", "cifs", "smb3", "smbfs", "ncpfs", "ceph", "glusterfs", "fuse.glusterfs", "lustre",
    "gpfs", "afs", "beegfs", "fuse.sshfs", "sshfs", "fuse.s3fs", "fuse.rclone", "fuse.juicefs",
    "fuse.cephfs", "davfs", "fuse.davfs2", "ocfs2", "gfs2",
))
MEMORY_FSTYPES = frozenset(("tmpfs", "ramfs", "devtmpfs"))
# Vendors that only ever name emulated disks.
VIRTUAL_VENDORS = ("QEMU", "VMware", "VBOX", "Msft", "Google", "Xen", "Red Hat")
VIRTUAL_NAME_PREFIXES = ("vd", "xvd", "loop", "ram", "zram", "nbd", "rbd")
# Slowest first: the kind of a path backed by several disks is the slowest of them.
KIND_ORDER = ("network", "hdd", "virtual", "ssd", "nvme")
KINDS = KIND_ORDER + ("unknown",)


class Mount:
    """One line of /proc/self/mountinfo."""

    __slots__ = ("mount_point", "device", "root", "fstype", "source", "options")

    def __init__(self, mount_point: str, device: str, root: str, fstype: str, source: str, options: List[str]) -> None:
        self.mount_point = mount_point
        self.device = device
        self.root = root
        self.fstype = fstype
        self.source = source
        self.options = options

    @property
    def network(self) -> bool:
        return self.fstype in NETWORK_FSTYPES


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal (\\040 ...)."""
    out = []
    index = 0
    while index < len(field):
        chunk = field[index:index + 4]
        if chunk[:1] == "\\" and len(chunk) == 4 and chunk[1:].isdigit():
            out.append(chr(int(chunk[1:], 8)))
            index += 4
        else:
            out.append(field[index])
            index += 1
    return "".join(out)


def parse_mountinfo(text: str) -> List[Mount]:
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        if "-" not in fields:
            continue
        sep = fields.index("-")
        if sep < 6 or len(fields) < sep + 3:
            continue
        options: List[str] = []
        for option in fields[5].split(",") + fields[sep + 3].split(","):
            if option and option not in options:
                options.append(option)
        mounts.append(Mount(mount_point=_unescape(fields[4]), device=fields[2], root=_unescape(fields[3]),
                            fstype=fields[sep + 1], source=_unescape(fields[sep + 2]), options=options))
    return mounts


def mount_for(path: str, mounts: Sequence[Mount]) -> Optional[Mount]:
    """The mount that holds an absolute, normalised path: the longest mount point above it, and of
    equal ones the last mounted (it hides the others)."""
    best: Optional[Mount] = None
    for mount in mounts:
        point = mount.mount_point
        if path == point or point == "/" or path.startswith(point.rstrip("/") + "/"):
            if best is None or len(point) >= len(best.mount_point):
                best = mount
    return best


# --------------------------------------------------------------------------------------------- sysfs

class Sysfs:
    """Block-device queries against a sysfs tree (the real /sys, or a test fixture)."""

    def __init__(self, root: str = "/sys") -> None:
        self.root = root

    def node_for_device(self, device: str) -> Optional[str]:
        """The device directory of a MAJ:MIN number."""
        link = os.path.join(self.root, "dev", "block", device)
        return os.path.realpath(link) if os.path.exists(link) else None

    def node_for_name(self, name: str) -> Optional[str]:
        """The device directory of a kernel name (sda1, dm-0) or a /dev/mapper name."""
        link = os.path.join(self.root, "class", "block", name)
        if os.path.exists(link):
            return os.path.realpath(link)
        for candidate in self.block_names():
            if read_attribute(os.path.join(self.root, "block", candidate, "dm", "name")) == name:
                return os.path.realpath(os.path.join(self.root, "block", candidate))
        return None

    def block_names(self) -> List[str]:
        try:
            return sorted(os.listdir(os.path.join(self.root, "block")))
        except OSError:
            return []

    @staticmethod
    def whole_disk(node: str) -> str:
        """A partition's directory sits inside its disk's directory."""
        return os.path.dirname(node) if os.path.exists(os.path.join(node, "partition")) else node

    @staticmethod
    def slaves(node: str) -> List[str]:
        directory = os.path.join(node, "slaves")
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            return []
        return [os.path.realpath(os.path.join(directory, name)) for name in names]

    @staticmethod
    def layer(node: str) -> Dict[str, Any]:
        """What a stacked device is: LVM, dm-crypt, multipath, other device-mapper, md RAID."""
        name = os.path.basename(node)
        dm_uuid = read_attribute(os.path.join(node, "dm", "uuid"))
        if dm_uuid is not None:
            kinds = (("LVM-", "lvm"), ("CRYPT-", "crypt"), ("mpath-", "multipath"))
            layer_type = next((kind for prefix, kind in kinds if dm_uuid.startswith(prefix)), "dm")
            return {"name": name, "type": layer_type, "detail": read_attribute(os.path.join(node, "dm", "name"))}
        level = read_attribute(os.path.join(node, "md", "level"))
        if level is not None:
            return {"name": name, "type": "md", "detail": level}
        if os.path.exists(os.path.join(node, "partition")):
            return {"name": name, "type": "partition", "detail": None}
        return {"name": name, "type": "disk", "detail": None}

    @staticmethod
    def classify(node: str) -> str:
        name = os.path.basename(node)
        if name.startswith("nvme"):
            return "nvme"
        vendor = read_attribute(os.path.join(node, "device", "vendor")) or ""
        if (name.startswith(VIRTUAL_NAME_PREFIXES) or "/devices/virtual/" in node or "/virtio" in node
                or vendor.startswith(VIRTUAL_VENDORS)):
            return "virtual"
        return "hdd" if read_attribute(os.path.join(node, "queue", "rotational")) == "1" else "ssd"

    def disk_entry(self, node: str) -> Dict[str, Any]:
        size = read_attribute(os.path.join(node, "size"))
        model = read_attribute(os.path.join(node, "device", "model"))
        return {
            "name": os.path.basename(node),
            "kind": self.classify(node),
            "size_bytes": int(size) * 512 if size and size.isdigit() else None,
            "rotational": read_attribute(os.path.join(node, "queue", "rotational")) == "1",
            "model": model or None,
        }

    def resolve(self, node: str, depth: int = 0) -> Tuple[List[Dict[str, Any]], List[Dict[str, Any]]]:
        """(physical disks, layers above them) for a device directory; partitions, dm and md are
        followed down through `slaves` to the whole disks."""
        layers = []
        if os.path.exists(os.path.join(node, "partition")):
            layers.append(self.layer(node))
            node = self.whole_disk(node)
        below = self.slaves(node)
        if not below or depth > 16:
            return [self.disk_entry(node)], layers
        layers.append(self.layer(node))
        disks: List[Dict[str, Any]] = []
        for slave in below:
            slave_disks, slave_layers = self.resolve(slave, depth + 1)
            layers.extend(slave_layers)
            for disk in slave_disks:
                if disk["name"] not in [d["name"] for d in disks]:
                    disks.append(disk)
        return disks, layers

    def block_devices(self) -> List[Dict[str, Any]]:
        """Every block device of /sys/block (whole disks, dm, md, loop, zram); empty ones are left out."""
        devices = []
        for name in self.block_names():
            node = os.path.realpath(os.path.join(self.root, "block", name))
            entry = self.disk_entry(node)
            if not entry["size_bytes"]:
                continue
            layer = self.layer(node)
            entry["type"] = "loop" if name.startswith("loop") else layer["type"]
            entry["detail"] = layer["detail"]
            disks, _layers = self.resolve(node)
            entry["disks"] = [d["name"] for d in disks] if self.slaves(node) else []
            if entry["disks"]:
                entry["kind"] = slowest_kind(d["kind"] for d in disks)
            devices.append(entry)
        return devices


def slowest_kind(kinds: Any) -> str:
    known = [kind for kind in kinds if kind in KIND_ORDER]
    return min(known, key=KIND_ORDER.index) if known else "unknown"


# --------------------------------------------------------------------------------------- the facts

def backing(mount: Mount, sysfs: Sysfs) -> Dict[str, Any]:
    """Kind, physical disks and layers behind a mount."""
    if mount.network:
        return {"kind": "network", "disks": [], "layers": [], "note": "network filesystem %s" % mount.fstype}
    node = None
    if not mount.device.startswith("0:"):
        node = sysfs.node_for_device(mount.device)
    if node is None and mount.source.startswith("/dev/"):
        # btrfs and some others show an anonymous 0:N device; the source names the real one.
        source = mount.source
        name = source[len("/dev/mapper/"):] if source.startswith("/dev/mapper/") else os.path.basename(source)
        node = sysfs.node_for_name(name)
    if node is None:
        if mount.fstype in MEMORY_FSTYPES:
            return {"kind": "virtual", "disks": [], "layers": [], "note": "%s lives in memory" % mount.fstype}
        return {"kind": "unknown", "disks": [], "layers": [],
                "note": "%s on %s has no block device visible to this host" % (mount.fstype, mount.source)}
    disks, layers = sysfs.resolve(node)
    return {"kind": slowest_kind(d["kind"] for d in disks), "disks": disks, "layers": layers, "note": None}


def _inspect(path: str) -> Tuple[str, bool, bool, str]:
    """(real path of the nearest existing ancestor, path exists, is a directory, what it is)."""
    probe = path
    while True:
        try:
            mode = os.stat(probe).st_mode
            break
        except FileNotFoundError:
            parent = os.path.dirname(probe)
            if parent == probe:
                raise
            probe = parent
    what = "directory" if stat.S_ISDIR(mode) else "file" if stat.S_ISREG(mode) else "special file"
    return os.path.realpath(probe), probe == path, stat.S_ISDIR(mode), what


def _space(path: str) -> Dict[str, int]:
    st = os.statvfs(path)
    total = st.f_blocks * st.f_frsize
    return {
        "total_bytes": total,
        "free_bytes": st.f_bavail * st.f_frsize,
        "used_bytes": (st.f_blocks - st.f_bfree) * st.f_frsize,
        "inodes_total": st.f_files,
        "inodes_free": st.f_favail,
    }


def _error(path: str, message: str) -> Dict[str, Any]:
    return {"path": path, "error": message}


def describe_path(path: str, mounts: Sequence[Mount], sysfs: Sysfs, timeout: float = 10.0, missing: str = "parent",
                  stat_network: bool = False) -> Dict[str, Any]:
    """The facts of one data path, or an entry with `error` naming what is wrong with it."""
    if not os.path.isabs(path):
        return _error(path, "%s is not an absolute path; give it from / (for example /srv/dify/%s)" % (path, path))
    lexical = os.path.normpath(path)
    mount = mount_for(lexical, mounts)
    if mount is not None and mount.network and not stat_network:
        # Not even a stat: a hung server would hang it. mountinfo says all we report.
        entry = _mount_entry(path, lexical, mount, exists=None)
        entry.update(backing(mount, sysfs))
        entry["statted"] = False
        return entry
    try:
        real, exists, is_dir, what = bounded("stat %s" % lexical, timeout, _inspect, lexical)
    except CallTimeout as exc:
        return _error(path, "%s: %s (a hung network filesystem?)" % (path, exc))
    except OSError as exc:
        return _error(path, "%s cannot be inspected: %s" % (path, exc.strerror or exc))
    if not exists and missing == "error":
        return _error(path, "%s does not exist" % path)
    if exists and not is_dir:
        return _error(path, "%s is a %s, not a directory; give the directory that holds the data" % (path, what))
    mount = mount_for(real, mounts)
    if mount is None:
        return _error(path, "%s is on no mount listed in /proc/self/mountinfo" % path)
    entry = _mount_entry(path, real, mount, exists=exists)
    if not mount.network or stat_network:
        try:
            entry.update(bounded("statvfs %s" % real, timeout, _space, real))
        except CallTimeout as exc:
            entry["space_error"] = str(exc)
        except OSError as exc:
            entry["space_error"] = "statvfs %s failed: %s" % (real, exc.strerror or exc)
    entry.update(backing(mount, sysfs))
    entry["statted"] = True
    return entry


def _mount_entry(path: str, described: str, mount: Mount, exists: Optional[bool]) -> Dict[str, Any]:
    return {
        "path": path,
        "exists": exists,
        "described_path": described,
        "mount_point": mount.mount_point,
        "fstype": mount.fstype,
        "source": mount.source,
        "options": mount.options,
        "device": mount.device,
    }


def describe_paths(paths: Sequence[str], mountinfo: str, sysfs_root: str = "/sys", timeout: float = 10.0,
                   missing: str = "parent", stat_network: bool = False) -> Dict[str, Any]:
    """The `disks` fact: per path facts (keyed by the path as given) and every block device."""
    mounts = parse_mountinfo(mountinfo)
    sysfs = Sysfs(sysfs_root)
    return {
        "paths": {path: describe_path(path, mounts, sysfs, timeout, missing, stat_network) for path in paths},
        "block_devices": sysfs.block_devices(),
    }


# ----------------------------------------------------------------------------------------- IOPS probe

FIO_FILE = ".difyops-iops-probe"


def fio_command(fio: str, directory: str, seconds: int, size_mb: int = 64) -> List[str]:
    """Four synchronous readers: psync works where libaio is refused (containers, some seccomp profiles)."""
    return [fio, "--name=difyops-iops-probe", "--filename=%s" % os.path.join(directory, FIO_FILE),
            "--size=%dM" % size_mb, "--rw=randread", "--bs=4k", "--ioengine=psync", "--numjobs=4",
            "--group_reporting", "--direct=1", "--time_based", "--runtime=%d" % seconds, "--output-format=json"]


def parse_fio(output: str) -> Dict[str, Any]:
    """IOPS and mean latency of fio's JSON report for one random-read job."""
    import json  # pylint: disable=import-outside-toplevel
    start = output.find("{")
    report = json.loads(output[start:]) if start >= 0 else {}
    jobs = report.get("jobs") or []
    if not jobs:
        raise ValueError("fio printed no job report")
    if jobs[0].get("error"):
        raise ValueError("fio reported error %s" % jobs[0]["error"])
    read = jobs[0]["read"]
    latency_ns = (read.get("clat_ns") or {}).get("mean")
    return {"read_iops": int(round(read["iops"])),
            "mean_latency_us": round(latency_ns / 1000.0, 1) if latency_ns else None}


def probe_iops(fio: Optional[str], directory: str, seconds: int, run: Callable[[List[str], float], Tuple[int, str, str]],
               check_mode: bool = False) -> Dict[str, Any]:
    """A short 4 KiB random-read test with fio in `directory`; its scratch file is always removed."""
    if check_mode:
        return {"path": directory, "result": "skipped", "reason": "check mode: the probe writes a scratch file"}
    if not fio:
        return {"path": directory, "result": "skipped", "reason": "fio is not installed"}
    scratch = os.path.join(directory, FIO_FILE)
    try:
        rc, out, err = run(fio_command(fio, directory, seconds), seconds + 60)
        if rc != 0:
            return {"path": directory, "result": "failed", "reason": "fio exited %d: %s" % (rc, (err or out).strip()[:300])}
        result = {"path": directory, "result": "ok", "seconds": seconds}
        result.update(parse_fio(out))
        return result
    except CallTimeout as exc:
        return {"path": directory, "result": "failed", "reason": str(exc)}
    except (ValueError, KeyError) as exc:
        return {"path": directory, "result": "failed", "reason": "fio's report could not be read: %s" % exc}
    finally:
        if os.path.exists(scratch):
            os.unlink(scratch)

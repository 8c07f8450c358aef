"""A lab's identity and persistent state.

Every lab has a short name; the name prefixes its namespaces, interfaces and
directory, so several labs run side by side. Each lab also gets an index
k (1..250) that picks its private subnets:

  management  NET.k.0/24   host .1, shelf managers .2/.3, NMS .9, blade i .(10+i)
  replication NET2.k.0/24  blade i .(10+i)

(NET = 10.77 and NET2 = 10.78 unless $ATCA_LAB_NET / $ATCA_LAB_NET2 say
otherwise.) Ports need no allocation: every daemon listens inside its own
network namespace.

The state (what runs, with which PIDs, which faults are injected) lives in
DIR/state.json and is written atomically; one global lock serialises labs
being created or removed. Several processes change one lab's state at once
(a command, and the hook the shelf manager runs when it powers a blade off
or on): every save is a load-modify-save under DIR/state.lock that merges
this process's changes (against the state it last read) into what is on
disk, so that nobody's changes are lost.
"""

import copy
import fcntl
import json
import os
import re

from .util import LabError

NAME_RE = re.compile(r"^[a-z][a-z0-9]{0,7}$")
LOCK = "/run/atca-lab.lock"
BASE = os.environ.get("ATCA_LAB_BASE", "/tmp")


def net_prefixes():
    return (os.environ.get("ATCA_LAB_NET", "10.77"), os.environ.get("ATCA_LAB_NET2", "10.78"))


def lab_dir(name):
    return os.path.join(BASE, "atca-lab-" + name)


def check_name(name):
    if not NAME_RE.match(name):
        raise LabError("lab name '%s': 1 to 8 characters, a lower-case letter then letters or "
                       "digits (it prefixes interface names, which are short)" % name)


class FileLock:
    """An exclusive lock (fcntl.flock) on a file, held for a with block. Not
    re-entrant: never take the same lock twice in one process."""

    def __init__(self, path):
        self.path = path

    def __enter__(self):
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *a):
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


class GlobalLock(FileLock):
    def __init__(self):
        super().__init__(LOCK)


_MISSING = object()


def merge3(base, mine, theirs):
    """Three-way merge of JSON-like values: what this process changed since
    base (mine) wins, everything else comes from disk (theirs)."""
    if isinstance(mine, dict) and isinstance(theirs, dict):
        b = base if isinstance(base, dict) else {}
        out = {}
        for k in set(mine) | set(theirs):
            bk = b.get(k, _MISSING)
            if k in mine and k in theirs:
                out[k] = merge3(bk, mine[k], theirs[k])
            elif k in mine:
                if bk is _MISSING or bk != mine[k]:
                    out[k] = mine[k]      # added or changed here
                # else: removed there
            elif bk is _MISSING or bk != theirs[k]:
                out[k] = theirs[k]        # added or changed there
            # else: removed here
        return out
    return theirs if mine == base else mine


def _assign(dst, src):
    """Makes dict dst equal to src in place (callers hold references into
    the state, e.g. to a blade's record)."""
    for k in list(dst):
        if k not in src:
            del dst[k]
    for k, v in src.items():
        if isinstance(v, dict) and isinstance(dst.get(k), dict):
            _assign(dst[k], v)
        else:
            dst[k] = copy.deepcopy(v)


def existing_labs():
    """Names of labs that have a state file."""
    out = []
    try:
        entries = os.listdir(BASE)
    except OSError:
        return out
    for d in sorted(entries):
        if d.startswith("atca-lab-") and os.path.exists(os.path.join(BASE, d, "state.json")):
            out.append(d[len("atca-lab-"):])
    return out


def free_index():
    used = set()
    for name in existing_labs():
        try:
            used.add(Lab.load(name).index)
        except LabError:
            pass
    for k in range(1, 251):
        if k not in used:
            return k
    raise LabError("no free lab index (250 labs?)")


class Lab:
    """Names, addresses and the persistent record of one lab."""

    def __init__(self, name, index, state=None):
        check_name(name)
        self.name = name
        self.index = index
        self.dir = lab_dir(name)
        self.state = state if state is not None else {"name": name, "index": index}
        self._base = copy.deepcopy(state) if state is not None else {}

    # ---- persistence
    @classmethod
    def load(cls, name):
        check_name(name)
        path = os.path.join(lab_dir(name), "state.json")
        try:
            with open(path) as f:
                st = json.load(f)
        except FileNotFoundError:
            raise LabError("no lab '%s' (atca-lab up --name %s creates it)" % (name, name))
        except (OSError, ValueError) as e:
            raise LabError("%s: %s" % (path, e))
        return cls(name, st["index"], st)

    def lock(self):
        """The lab's state lock (load-modify-save of state.json)."""
        return FileLock(os.path.join(self.dir, "state.lock"))

    def save(self):
        """Writes this process's changes, merged with what other processes
        wrote meanwhile; afterwards self.state holds the merged state."""
        path = os.path.join(self.dir, "state.json")
        tmp = "%s.%d.tmp" % (path, os.getpid())
        with self.lock():
            try:
                with open(path) as f:
                    disk = json.load(f)
            except FileNotFoundError:
                disk = {}
            except (OSError, ValueError) as e:
                raise LabError("%s: %s" % (path, e))
            merged = merge3(self._base, self.state, disk)
            with open(tmp, "w") as f:
                json.dump(merged, f, indent=2, sort_keys=True)
                f.flush()
                os.fsync(f.fileno())
            os.rename(tmp, path)
        _assign(self.state, merged)
        self._base = copy.deepcopy(merged)

    def sync(self):
        """Saves our changes and picks up everybody else's (e.g. a hook's)."""
        self.save()

    # ---- names (interface names are at most 15 characters)
    def ns(self, what):
        return "%s-%s" % (self.name, what)  # net, shelf, nms, b1..b16

    def blade_ns(self, slot):
        return self.ns("b%d" % slot)

    def host_if(self):
        return self.name + "h"

    def bridge_port(self, what):
        return self.name + what  # e.g. NAMEb1m, NAMEb1r, NAMEsh, NAMEnm, NAMEhp

    # ---- addresses
    def mgmt(self, host):
        return "%s.%d.%d" % (net_prefixes()[0], self.index, host)

    def repl(self, host):
        return "%s.%d.%d" % (net_prefixes()[1], self.index, host)

    def host_addr(self):
        return self.mgmt(1)

    def shmc_addr(self, which):
        return self.mgmt(2 if which == "a" else 3)

    def nms_addr(self):
        return self.mgmt(9)

    def blade_mgmt(self, slot):
        return self.mgmt(10 + slot)

    def blade_repl(self, slot):
        return self.repl(10 + slot)

    # ---- paths
    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def blade_dir(self, slot):
        return self.path("b%d" % slot)

    @property
    def blades(self):
        return self.state.get("blades", 0)

    def blade(self, slot):
        b = self.state.get("blade", {}).get(str(slot))
        if b is None:
            raise LabError("lab '%s' has no blade %s (it has %d)" % (self.name, slot, self.blades))
        return b

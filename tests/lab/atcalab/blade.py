"""Simulated blades. A blade is a set of namespaces held by one process, the
blade's "init":

  ip netns exec NAME-bI unshare --mount --uts --pid --fork --mount-proc ... holder.sh

The holder is PID 1 of the blade's PID namespace (it reaps orphans at once,
so libvirt sees a dead QEMU in ~0.2 s instead of waiting for the host's
init) and owns a private mount namespace: private /run, an overlay on /var,
private /etc/libvirt, /etc/corosync, /etc/passwd, /etc/group, /etc/hosts,
/dev/shm, and the lab's shared directory at /var/lib/libvirt/images (shared
storage). Killing the holder with SIGKILL kills every process of the blade
at once: that is a blade power loss.

Everything else runs with "nsenter -t HOLDER -m -u -n -p", which forks: the
lab records both nsenter's PID and the daemon's host PID.
"""

import os
import shutil
import signal
import time

from . import net, util
from .util import LabError

HOLDER_SH = r"""#!/bin/bash
# atca-lab blade holder: PID 1 of the blade's PID namespace.
set -euo pipefail
slot=$1; D=$2; SHARED=$3
mount --bind "$D/run" /run
mount -t overlay "lab-var-b$slot" -o "lowerdir=/var,upperdir=$D/var.upper,workdir=$D/var.work" /var
for d in lib/libvirt log/libvirt cache/libvirt lib/corosync log/corosync; do
    mkdir -p "/var/$d"
    mount --bind "$D/${d//\//-}" "/var/$d"
done
mkdir -p /var/lib/libvirt/images /var/log/libvirt/qemu
mount --bind "$SHARED" /var/lib/libvirt/images
mount --bind "$D/etc-libvirt" /etc/libvirt
mount --bind "$D/etc-corosync" /etc/corosync
for f in passwd group hosts; do mount --bind "$D/etc.$f" "/etc/$f"; done
mount -t tmpfs -o mode=1777,size=4g "lab-shm-b$slot" /dev/shm
hostname "blade$slot"
trap 'exit 0' TERM
touch "$D/ready"
while :; do sleep 3600 & wait || true; done
"""

QEMU_CONF = """# atca-lab: libvirtd's QEMU driver inside a simulated blade
user = "root"
group = "root"
security_driver = "none"
stdio_handler = "file"
cgroup_controllers = [ ]
"""

LIBVIRTD_CONF = """# atca-lab: unix socket only (the host reaches it through the blade's /run)
listen_tls = 0
listen_tcp = 0
unix_sock_group = "root"
unix_sock_rw_perms = "0770"
log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
"""


def corosync_conf(lab):
    nodes = "".join(
        "\tnode {\n\t\tnodeid: %d\n\t\tname: blade%d\n\t\tring0_addr: %s\n\t}\n"
        % (s, s, lab.blade_mgmt(s)) for s in range(1, lab.blades + 1))
    two = "\ttwo_node: 1\n" if lab.blades == 2 else ""
    # The corosync parser wants a newline after every '{'. token 1000 with
    # token_coefficient 0: node loss is seen in ~2.2 s whatever the size.
    # knet encrypts and authenticates every packet with the lab's shared
    # authkey, as SECURITY.md tells operators to: a stranger on the
    # management network cannot join the membership or feed CPG messages.
    return ("totem {\n\tversion: 2\n\tcluster_name: %s\n\ttransport: knet\n"
            "\ttoken: 1000\n\ttoken_coefficient: 0\n\tcrypto_cipher: aes256\n"
            "\tcrypto_hash: sha256\n\tinterface {\n\t\tlinknumber: 0\n\t}\n}\n"
            "nodelist {\n%s}\nquorum {\n\tprovider: corosync_votequorum\n%s}\n"
            "logging {\n\tto_logfile: yes\n\tlogfile: /var/log/corosync/corosync.log\n"
            "\tto_syslog: no\n\tto_stderr: no\n\ttimestamp: hires\n}\n"
            "system {\n\tstate_dir: /var/lib/corosync\n}\n") % (lab.name, nodes, two)


def corosync_authkey(lab):
    """The lab's corosync key (what corosync-keygen makes: 128 random bytes),
    made once and shared by every blade."""
    path = os.path.join(lab.dir, "corosync-authkey")
    if not os.path.exists(path):
        tmp = "%s.%d" % (path, os.getpid())
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o400)
        try:
            os.write(fd, os.urandom(128))
        finally:
            os.close(fd)
        os.rename(tmp, path)
    return path


def prepare(lab, slot):
    """The blade's private directories and configuration files."""
    d = lab.blade_dir(slot)
    for sub in ("run/lock", "var.upper", "var.work", "lib-libvirt", "log-libvirt/qemu",
                "cache-libvirt", "lib-corosync", "log-corosync", "etc-libvirt",
                "etc-corosync"):
        os.makedirs(os.path.join(d, sub), exist_ok=True)
    for f in ("libvirt.conf", "libvirt-admin.conf"):
        if os.path.exists("/etc/libvirt/" + f):
            shutil.copy("/etc/libvirt/" + f, os.path.join(d, "etc-libvirt", f))
    util.write(os.path.join(d, "etc-libvirt", "qemu.conf"), QEMU_CONF)
    util.write(os.path.join(d, "etc-libvirt", "libvirtd.conf"), LIBVIRTD_CONF)
    if os.path.isdir("/etc/corosync/uidgid.d"):
        shutil.copytree("/etc/corosync/uidgid.d", os.path.join(d, "etc-corosync", "uidgid.d"),
                        dirs_exist_ok=True)
    util.write(os.path.join(d, "etc-corosync", "corosync.conf"), corosync_conf(lab))
    shutil.copy(corosync_authkey(lab), os.path.join(d, "etc-corosync", "authkey"))
    os.chmod(os.path.join(d, "etc-corosync", "authkey"), 0o400)
    # The QEMU driver insists on a libvirt-qemu user even when told to run
    # as root: give the blade private copies of passwd/group that have one.
    for f, line in (("passwd", "libvirt-qemu:x:64055:64055:Libvirt Qemu:/var/lib/libvirt:"
                                "/usr/sbin/nologin\n"), ("group", "libvirt-qemu:x:64055:\n")):
        with open("/etc/" + f) as src:
            text = src.read()
        if not any(ln.startswith("libvirt-qemu:") for ln in text.splitlines()):
            text += line
        util.write(os.path.join(d, "etc." + f), text)
    hosts = [ln for ln in open("/etc/hosts").read().splitlines() if not ln.startswith("127.0.1.1")]
    hosts.append("127.0.1.1 blade%d" % slot)
    hosts += ["%s blade%d" % (lab.blade_mgmt(s), s) for s in range(1, lab.blades + 1)]
    util.write(os.path.join(d, "etc.hosts"), "\n".join(hosts) + "\n")
    util.write(os.path.join(d, "holder.sh"), HOLDER_SH, 0o755)


def create_ns(lab, slot):
    ns = lab.blade_ns(slot)
    net.add_ns(ns)
    net.attach(lab, ns, lab.bridge_port("b%dm" % slot), "mgmt0", net.BR_MGMT,
               [lab.blade_mgmt(slot)])
    net.attach(lab, ns, lab.bridge_port("b%dr" % slot), "repl0", net.BR_REPL,
               [lab.blade_repl(slot)])


def start_holder(lab, slot):
    d = lab.blade_dir(slot)
    ready = os.path.join(d, "ready")
    if os.path.exists(ready):
        os.unlink(ready)
    # A booting blade's /run is empty (tmpfs on real hardware): libvirt's
    # status files and pidfiles of before a power loss must not survive it,
    # or a restarted libvirtd could take a recycled pid for a dead guest.
    run = os.path.join(d, "run")
    if os.path.isdir(run):
        for entry in os.listdir(run):
            path = os.path.join(run, entry)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                try:
                    os.unlink(path)
                except OSError:
                    pass
    unshare = util.spawn(["ip", "netns", "exec", lab.blade_ns(slot), "unshare", "--mount",
                          "--uts", "--pid", "--fork", "--mount-proc", "--propagation", "private",
                          os.path.join(d, "holder.sh"), str(slot), d, lab.path("shared")],
                         os.path.join(d, "holder.log"))
    holder = util.wait_until("blade %d's holder" % slot,
                             lambda: (util.direct_children(unshare) or [None])[0], timeout=10)
    util.wait_until("blade %d's namespaces" % slot, lambda: os.path.exists(ready), timeout=10)
    b = lab.state.setdefault("blade", {}).setdefault(str(slot), {})
    b.update({"holder": holder, "unshare": unshare, "power": "on"})
    b.pop("daemons", None)
    return holder


def nsenter_cmd(holder, cmd):
    return ["nsenter", "-t", str(holder), "-m", "-u", "-n", "-p", "--"] + cmd


def holder_of(lab, slot):
    b = lab.blade(slot)
    if b.get("power") != "on" or not util.alive(b.get("holder")):
        raise LabError("blade %d is powered off (atca-lab repair power %d)" % (slot, slot))
    return b["holder"]


def run_in(lab, slot, cmd, check=True, timeout=60):
    return util.run(nsenter_cmd(holder_of(lab, slot), cmd), check=check, timeout=timeout)


def start_daemon(lab, slot, name, cmd, env=None):
    """Starts cmd inside the blade; records nsenter's and the daemon's PID."""
    holder = holder_of(lab, slot)
    log = os.path.join(lab.blade_dir(slot), name + ".out")
    ns_pid = util.spawn(nsenter_cmd(holder, cmd), log, env=env)
    pid = util.wait_until("%s in blade %d" % (name, slot),
                          lambda: (util.direct_children(ns_pid) or [None])[0], timeout=5)
    lab.blade(slot).setdefault("daemons", {})[name] = {"pid": pid, "nsenter": ns_pid}
    return pid


def daemon_pid(lab, slot, name):
    d = lab.blade(slot).get("daemons", {}).get(name)
    return d["pid"] if d and util.alive(d["pid"]) else None


def stop_daemon(lab, slot, name, sig=signal.SIGTERM):
    d = lab.blade(slot).get("daemons", {}).pop(name, None)
    if d:
        util.kill(d["pid"], sig)
        util.kill(d["nsenter"], signal.SIGTERM, wait=2)


def start_corosync(lab, slot):
    return start_daemon(lab, slot, "corosync", ["corosync", "-f"])


def start_libvirtd(lab, slot):
    return start_daemon(lab, slot, "libvirtd", ["libvirtd"])


def libvirt_uri(lab, slot):
    """The host's way into a blade's libvirtd: its socket in the private /run."""
    return "qemu:///system?socket=%s" % os.path.join(lab.blade_dir(slot), "run", "libvirt",
                                                     "libvirt-sock")


def quorum(lab, slot):
    """(quorate, members) of the blade's corosync, or None if unreachable."""
    p = run_in(lab, slot, ["corosync-quorumtool", "-s"], check=False, timeout=10)
    if not p.stdout:
        return None
    quorate = any(ln.split(":", 1)[1].strip() == "Yes"
                  for ln in p.stdout.splitlines() if ln.startswith("Quorate:"))
    members = []
    in_list = False
    for ln in p.stdout.splitlines():
        if ln.startswith("Membership information"):
            in_list = True
            continue
        parts = ln.split()
        if in_list and len(parts) >= 3 and parts[0].isdigit():
            members.append(parts[2].replace("(local)", "").strip())
    return quorate, sorted(members)


def libvirt_ok(lab, slot):
    p = util.run(["virsh", "-q", "-c", libvirt_uri(lab, slot), "list", "--all"], check=False,
                 timeout=10)
    return p.returncode == 0


def power_off(lab, slot):
    """Every process of the blade dies at once, as when its payload power goes."""
    b = lab.blade(slot)
    if util.alive(b.get("holder")):
        os.kill(b["holder"], signal.SIGKILL)
    deadline = time.monotonic() + 5
    while util.alive(b.get("holder")) and time.monotonic() < deadline:
        time.sleep(0.01)
    util.kill(b.get("unshare"), signal.SIGKILL, wait=1)
    for d in b.get("daemons", {}).values():
        util.kill(d["nsenter"], signal.SIGKILL, wait=1)
    b["daemons"] = {}
    b["power"] = "off"

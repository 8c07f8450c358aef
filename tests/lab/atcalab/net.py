"""The lab's networks: a namespace NAME-net holds two bridges, the
management network (corosync, IPMI to the shelf managers, SNMP to the NMS)
and the replication link between blades. Every blade, the shelf and the NMS
have their own namespace with a veth into the bridges; the host gets a veth
into the management bridge so that host tools (ipmitool, the tests) reach
the shelf managers as an operator's workstation would."""

import os

from . import util
from .util import LabError

BR_MGMT = "brmgmt"
BR_REPL = "brrepl"


def ip(*args, check=True):
    return util.run(["ip"] + list(args), check=check)


def ns_exists(name):
    return os.path.exists("/run/netns/" + name)


def add_ns(name):
    if ns_exists(name):
        raise LabError("network namespace %s already exists (another lab of that name? "
                       "atca-lab down --name ... removes it)" % name)
    ip("netns", "add", name)
    ip("-n", name, "link", "set", "lo", "up")


def del_ns(name):
    if ns_exists(name):
        ip("netns", "del", name, check=False)


def create_fabric(lab):
    """The bridge namespace and the host's port on the management network."""
    net = lab.ns("net")
    add_ns(net)
    for br in (BR_MGMT, BR_REPL):
        ip("-n", net, "link", "add", br, "type", "bridge", "stp_state", "0", "forward_delay", "0")
        ip("-n", net, "link", "set", br, "up")
    hostif = lab.host_if()
    ip("link", "add", hostif, "type", "veth", "peer", "name", lab.bridge_port("hp"), "netns", net)
    ip("-n", net, "link", "set", lab.bridge_port("hp"), "master", BR_MGMT, "up")
    ip("addr", "add", lab.host_addr() + "/24", "dev", hostif)
    ip("link", "set", hostif, "up")


def attach(lab, ns, port, ifname, bridge, addrs):
    """A veth from namespace ns (as ifname, with addrs) into bridge."""
    net = lab.ns("net")
    ip("-n", net, "link", "add", port, "type", "veth", "peer", "name", ifname, "netns", ns)
    ip("-n", net, "link", "set", port, "master", bridge, "up")
    for a in addrs:
        ip("-n", ns, "addr", "add", a + "/24", "dev", ifname)
    ip("-n", ns, "link", "set", ifname, "up")


def set_port(lab, port, up):
    """Link state of a bridge port: the lab's way to cut a cable."""
    ip("-n", lab.ns("net"), "link", "set", port, "up" if up else "down")


def port_up(lab, port):
    p = ip("-n", lab.ns("net"), "-o", "link", "show", port, check=False)
    return p.returncode == 0 and "state DOWN" not in p.stdout and ",UP" in p.stdout


def destroy_fabric(lab):
    ip("link", "del", lab.host_if(), check=False)
    del_ns(lab.ns("net"))

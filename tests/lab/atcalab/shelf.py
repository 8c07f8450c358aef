"""The simulated ATCA shelf: OpenIPMI's ipmi_sim as the shelf manager (IPMB
0x20) with every blade IPMC (0x82, 0x84, ...) behind it, generated from a
readable description (shelf.ini). With two shelf managers, two independent
ipmi_sim instances emulate the same shelf on two addresses; every injection
goes to both so they agree on the hardware state.

Facts this relies on (measured, see shared/notes/lab-facts.md):
- mc_add leaves an MC disabled: every MC needs mc_enable, and without it on
  0x20 the LAN socket never opens.
- Numbers in .emu files are parsed C-style: hex always as 0x...
- SDRs are compiled with "sdrcomp -8 -r" (without -8 names are 6-bit packed).
- ATCA support needs FRU 254 on 0x20 with the PICMG Address Table and FRU 0
  on every blade.
- No asynchronous events over LAN: clients poll the SEL.
- FRU activation (policy, Set FRU Activation beyond the simplest walks,
  payload power, chassis control on a blade IPMC) comes from the lab's
  ipmi_sim plugin, plugin/atca_picmg.c, built here and loaded by lan.conf's
  "loadlib"; chassis commands reach a blade IPMC only if mc_add makes it a
  chassis device (device support bit 0x80).
"""

import configparser
import os
import re
import socket
import subprocess
import time

from . import util
from .util import LabError

SHMC = 0x20
MFG_ID = 0x00315A  # PICMG's IANA number, as the fake vendor
SITE_FRONT_BOARD = 0x00
SITE_SHMC = 0x03
ENT_FRONT = 0xA0
ENT_SHMC = 0xF0
ENT_FAN = 0x1E
ENT_PROCESSOR = 0x03
ENT_MEMORY = 0x20
THR_ORDER = ["lnc", "lc", "lnr", "unc", "uc", "unr"]
# assertion bits of the threshold events we generate: lnc/lc/lnr going low,
# unc/uc/unr going high (IPMI 2.0 table 42-2 order)
THR_EVENT_BITS = [0, 2, 4, 7, 9, 11]
SENSOR_TYPES = {"temperature": 0x01, "voltage": 0x02, "fan": 0x04}
SDR_TYPES = {"temperature": "Temperature", "voltage": "Voltage", "fan": "Fan"}
USER, PASSWORD = "admin", "secret"
# device support of a blade IPMC: sensor device, FRU inventory, IPMB event
# generator, and chassis device (so that Chassis Control reaches the plugin)
BLADE_DEVICE_SUPPORT = 0xA9
PLUGIN_SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                          "plugin", "atca_picmg.c")


def blade_addr(slot):
    return 0x80 + 2 * slot


# ---------------------------------------------------------------- description

class Sensor:
    def __init__(self, owner, name, sec, where):
        self.owner = owner  # "fan" (shelf manager) or "blade"
        self.name = name
        try:
            self.number = int(sec["number"], 0)
            if "discrete" in sec:
                self.kind = "discrete"
                self.stype = int(sec["discrete"], 0)
                self.reading_type = int(sec.get("reading_type", "0x6f"), 0)
                self.offsets = [int(x, 0) for x in sec["offsets"].split()]
                self.asserted = [int(x, 0) for x in sec.get("asserted", "").split()]
            else:
                self.kind = "threshold"
                self.type = sec["type"]
                if self.type not in SENSOR_TYPES:
                    raise LabError("%s: type must be one of %s" % (where, ", ".join(SENSOR_TYPES)))
                self.unit = sec["unit"]
                self.m = int(sec.get("m", "1"), 0)
                self.r_exp = int(sec.get("r_exp", "0"), 0)
                self.nominal = int(sec["nominal"], 0)
                self.th = {}
                for item in sec["thresholds"].split(","):
                    k, v = item.split()
                    if k not in THR_ORDER:
                        raise LabError("%s: unknown threshold %s" % (where, k))
                    self.th[k] = int(v, 0)
                if sorted(self.th) != sorted(THR_ORDER):
                    raise LabError("%s: needs all of %s" % (where, " ".join(THR_ORDER)))
                order = [self.th[k] for k in ("lnr", "lc", "lnc")] + [self.nominal] + \
                    [self.th[k] for k in ("unc", "uc", "unr")]
                if order != sorted(order) or len(set(order)) != len(order):
                    raise LabError("%s: need lnr < lc < lnc < nominal < unc < uc < unr" % where)
        except (KeyError, ValueError) as e:
            raise LabError("%s: bad or missing value (%s)" % (where, e))

    def raw_of(self, value):
        """Engineering value -> raw reading."""
        return int(round(float(value) / (self.m * 10 ** self.r_exp)))


class ShelfDescription:
    def __init__(self, path):
        cp = configparser.ConfigParser(inline_comment_prefixes=None)
        cp.optionxform = str
        try:
            with open(path) as f:
                cp.read_file(f)
        except (OSError, configparser.Error) as e:
            raise LabError("%s: %s" % (path, e))
        self.path = path
        self.name = cp.get("shelf", "name", fallback="atca-lab")
        self.managers = cp.getint("shelf", "managers", fallback=1)
        self.fan = []
        self.blade = []
        for s in cp.sections():
            if s == "shelf":
                continue
            m = re.match(r"(fan|blade)\s+(.+)$", s)
            if not m:
                raise LabError("%s: unknown section [%s] (expected [fan NAME] or [blade NAME])"
                               % (path, s))
            sensor = Sensor(m.group(1), m.group(2), cp[s], "%s [%s]" % (path, s))
            (self.fan if m.group(1) == "fan" else self.blade).append(sensor)
        for lst in (self.fan, self.blade):
            nums = [x.number for x in lst]
            if len(set(nums)) != len(nums):
                raise LabError("%s: duplicate sensor numbers" % path)

    def blade_sensor(self, name):
        for s in self.blade:
            if s.name.lower() == name.lower():
                return s
        raise LabError("the shelf description has no blade sensor '%s'" % name)

    def hotswap(self):
        for s in self.blade:
            if s.kind == "discrete" and s.stype == 0xF0:
                return s
        raise LabError("the shelf description has no hot-swap sensor (discrete = 0xf0)")


# ---------------------------------------------------------------- FRU images

def _tl(s):
    b = s.encode("ascii")
    return bytes([0xC0 | len(b)]) + b


def _cks(data):
    return (-sum(data)) & 0xFF


def _area(body):
    raw = bytearray(bytes([1, 0]) + body + b"\xc1")
    total = (len(raw) + 1 + 7) // 8 * 8
    raw += b"\x00" * (total - len(raw) - 1)
    raw[1] = total // 8
    return bytes(raw) + bytes([_cks(raw)])


def _board(mfg, name, serial, part):
    return _area(b"\x00\x00\x00\x00" + _tl(mfg) + _tl(name) + _tl(serial) + _tl(part) + _tl(""))


def _product(mfg, name, part, ver, serial):
    return _area(b"\x00" + _tl(mfg) + _tl(name) + _tl(part) + _tl(ver) + _tl(serial)
                 + _tl("") + _tl(""))


def _chassis(ctype, part, serial):
    return _area(bytes([ctype]) + _tl(part) + _tl(serial))


def _multirecord(rtype, data, last):
    hdr = bytes([rtype, 0x02 | (0x80 if last else 0), len(data), _cks(data)])
    return hdr + bytes([_cks(hdr)]) + data


def _fru(chassis=None, board=None, product=None, multi=None):
    off, parts, offs = 8, [], []
    for a in (chassis, board, product):
        offs.append(off // 8 if a else 0)
        if a:
            parts.append(a)
            off += len(a)
    offs.append(off // 8 if multi else 0)
    if multi:
        parts.append(multi)
    hdr = bytes([1, 0] + offs + [0])
    return hdr + bytes([_cks(hdr)]) + b"".join(parts)


def _address_table(shelf_addr, entries):
    """PICMG 3.0 Address Table record (record id 0x10): hw address, site, type."""
    sa = shelf_addr.encode("ascii")[:20]
    data = bytes([MFG_ID & 0xFF, (MFG_ID >> 8) & 0xFF, MFG_ID >> 16, 0x10, 0x00])
    data += bytes([0xC0 | len(sa)]) + sa + b"\x00" * (20 - len(sa)) + bytes([len(entries)])
    for hw, site, stype in entries:
        data += bytes([hw, site, stype])
    return data


# ---------------------------------------------------------------- SDR sources

def _sdr_threshold(owner, s, ent, inst, name):
    lines = ["sdr type 1", "  sensor_owner_id 0x%02x" % owner, "  sensor_owner_lun 0",
             "  channel_number 0", "  sensor_number %d" % s.number,
             "  entity_id 0x%02x" % ent, "  entity_instance 0x%02x" % inst,
             "  init_scanning true", "  init_events true", "  init_thresholds true",
             "  init_sensor_type true", "  default_event_gen_on true",
             "  default_sensor_scan_on true", "  sensor_auto_rearm true",
             "  sensor_hysteresis no", "  sensor_threshold_access settable",
             "  sensor_event_msg_ctrl per_state", "  sensor_type %s" % SDR_TYPES[s.type],
             "  event_reading_type_code 1"]
    for ev in ("lncgl", "lcgl", "lnrgl", "uncgh", "ucgh", "unrgh"):
        lines += ["  assert_%s true" % ev, "  deassert_%s true" % ev]
    for t in THR_ORDER:
        lines += ["  %s_thrsh_readable true" % t, "  %s_thrsh_settable true" % t]
    lines += ["  analog_data_format unsigned", "  base_unit %s" % s.unit,
              "  linearization linear", "  m %d" % s.m, "  b 0", "  r_exp %d" % s.r_exp,
              "  b_exp 0", "  nominal_specified true", "  nominal_reading %d" % s.nominal,
              "  sensor_maximum 255", "  sensor_minimum 0"]
    lines += ["  %s_thresh %d" % (t, s.th[t]) for t in THR_ORDER]
    return "\n".join(lines + ['  id_string "%s"' % name, "endsdr", ""])


def _sdr_discrete(owner, s, ent, inst, name):
    lines = ["sdr type 2", "  sensor_owner_id 0x%02x" % owner, "  sensor_owner_lun 0",
             "  channel_number 0", "  sensor_number %d" % s.number,
             "  entity_id 0x%02x" % ent, "  entity_instance 0x%02x" % inst,
             "  init_scanning true", "  init_events true", "  init_sensor_type true",
             "  default_event_gen_on true", "  default_sensor_scan_on true",
             "  sensor_auto_rearm true", "  sensor_event_msg_ctrl per_state",
             "  sensor_type 0x%02x" % s.stype,
             "  event_reading_type_code 0x%02x" % s.reading_type]
    for o in s.offsets:
        lines += ["  assert_event%d true" % o, "  event%d_state_ret true" % o]
    return "\n".join(lines + ['  id_string "%s"' % name, "endsdr", ""])


def _sdr_mc_locator(addr, ent, name, shmc=False):
    lines = ["sdr type 18", "  device_slave_address 0x%02x" % addr,
             "  device_channel_number 0", "  entity_id 0x%02x" % ent,
             "  entity_instance 0x60", "  fru_inventory true", "  sensor true",
             "  ipmb_event_gen true"]
    if shmc:
        lines += ["  ipmb_event_recv true", "  sel true", "  sdr true"]
    return "\n".join(lines + ['  id_string "%s"' % name, "endsdr", ""])


def _blade_entity(s):
    if s.kind == "discrete":
        return {0x07: ENT_PROCESSOR, 0x0C: ENT_MEMORY}.get(s.stype, ENT_FRONT)
    return ENT_PROCESSOR if s.type == "temperature" else ENT_FRONT


def _blade_sdrs(desc, slot, prefix):
    a = blade_addr(slot)
    out = []
    for s in desc.blade:
        name = ("S%d " % slot if prefix else "") + s.name
        fn = _sdr_discrete if s.kind == "discrete" else _sdr_threshold
        out.append(fn(a, s, _blade_entity(s), 0x60, name))
    return "".join(out)


def _shmc_sdrs(desc, n):
    out = [_sdr_mc_locator(SHMC, ENT_SHMC, "ShMC", shmc=True)]
    out += [_sdr_mc_locator(blade_addr(s), ENT_FRONT, "Blade S%d" % s) for s in range(1, n + 1)]
    for s in desc.fan:
        fn = _sdr_discrete if s.kind == "discrete" else _sdr_threshold
        out.append(fn(SHMC, s, ENT_FAN, 0x01, s.name))
    return "".join(out)


def _compile(path):
    """sdrcomp -8 -r: one binary blob of records; split by the length byte."""
    p = subprocess.run(["sdrcomp", "-8", "-r", path], capture_output=True)
    if p.returncode != 0:
        raise LabError("sdrcomp %s: %s" % (path, p.stderr.decode(errors="replace").strip()))
    data, recs, i = p.stdout, [], 0
    while i < len(data):
        n = data[i + 4] + 5
        recs.append(data[i:i + n])
        i += n
    return recs


def _hex(b):
    items = ["0x%02x" % x for x in b]
    return " \\\n\t".join(" ".join(items[i:i + 16]) for i in range(0, len(items), 16))


def _mask15(bits):
    return "".join("1" if (14 - i) in bits else "0" for i in range(15))


def _sensor_cmds(mc, s):
    if s.kind == "threshold":
        vals = " ".join("0x%02x" % s.th[t] for t in ("unr", "uc", "unc", "lnr", "lc", "lnc"))
        ev = _mask15(THR_EVENT_BITS)
        return ["sensor_add 0x%02x 0 %d 0x%02x 0x01" % (mc, s.number, SENSOR_TYPES[s.type]),
                "sensor_set_threshold 0x%02x 0 %d settable 111111 %s" % (mc, s.number, vals),
                "sensor_set_event_support 0x%02x 0 %d enable scanning per-state %s %s %s %s"
                % (mc, s.number, ev, ev, ev, ev),
                "sensor_set_value 0x%02x 0 %d 0x%02x 0" % (mc, s.number, s.nominal)]
    ev, none = _mask15(s.offsets), _mask15([])
    cmds = ["sensor_add 0x%02x 0 %d 0x%02x 0x%02x" % (mc, s.number, s.stype, s.reading_type),
            "sensor_set_event_support 0x%02x 0 %d enable scanning per-state %s %s %s %s"
            % (mc, s.number, ev, none, ev, none)]
    if s.stype == 0xF0:
        cmds += ["sensor_set_bit_clr_rest 0x%02x 0 %d %d 0" % (mc, s.number, o)
                 for o in s.asserted]
    else:
        cmds += ["sensor_set_bit 0x%02x 0 %d %d 1 0" % (mc, s.number, o) for o in s.asserted]
    return cmds


def build_plugin(dest):
    """Compiles the ipmi_sim plugin to dest unless dest is newer than the
    source; a compiler error is a LabError carrying the compiler's message."""
    try:
        if os.path.getmtime(dest) >= os.path.getmtime(PLUGIN_SRC):
            return dest
    except OSError:
        pass
    if not os.path.isdir("/usr/include/OpenIPMI"):
        raise LabError("building the ipmi_sim plugin needs OpenIPMI's headers "
                       "(Debian package libopenipmi-dev)")
    tmp = "%s.%d.tmp" % (dest, os.getpid())
    p = util.run(["gcc", "-std=c11", "-O2", "-Wall", "-Wextra", "-shared", "-fPIC",
                  "-I/usr/include/OpenIPMI", "-o", tmp, PLUGIN_SRC], check=False)
    if p.returncode != 0:
        raise LabError("building the ipmi_sim plugin failed:\n%s" % (p.stderr or p.stdout).strip())
    os.rename(tmp, dest)
    return dest


def plugin_options(opts):
    """The plugin's option string: key=value words; a list value is joined
    with commas (the hook's argv). No spaces, quotes or commas inside."""
    words = []
    for k, v in opts.items():
        parts = [str(x) for x in (v if isinstance(v, (list, tuple)) else [v])]
        for x in parts:
            if not x or any(c in x for c in ' \t",'):
                raise LabError("plugin option %s: %r cannot be passed (spaces, quotes or "
                               "commas)" % (k, x))
        words.append("%s=%s" % (k, ",".join(parts)))
    return " ".join(words)


def generate(desc, n_blades, outdir, addr, port, console_port, label, plugin=None):
    """Writes lan.conf and shelf.emu (and the SDR sources) for one ipmi_sim.
    plugin: (path of the .so, option string) to load, or None."""
    sdrdir = os.path.join(outdir, "sdr")
    os.makedirs(sdrdir, exist_ok=True)
    loadlib = ""
    if plugin:
        loadlib = ("\n# ATCA FRU activation, payload power, chassis control "
                   "(plugin/atca_picmg.c)\n" 'loadlib "%s" "%s"\n' % plugin)
    util.write(os.path.join(outdir, "lan.conf"), """# generated by atca-lab from %s
name "%s"
set_working_mc 0x20

startlan 1
  addr %s %d
  priv_limit admin
  allowed_auths_callback none md2 md5 straight
  allowed_auths_user none md2 md5 straight
  allowed_auths_operator none md2 md5 straight
  allowed_auths_admin none md2 md5 straight
  guid a123456789abcdefa123456789abcd%02x
endlan

user 2 true "%s" "%s" admin 10 none md2 md5 straight

console %s %d
%s""" % (desc.path, label, addr, port, 0xef if label.endswith("b") else 0xee, USER, PASSWORD,
         addr, console_port, loadlib))

    def compile_text(name, text):
        path = os.path.join(sdrdir, name)
        util.write(path, text)
        return _compile(path)

    main_recs = compile_text("shmc.sdrs", _shmc_sdrs(desc, n_blades))
    entries = [(SHMC >> 1, 1, SITE_SHMC)] + \
        [(blade_addr(s) >> 1, s, SITE_FRONT_BOARD) for s in range(1, n_blades + 1)]
    shelf_fru = _fru(chassis=_chassis(0x17, "ATCA-LAB-%d" % n_blades, "SH0001"),
                     product=_product("atca-lab", desc.name, "LAB-%d" % n_blades, "1.0", "SH0001"),
                     multi=_multirecord(0xC0, _address_table(desc.name, entries), True))
    shmc_fru = _fru(board=_board("atca-lab", "ShMC", "SM0001", "LAB-SHMC"),
                    product=_product("atca-lab", "ShMC", "LAB-SHMC", "1.0", "SM0001"))
    e = ["# generated by atca-lab from %s: %d blades" % (desc.path, n_blades),
         "# every number is C-style: 0x for hex",
         "atca_enable", "mc_setbmc 0x20",
         "atca_set_site 0x%02x 0x%02x 1" % (SHMC >> 1, SITE_SHMC)]
    e += ["atca_set_site 0x%02x 0x%02x %d" % (blade_addr(s) >> 1, SITE_FRONT_BOARD, s)
          for s in range(1, n_blades + 1)]
    e += ["mc_add 0x20 0x00 no-device-sdrs 0x01 0x01 0x00 0x3f 0x%06x 0x0001" % MFG_ID,
          "sel_enable 0x20 1000 0x0a",
          "mc_add_fru_data 0x20 0 256 data \\\n\t" + _hex(shmc_fru),
          "# FRU 254: the shelf FRU holding the PICMG address table",
          "mc_add_fru_data 0x20 254 512 data \\\n\t" + _hex(shelf_fru)]
    for s in desc.fan:
        e += _sensor_cmds(SHMC, s)
    e += ["# mc_add leaves an MC disabled", "mc_enable 0x20"]
    e += ["main_sdr_add 0x20 \\\n\t" + _hex(r) for r in main_recs]
    for slot in range(1, n_blades + 1):
        for r in compile_text("main_slot%d.sdrs" % slot, _blade_sdrs(desc, slot, True)):
            e.append("main_sdr_add 0x20 \\\n\t" + _hex(r))
    for slot in range(1, n_blades + 1):
        a = blade_addr(slot)
        fru = _fru(board=_board("atca-lab", "Blade S%d" % slot, "BL%04d" % slot, "LAB-BLADE"),
                   product=_product("atca-lab", "Blade", "LAB-BLADE", "1.0", "BL%04d" % slot))
        e += ["", "# ---- blade in slot %d at 0x%02x" % (slot, a),
              "mc_add 0x%02x 0x%02x has-device-sdrs 0x01 0x01 0x00 0x%02x 0x%06x 0x%04x dynsens"
              % (a, slot, BLADE_DEVICE_SUPPORT, MFG_ID, 0x0100 + slot),
              "mc_add_fru_data 0x%02x 0 256 data \\\n\t%s" % (a, _hex(fru))]
        for s in desc.blade:
            e += _sensor_cmds(a, s)
        for r in compile_text("dev_slot%d.sdrs" % slot, _blade_sdrs(desc, slot, False)):
            e.append("device_sdr_add 0x%02x 0 \\\n\t%s" % (a, _hex(r)))
        e.append("mc_enable 0x%02x" % a)
    util.write(os.path.join(outdir, "shelf.emu"), "\n".join(e) + "\n")


# ---------------------------------------------------------------- the console

class Console:
    """The ipmi_sim console: a telnet-ish TCP line protocol. One command per
    line ended by a bare \\n; the answer ends with the "> " prompt; errors
    start with "**". The simulator also writes its session log there at any
    time, which read_reply() drops."""

    NOISE = re.compile(r"^(Activate session|Session closed| channel=| rq_lun=|\s*[0-9a-f]{2}( [0-9a-f]{2})*\s*$)")

    # generous: under a loaded make check (guests spinning on both CPUs)
    # ipmi_sim can take seconds to print its prompt
    def __init__(self, host, port, timeout=15.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""
        self._read_prompt()
        self.command("noecho")

    def _read_prompt(self):
        deadline = time.monotonic() + 15
        while not self.buf.endswith(b"> "):
            if time.monotonic() > deadline:
                raise LabError("ipmi_sim console: no prompt")
            chunk = self.sock.recv(4096)
            if not chunk:
                raise LabError("ipmi_sim console closed the connection")
            self.buf += chunk
        text = self.buf[:-2]
        self.buf = b""
        return text

    def command(self, cmd):
        if "\n" in cmd or "\r" in cmd:
            raise LabError("console commands are single lines")
        self.sock.sendall(cmd.encode() + b"\n")
        raw = self._read_prompt()
        raw = raw.replace(b"\xff\xfb\x03", b"").replace(b"\xff\xfb\x01", b"").replace(b"\xff\xfe\x01", b"")
        lines = [ln.strip("\r") for ln in raw.decode(errors="replace").split("\n")]
        lines = [ln for ln in lines if ln and ln != cmd and not self.NOISE.match(ln)]
        errors = [ln for ln in lines if ln.startswith("**")]
        if errors:
            raise LabError("ipmi_sim rejected '%s': %s" % (cmd, errors[0]))
        return lines

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

#!/usr/bin/env bash
# Prepares a fresh Debian 12 machine for atca-ft and builds it.
#
#   scripts/setup.sh [--asan] [--build-dir DIR] [--no-packages]
#
# Installs the Debian packages the project needs (as root, only the missing
# ones), generates the build system, configures an out-of-tree build in
# build/ (or build-asan/ with --asan) with warnings as errors, and builds.
# Safe to run again: it only redoes what is out of date.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
asan=no
builddir=
packages=yes
while [ $# -gt 0 ]; do
	case $1 in
	--asan) asan=yes ;;
	--build-dir) builddir=$2; shift ;;
	--no-packages) packages=no ;;
	*) echo "setup.sh: unknown option $1" >&2; exit 2 ;;
	esac
	shift
done
[ -n "$builddir" ] || { [ $asan = yes ] && builddir=$top/build-asan || builddir=$top/build; }

# Everything the build, the tests and the demo use. configure names the
# package of any library that is still missing.
PACKAGES=(
	build-essential autoconf automake pkg-config
	libqb-dev libcorosync-common-dev libcpg-dev libquorum-dev libvotequorum-dev libcmap-dev
	libvirt-dev libfreeipmi-dev libipmimonitoring-dev libopenipmi-dev libsnmp-dev
	libjson-c-dev libxxhash-dev libssl-dev check
	clang libclang-rt-14-dev clang-format valgrind
	jq man-db groff-base mandoc logrotate bash-completion util-linux procps libqb-tools
	# the shelf lab (tests/lab): simulated shelf, blades, hypervisors, NMS
	python3 iproute2 binutils openipmi ipmitool freeipmi-tools corosync
	libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients qemu-system-x86
	snmptrapd snmp
	# fence_atca's and the OCF agent's tests: metadata schema check,
	# Pacemaker accepting the agent, ocf-tester and ocf-shellfuncs
	libxml2-utils pacemaker-cli-utils resource-agents
	# the Pacemaker baseline of the benchmarks (bench/pacemaker_baseline.py)
	pacemaker
	# the benchmark suite's plot (bench/suite.py)
	gnuplot-nox
)

if [ $packages = yes ]; then
	missing=()
	for p in "${PACKAGES[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
	done
	if [ ${#missing[@]} -gt 0 ]; then
		if [ "$(id -u)" -ne 0 ]; then
			echo "setup.sh: missing packages: ${missing[*]}" >&2
			echo "setup.sh: run as root, or: apt-get install ${missing[*]}" >&2
			exit 1
		fi
		echo "setup.sh: installing ${missing[*]}"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq
		apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	fi
fi

cd "$top"
if [ ! -x configure ] || [ configure.ac -nt configure ] || [ Makefile.am -nt Makefile.in ]; then
	echo "setup.sh: generating the build system"
	autoreconf -fi >/dev/null
fi

flags=(--enable-werror --prefix=/usr --sysconfdir=/etc --localstatedir=/var --runstatedir=/run)
[ $asan = yes ] && flags+=(--enable-asan)
mkdir -p "$builddir"
cd "$builddir"
if [ ! -f Makefile ] || [ "$top/configure" -nt Makefile ]; then
	echo "setup.sh: configuring $builddir (${flags[*]})"
	"$top/configure" "${flags[@]}" >configure.out 2>&1 || { tail -20 configure.out; exit 1; }
fi
echo "setup.sh: building in $builddir"
make -j"$(nproc)" -s >make.out 2>&1 || { tail -40 make.out; exit 1; }

# The shipped example names /etc/atca-ft/shelf.cred; give a fresh machine the
# lab's credentials there (never overwriting a real file) so that
# "atca-ftd -f -c etc/atca-ftd.conf.example" runs as documented.
if [ "$(id -u)" -eq 0 ] && [ ! -e /etc/atca-ft/shelf.cred ]; then
	install -d -m 0755 /etc/atca-ft
	install -m 0600 -o root -g root "$top/etc/shelf.cred.example" /etc/atca-ft/shelf.cred
	echo "setup.sh: installed the lab credentials as /etc/atca-ft/shelf.cred (mode 0600)"
fi
echo "setup.sh: done ($builddir)"

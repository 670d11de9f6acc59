#!/bin/sh
# PID 1 of a playground instance: make cgroups usable for a nested Docker,
# start the inner dockerd in the background, then hand the container's TTY to
# a login shell that comes back whenever the user exits it.
#
# One script for every way an instance may be confined: --privileged,
# the capability profile (cap_add ALL minus SYS_RESOURCE, seccomp and
# AppArmor unconfined) and sysbox-runc. It is plain POSIX sh because dash
# starts in a millisecond.
#
# A fourth way, rootless, is chosen by the platform with PLAYGROUND_ROOTLESS=1
# in the container's environment: the container has no privilege beyond a
# few capabilities, and this script, still root, prepares what the learner's
# daemon needs, then becomes the learner (uid 1000) for good and runs the
# inner dockerd rootless (dockerd-rootless.sh, RootlessKit, slirp4netns) and
# the login shells as the learner. See rootless_prepare.
#
# Arguments starting with "-" are passed to dockerd; any other command runs
# in place of the login shell once dockerd has been started.
set -u

DOCKERD_LOG=/var/log/dockerd.log
DOCKERD_PIDFILE=/run/playground-dockerd.pid
dockerd_pid=
shell_pid=

# The rootless profile's user; its runtime directory holds the daemon's
# socket and pid files (DOCKER_HOST points there).
LEARNER_UID=1000
LEARNER_HOME=/home/learner
rootless=
case ${PLAYGROUND_ROOTLESS-} in
1 | true | yes)
	rootless=1
	XDG_RUNTIME_DIR=/run/user/$LEARNER_UID
	DOCKER_HOST=unix://$XDG_RUNTIME_DIR/docker.sock
	DOCKERD_PIDFILE=$XDG_RUNTIME_DIR/playground-dockerd.pid
	export XDG_RUNTIME_DIR DOCKER_HOST
	;;
esac

warn() {
	echo "playground: $*" >&2
}

# cgroup v1: a nested dockerd creates its cgroups in /sys/fs/cgroup/<controller>,
# which must be this container's own cgroup and writable. Under the capability
# profile Docker mounts each controller read-only, and the inner dockerd fails
# with "mkdir /sys/fs/cgroup/cpuset/docker: read-only file system"; under
# --privileged it mounts whole host hierarchies read-write, and nested
# containers would land beside the instance, outside its memory and pids
# limits. A read-only mount of our own cgroup is remounted read-write; a host
# hierarchy is replaced: mount a fresh hierarchy of the controller privately,
# bind our own cgroup inside it over /sys/fs/cgroup/<controller>, and drop the
# private mount. Controllers already rooted at our cgroup and writable (sysbox,
# which gives each container a cgroup namespace) are left alone.
cgroup_setup_v1() {
	# " <mount point>|<root of the mount>|<ro or rw> " for each cgroup mount.
	mounts=$(awk '$5 ~ "^/sys/fs/cgroup/" && / - cgroup / {
		printf " %s|%s|%s ", $5, $4, ($6 ~ /(^|,)ro(,|$)/ ? "ro" : "rw")
	}' /proc/self/mountinfo)
	scratch=/run/playground-cgroup
	while IFS=: read -r _ controllers path; do
		# The "0::/..." line of a hybrid host names no controller.
		[ -n "$controllers" ] || continue
		dir=/sys/fs/cgroup/${controllers#name=}
		case $mounts in
		*" $dir|$path|rw "*) continue ;;
		*" $dir|$path|ro "*)
			# Already our own cgroup (the capability profile), only
			# read-only: one remount instead of four mounts. Instances start
			# twenty at a time, and every fork here counts.
			mount -o remount,bind,rw "$dir" ||
				warn "could not make $dir writable; nested containers may fail"
			continue
			;;
		*" $dir|"*) ;;
		*) continue ;;
		esac
		case $controllers in
		name=*) options=none,$controllers ;;
		*) options=$controllers ;;
		esac
		[ -d "$scratch" ] || mkdir -p "$scratch"
		if ! mount -t cgroup -o "$options" cgroup "$scratch"; then
			warn "could not mount the $controllers cgroup hierarchy; nested containers may fail"
			continue
		fi
		if ! { umount "$dir" && mount -o bind "$scratch$path" "$dir"; }; then
			warn "could not make $dir writable; nested containers may fail"
		fi
		umount "$scratch"
	done </proc/self/cgroup
	[ ! -d "$scratch" ] || rmdir "$scratch"
}

# cgroup v2: what the official dind script does. The root of our cgroup
# namespace must hold no process before controllers can be delegated to the
# cgroups the inner dockerd creates, so move everything into "init" first.
cgroup_setup_v2() {
	# Only at the root of our own cgroup namespace (Docker's default on v2):
	# with the host's namespace, "init" would take in the host's processes.
	read -r line </proc/self/cgroup
	[ "$line" = "0::/" ] || return 0
	if awk '$5 == "/sys/fs/cgroup" && $6 ~ /(^|,)ro(,|$)/ { found = 1 } END { exit !found }' /proc/self/mountinfo; then
		mount -o remount,rw /sys/fs/cgroup || warn "/sys/fs/cgroup is read-only; nested containers may fail"
	fi
	mkdir -p /sys/fs/cgroup/init
	# Processes that exit meanwhile (cat itself) fail to move; that is fine.
	while read -r pid; do
		echo "$pid" >/sys/fs/cgroup/init/cgroup.procs
	done </sys/fs/cgroup/cgroup.procs 2>/dev/null
	read -r controllers </sys/fs/cgroup/cgroup.controllers
	enable=
	for controller in $controllers; do
		enable="$enable +$controller"
	done
	[ -z "$enable" ] || echo "$enable" >/sys/fs/cgroup/cgroup.subtree_control ||
		warn "could not enable cgroup controllers:$enable"
}

# The inner dockerd programs its bridge with whatever `iptables` is on PATH,
# and the kernel must support that backend. Each base has a default that works
# on our hosts (legacy on the offline base, nft on Alpine); DOCKER_IPTABLES_LEGACY
# forces a backend as in the official image (non-empty: legacy, empty: nft),
# and a default the kernel rejects is swapped for the other one. The choice
# only affects dockerd, through a directory of symlinks put first on its PATH.
iptables_setup() {
	if [ -n "${DOCKER_IPTABLES_LEGACY+x}" ]; then
		variant=${DOCKER_IPTABLES_LEGACY:+legacy}
		variant=${variant:-nft}
	elif iptables -nL >/dev/null 2>&1; then
		return 0
	else
		case $(readlink -f "$(command -v iptables)") in
		*legacy*) variant=nft ;;
		*) variant=legacy ;;
		esac
	fi
	command -v "iptables-$variant" >/dev/null 2>&1 || return 0
	dir=/run/playground-iptables
	mkdir -p "$dir"
	for family in iptables ip6tables; do
		for suffix in "" -save -restore; do
			target=$(command -v "$family-$variant$suffix") && ln -sf "$target" "$dir/$family$suffix"
		done
	done
	PATH=$dir:$PATH
	export PATH
}

# Rootless, as root: what the learner cannot do itself. The outer container
# has only CHOWN, MKNOD, SETUID, SETGID and KILL (and this script loses them
# with uid 0 below; KILL is for docker-init, PID 1, which stays root and must
# forward SIGTERM to this script).
#  - /dev/net/tun for slirp4netns (Docker's default device rules allow it);
#  - the data root, on the instance's volume, owned by the learner: overlay2
#    then works natively in the daemon's user namespace (the top directory
#    only: what is below is the daemon's, mapped to the learner's ids);
#  - XDG_RUNTIME_DIR on the /run tmpfs, fresh at every start like /run;
#  - the daemon's log, and the terminal, which the learner's programs may open
#    by name (as login(1) would do).
rootless_prepare() {
	if [ ! -c /dev/net/tun ]; then
		{ [ -d /dev/net ] || mkdir -m 0755 /dev/net; } && mknod -m 666 /dev/net/tun c 10 200 ||
			warn "could not create /dev/net/tun; the inner dockerd will have no network"
	fi
	[ ! -d /var/lib/docker ] || chown "$LEARNER_UID:$LEARNER_UID" /var/lib/docker ||
		warn "could not hand /var/lib/docker to the learner"
	mkdir -p -m 0755 /run/user
	# (chmod before chown: without CAP_FOWNER root cannot chmod what it does
	# not own.)
	mkdir -p "$XDG_RUNTIME_DIR" && chmod 0700 "$XDG_RUNTIME_DIR" &&
		chown "$LEARNER_UID:$LEARNER_UID" "$XDG_RUNTIME_DIR" || warn "could not make $XDG_RUNTIME_DIR"
	[ -d "${DOCKERD_LOG%/*}" ] || mkdir -p "${DOCKERD_LOG%/*}"
	# (Not `: >>`: a redirection that fails on a special builtin ends the
	# script, and root without CAP_DAC_OVERRIDE cannot open the learner's
	# log left by a previous start.)
	[ -e "$DOCKERD_LOG" ] || true >"$DOCKERD_LOG"
	chown "$LEARNER_UID:$LEARNER_UID" "$DOCKERD_LOG"
	[ ! -t 0 ] || chown "$LEARNER_UID" /proc/self/fd/0 2>/dev/null || true
}

# Become the learner for good: real, effective and saved ids, its groups, no
# capability left (a uid change from 0 clears them; the inheritable set is
# cleared too). setpriv execs this script again, which then goes on as the
# learner. no_new_privs is NOT set: newuidmap and newgidmap need their file
# capabilities.
become_learner() {
	HOME=$LEARNER_HOME USER=learner LOGNAME=learner SHELL=/bin/bash
	export HOME USER LOGNAME SHELL
	exec setpriv --reuid="$LEARNER_UID" --regid="$LEARNER_UID" --init-groups --inh-caps=-all -- "$0" "$@"
}

# What an idle instance holds is mostly its Go programs' memory (dockerd
# about 25 MiB, containerd 8, RootlessKit 4 of some 40). Collecting when a
# heap has grown by half, not doubled, keeps an idle one closer to what it
# uses, for a little more CPU while a learner pulls or builds; and no one
# reads their memory profiles, whose buckets hold a megabyte or two. For the
# daemons and what they start (RootlessKit, containerd's shims), not the
# learner's shell.
INNER_GO_ENV="GOGC=50 GODEBUG=memprofilerate=0"

# Go sizes its scheduler by the machine's CPUs, not by the instance's CPU
# limit (before Go 1.25, which these daemons predate): on a host of many
# cores each daemon of a one-CPU instance would keep a processor's caches
# and threads per core for a quota of one. GOMAXPROCS follows the limit as
# automaxprocs counts it (the quota in whole CPUs, at least one, at most the
# CPUs there are), which is also what keeps an idle instance under 40 MiB:
# about 2 MiB less on two cores. Without a limit Go's own default stays.
go_procs_setup() {
	quota= period=
	if [ -r /sys/fs/cgroup/cpu.max ]; then
		read -r quota period </sys/fs/cgroup/cpu.max
	elif [ -r /sys/fs/cgroup/cpu/cpu.cfs_quota_us ] && [ -r /sys/fs/cgroup/cpu/cpu.cfs_period_us ]; then
		read -r quota </sys/fs/cgroup/cpu/cpu.cfs_quota_us
		read -r period </sys/fs/cgroup/cpu/cpu.cfs_period_us
	fi
	case $quota$period in '' | max* | -*) return 0 ;; *[!0-9]*) return 0 ;; esac
	[ "$period" -gt 0 ] || return 0
	procs=$((quota / period))
	[ "$procs" -ge 1 ] || procs=1
	cpus=$(nproc 2>/dev/null) || cpus=
	[ -z "$cpus" ] || [ "$procs" -le "$cpus" ] || procs=$cpus
	INNER_GO_ENV="$INNER_GO_ENV GOMAXPROCS=$procs"
}

start_dockerd_rootless() {
	# dockerd-rootless.sh re-executes itself in RootlessKit's user, mount and
	# network namespaces, then runs dockerd there. Its socket, pid files and
	# exec root are in XDG_RUNTIME_DIR; the data root stays on the volume. It
	# runs $DOCKERD, here playground-dockerd (containerd first, a second
	# sooner), in the namespaces.
	# Setting the network driver by name lowers the script's default MTU to
	# 1500, hence the MTU. The builtin port driver listens on the instance's
	# own address, so `-p 8080:80` is reachable at <instance ip>:8080.
	for pidfile in "$XDG_RUNTIME_DIR/docker.pid" "$XDG_RUNTIME_DIR/docker/containerd/containerd.pid" "$DOCKERD_PIDFILE"; do
		[ ! -e "$pidfile" ] || rm -f "$pidfile"
	done
	env $INNER_GO_ENV DOCKERD=playground-dockerd PLAYGROUND_CONTAINERD_DIR=$XDG_RUNTIME_DIR/docker/containerd \
	DOCKERD_ROOTLESS_ROOTLESSKIT_NET=${DOCKERD_ROOTLESS_ROOTLESSKIT_NET:-slirp4netns} \
	DOCKERD_ROOTLESS_ROOTLESSKIT_MTU=${DOCKERD_ROOTLESS_ROOTLESSKIT_MTU:-65520} \
	DOCKERD_ROOTLESS_ROOTLESSKIT_PORT_DRIVER=${DOCKERD_ROOTLESS_ROOTLESSKIT_PORT_DRIVER:-builtin} \
		dockerd-rootless.sh --data-root=/var/lib/docker "$@" </dev/null >>"$DOCKERD_LOG" 2>&1 &
	dockerd_pid=$!
	echo "$dockerd_pid" >"$DOCKERD_PIDFILE"
}

start_dockerd() {
	if [ -n "$rootless" ]; then
		start_dockerd_rootless "$@"
		return
	fi
	# A restarted container keeps its filesystem, and with it the pid files
	# of the daemons that were killed with it; they would refuse to start.
	# (Start-up time matters, hence no needless fork on a fresh container.)
	for pidfile in /var/run/docker.pid /var/run/docker/containerd/containerd.pid "$DOCKERD_PIDFILE"; do
		[ ! -e "$pidfile" ] || rm -f "$pidfile"
	done
	[ -d "${DOCKERD_LOG%/*}" ] || mkdir -p "${DOCKERD_LOG%/*}"
	# dockerd reads /etc/docker/daemon.json by itself when it exists (it must
	# not set "hosts", which the flag below already does).
	# Docker 26 (trixie) disables IPv6 on each nested container's eth0 by
	# writing its /proc/sys, which the capability profile leaves read-only:
	# without this every nested `docker run` on a bridge network fails with
	# "failed to disable IPv6 on container's interface eth0". (Earlier
	# versions do not look at it.)
	# playground-dockerd starts containerd before dockerd (a second sooner).
	env $INNER_GO_ENV DOCKER_ALLOW_IPV6_ON_IPV4_INTERFACE=1 PLAYGROUND_CONTAINERD_DIR=/var/run/docker/containerd \
		playground-dockerd --host=unix:///var/run/docker.sock "$@" </dev/null >>"$DOCKERD_LOG" 2>&1 &
	dockerd_pid=$!
	# wait-for-docker tells a daemon that died from one not started yet by this.
	echo "$dockerd_pid" >"$DOCKERD_PIDFILE"
}

# The user's terminal is the container's own TTY. Each login shell must be
# the terminal's foreground process group with SIGINT at its default (so that
# Ctrl-C stops `ping` or `docker logs -f`), while this PID 1 waits in the
# interruptible `wait`, where a SIGTERM is handled at once rather than after
# the user's shell exits. A plain `bash -l &` gets neither: without job control
# it inherits SIGINT ignored, and with it it is a background job that the
# terminal stops. docker-init (tini, shipped by both bases) starts its child in
# a new process group and hands it the terminal, which is exactly the missing
# piece; -s keeps it quiet about not being PID 1.
run_shells() {
	shell="bash"
	command -v bash >/dev/null 2>&1 || shell="sh"
	init=
	for candidate in docker-init tini; do
		if command -v "$candidate" >/dev/null 2>&1; then
			init=$candidate
			break
		fi
	done
	wait_for_terminal_size
	set -m
	cd "${HOME:-/root}" 2>/dev/null || cd /
	while :; do
		if [ -n "$init" ]; then
			"$init" -s -- "$shell" -l &
			shell_pid=$!
			wait "$shell_pid"
			status=$?
		else
			# Without an init to hand over the terminal, run the shell in the
			# foreground; SIGTERM then waits until the user's shell exits.
			"$shell" -l
			status=$?
		fi
		# A shell that cannot start at all must not spin.
		[ "$status" -eq 0 ] || sleep 0.2
	done
}

# The first login shell starts once the terminal has a size, that is once the
# platform's first viewer has attached and said how big its window is: the
# welcome text and the first prompt then reach that viewer, drawn for its
# width. Resizing sends SIGWINCH to this foreground PID 1, which ends the wait
# at once; the poll is only a fallback.
wait_for_terminal_size() {
	sized=
	trap 'sized=1' WINCH
	# (The trap is set first, so that a resize right now is not missed.)
	if [ "$(stty size 2>/dev/null)" != "0 0" ]; then
		trap - WINCH
		return 0
	fi
	# One long sleep to wait on, not one per second: this PID 1 must not
	# need to fork while it waits, or a fork bomb run in the instance (a
	# pids limit reached) would make it fail and take the container down.
	sleep 2147483647 &
	sleeper=$!
	while [ -z "$sized" ]; do
		wait "$sleeper"
	done
	kill "$sleeper" 2>/dev/null
	trap - WINCH
}

# Stop dockerd on SIGTERM. On its own it would give each nested container its
# stop timeout (10 s) and then 5 s more, longer than `docker stop` gives this
# container, so the instance would be killed midway; stopping the nested
# containers first with a short grace keeps the whole shutdown within ~3 s.
stop_dockerd() {
	[ -n "$dockerd_pid" ] || return 0
	running=$(timeout 2 docker ps -q 2>/dev/null)
	# shellcheck disable=SC2086 # one argument per container id
	[ -z "$running" ] || timeout 5 docker stop -t 2 $running >/dev/null 2>&1
	kill -TERM "$dockerd_pid" 2>/dev/null
	wait "$dockerd_pid"
}

shutdown() {
	trap - TERM INT
	# docker-init passes the hangup on to the login shell.
	[ -z "$shell_pid" ] || kill -HUP "$shell_pid" 2>/dev/null
	stop_dockerd
	exit 0
}

if [ -n "$rootless" ]; then
	# The daemon's cgroups and iptables belong to its own namespaces.
	if [ "$(id -u)" = 0 ]; then
		rootless_prepare
		become_learner "$@"
	fi
	# Started as the learner already (the container's user is 1000): the
	# container's options must then provide what rootless_prepare makes
	# (/dev/net/tun as a device, which only works where the host's node is
	# mode 0666; a tmpfs at /run/user/1000 owned by 1000; a data root owned
	# by 1000), and the log goes to the runtime directory when /var/log is
	# not the learner's.
	[ -w "$DOCKERD_LOG" ] || [ -w "${DOCKERD_LOG%/*}" ] || DOCKERD_LOG=$XDG_RUNTIME_DIR/dockerd.log
else
	if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
		cgroup_setup_v2
	else
		cgroup_setup_v1
	fi
	iptables_setup
fi

# The platform's registry mirror (PLAYGROUND_REGISTRY_MIRROR, ADDRESS:PORT,
# plain HTTP) in the configuration the inner dockerd reads by itself:
# ~/.config/docker/daemon.json of the learner for the rootless daemon, written
# as the learner (root here lacks CAP_DAC_OVERRIDE for the learner's home),
# /etc/docker/daemon.json for the rootful one. A pull asks the mirror first
# and Docker Hub when the mirror has no such image. Written at every start,
# so that a restarted instance follows the platform's current setting.
mirror_setup() {
	if [ -n "$rootless" ]; then
		config=${XDG_CONFIG_HOME:-$LEARNER_HOME/.config}/docker/daemon.json
	else
		config=/etc/docker/daemon.json
	fi
	if [ -z "${PLAYGROUND_REGISTRY_MIRROR-}" ]; then
		# A mirror of an earlier start, no longer the platform's.
		! grep -qs "org.playground.registry-mirror" "$config" || rm -f "$config"
		return 0
	fi
	mkdir -p "${config%/*}" &&
		printf '{\n  "registry-mirrors": ["http://%s"],\n  "insecure-registries": ["%s"],\n  "labels": ["org.playground.registry-mirror=true"]\n}\n' \
			"$PLAYGROUND_REGISTRY_MIRROR" "$PLAYGROUND_REGISTRY_MIRROR" >"$config" ||
		warn "could not write $config; docker pull goes to Docker Hub"
}

mirror_setup
go_procs_setup
trap shutdown TERM INT
if [ "$#" -eq 0 ] || [ "${1#-}" != "$1" ]; then
	start_dockerd "$@"
	set --
else
	start_dockerd
fi

if [ "$#" -gt 0 ]; then
	"$@" &
	shell_pid=$!
	wait "$shell_pid"
	status=$?
	trap - TERM INT
	stop_dockerd
	exit "$status"
elif [ -t 0 ]; then
	run_shells
else
	wait "$dockerd_pid"
	warn "dockerd exited; see $DOCKERD_LOG"
	exit 1
fi
shutdown

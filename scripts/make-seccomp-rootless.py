#!/usr/bin/env python3
"""Derive docker/seccomp-rootless.json from moby's default seccomp profile.

    python3 scripts/make-seccomp-rootless.py moby-default-v20.10.24.json docker/seccomp-rootless.json

The input is profiles/seccomp/default.json of the engine's version
(`git show v20.10.24:profiles/seccomp/default.json` in github.com/moby/moby).
What changes, so that a rootless dockerd (RootlessKit, runc in a user
namespace) can run in a container that has no CAP_SYS_ADMIN:
  * allowed whatever the capabilities and flags: clone, unshare, setns,
    mount, umount, umount2, pivot_root, sethostname, setdomainname, chroot,
    and the new mount API (fsopen, fsconfig, fsmount, fspick, open_tree,
    move_mount, mount_setattr) (the kernel still checks each against the
    caller's user namespace);
  * the rules that allowed them only with CAP_SYS_ADMIN / CAP_SYS_CHROOT or
    only for some clone flags are dropped (clone3 keeps its rule: ENOSYS
    without CAP_SYS_ADMIN, and glibc and Go fall back to clone);
  * keyctl, add_key, request_key answer ENOSYS rather than EPERM, so that
    runc carries on without a session keyring.
"""

import json
import sys

ALLOW = [
    "clone",
    "unshare",
    "setns",
    "mount",
    "umount",
    "umount2",
    "pivot_root",
    "sethostname",
    "setdomainname",
    "chroot",
    # The new mount API, which the default profile also ties to
    # CAP_SYS_ADMIN: util-linux 2.41's mount(8) (Debian trixie) uses it and
    # fails with "permission denied" on EPERM (dockerd-rootless.sh runs
    # `mount --rbind` for /etc/ssl). The kernel checks it as mount(2).
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "open_tree",
    "move_mount",
    "mount_setattr",
]
ENOSYS = ["keyctl", "add_key", "request_key"]


def derive(profile: dict) -> dict:
    removed = set(ALLOW) | set(ENOSYS)
    rules = []
    for rule in profile["syscalls"]:
        names = [n for n in rule["names"] if n not in removed]
        if not names:
            continue
        rules.append({**rule, "names": names})
    rules.insert(
        0,
        {
            "names": ALLOW,
            "action": "SCMP_ACT_ALLOW",
            "args": [],
            "comment": "rootless dockerd: user, mount, network namespaces",
            "includes": {},
            "excludes": {},
        },
    )
    rules.insert(
        1,
        {
            "names": ENOSYS,
            "action": "SCMP_ACT_ERRNO",
            "errnoRet": 38,
            "args": [],
            "comment": "no kernel keyring: runc goes on without one",
            "includes": {},
            "excludes": {},
        },
    )
    return {**profile, "syscalls": rules}


if __name__ == "__main__":
    src, dst = sys.argv[1:3]
    with open(src) as f:
        out = derive(json.load(f))
    with open(dst, "w") as f:
        json.dump(out, f, indent="\t")
        f.write("\n")

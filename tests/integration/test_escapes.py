"""A learner cannot leave the instance, tried from the learner's own terminal.

Each test types, at a rootless instance's browser terminal, the steps of a
known way out of a container to root on the host, as the learner, as root of
a user namespace the learner makes (`unshare -r`), and as root of a nested
container, and sees every one fail. The instances run on the default profile
(rootless), on the real engine behind the real Daphne and worker.
"""

import os
import shlex
import subprocess
import uuid
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async

from sessions_app.models import Instance
from tests.support.learner import Learner, close_session, give_tiny_image, open_session

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

MARKER = f"host-secret-{uuid.uuid4().hex}"


@pytest.fixture
def sessions(platform, web, docker_client):
    """Open sessions (their tiny image loaded): sessions(n) -> ids; closed at the end."""
    opened: list[str] = []

    def open_(count: int = 1) -> list[str]:
        ids = [open_session(web) for _ in range(count)]
        opened.extend(ids)
        for session_id in ids:
            give_tiny_image(docker_client, session_id)
        return ids

    yield open_
    for session_id in opened:
        close_session(web, session_id)


@pytest.fixture
async def learner(sessions, web):
    [session_id] = sessions(1)
    learner = await Learner.at(web, session_id)
    yield learner
    await learner.close()


@pytest.fixture
def host_disk(tmp_path):
    """A block device of the host holding a file with a secret: (major, minor)."""
    image = tmp_path / "disk.img"
    with open(image, "wb") as handle:
        handle.truncate(64 << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True)
    mount = tmp_path / "mnt"
    mount.mkdir()
    subprocess.run(["mount", "-o", "loop", str(image), str(mount)], check=True)
    (mount / "marker").write_text(MARKER)
    subprocess.run(["umount", str(mount)], check=True)
    device = subprocess.run(["losetup", "--find", "--show", str(image)], capture_output=True, text=True, check=True)
    device = device.stdout.strip()
    rdev = os.stat(device).st_rdev
    yield os.major(rdev), os.minor(rdev)
    subprocess.run(["losetup", "--detach", device], check=False)


# As the learner, as root of a user namespace of the learner's, and as root
# of a nested container (the tiny image: busybox).
AS_USERNS_ROOT = "unshare -rm sh -c {}"
AS_NESTED_ROOT = "docker run --rm tiny:latest sh -c {}"


async def attempts_all_fail(learner: Learner, steps: str) -> str:
    """Run the same steps three ways; each must fail, and fail at the steps
    (the user namespace or the nested container did start, as root in it).
    All the output, for more checks."""
    outputs = []
    for how in ("{}", AS_USERNS_ROOT, AS_NESTED_ROOT):
        if how == "{}":
            command = steps
        else:
            command = how.format(shlex.quote(f"echo inside-as-uid-$(id -u) && {steps}"))
        status, output = await learner.sh(command)
        assert status != 0, f"this worked: {command}\n{output}"
        if how != "{}":
            assert "inside-as-uid-0" in output, output
        outputs.append(output)
    return "\n".join(outputs)


async def test_it_keeps_a_host_block_device_out_of_reach(learner, host_disk):
    major, minor = host_disk

    # Make the device node, allow it in the container's own device cgroup,
    # mount it, read the file.
    output = await attempts_all_fail(
        learner,
        f"mknod /tmp/disk b {major} {minor} && "
        f"echo 'b {major}:{minor} rwm' >/sys/fs/cgroup/devices/devices.allow && "
        "mkdir -p /tmp/disk-mnt && mount -o ro /tmp/disk /tmp/disk-mnt && cat /tmp/disk-mnt/marker",
    )
    for step in (
        f"echo 'b {major}:{minor} rwm' >/sys/fs/cgroup/devices/devices.allow",
        "cat /sys/fs/cgroup/devices/devices.list >/sys/fs/cgroup/devices/devices.allow",
    ):
        status, more = await learner.sh(step)
        assert status != 0, more
        output += more

    assert MARKER not in output
    assert "Operation not permitted" in output or "Permission denied" in output


async def test_it_keeps_the_kernels_core_pattern_out_of_reach(learner):
    before = Path("/proc/sys/kernel/core_pattern").read_text()

    # Written back with the value it has: harmless if it ever worked.
    output = await attempts_all_fail(learner, "cat /proc/sys/kernel/core_pattern >/proc/sys/kernel/core_pattern")
    status, _ = await learner.sh('printf "%s\\n" "$(cat /proc/sys/kernel/core_pattern)" >/proc/sys/kernel/core_pattern')

    assert status != 0
    assert "Permission denied" in output or "Read-only file system" in output
    assert Path("/proc/sys/kernel/core_pattern").read_text() == before


async def test_it_keeps_cgroup_release_agents_out_of_reach(learner):
    # Mount a cgroup v1 hierarchy, then write its release_agent (its own
    # value: harmless if it ever worked).
    output = await attempts_all_fail(
        learner,
        "mkdir -p /tmp/cg && mount -t cgroup -o memory cgroup /tmp/cg && "
        "cat /tmp/cg/release_agent >/tmp/cg/release_agent",
    )
    # Where a new cgroup namespace lets the mount through, the write is refused.
    status, more = await learner.sh(
        AS_USERNS_ROOT.replace("-rm", "-rmC").format(
            shlex.quote(
                "mkdir -p /tmp/cg2 && mount -t cgroup -o memory cgroup /tmp/cg2 && "
                "cat /tmp/cg2/release_agent >/tmp/cg2/release_agent"
            )
        )
    )

    assert status != 0, more
    assert "Permission denied" in output + more or "not permitted" in output + more


async def test_it_keeps_sys_and_proc_sys_read_only(learner):
    await attempts_all_fail(learner, "mount -o remount,rw /sys")
    await attempts_all_fail(learner, "mount -o remount,rw /proc/sys")

    status, output = await learner.sh("touch /sys/kernel/profiling; echo 1 >/proc/sys/vm/drop_caches")
    assert status != 0, output


async def test_it_runs_nothing_as_root_that_a_learner_could_use(learner):
    # The learner's shell, and no program that would make it root again.
    assert (await learner.ok("id -u; id -un")).split() == ["1000", "learner"]
    assert (await learner.ok("find / -xdev -perm /6000 -type f 2>/dev/null | wc -l")).strip() == "0"
    # Every process but the init (PID 1, which the learner cannot touch) is the learner's.
    owners = (await learner.ok("ps -eo user=,pid=,comm= | awk '$2 != 1 {print $1}' | sort -u")).split()
    assert "learner" in owners and "root" not in owners, owners
    status, output = await learner.sh("cat /proc/1/environ >/dev/null")
    assert status != 0 and "Permission denied" in output
    status, _ = await learner.sh("kill -0 1")
    assert status != 0


async def test_it_shows_no_other_sessions_id_anywhere(sessions, web, docker_client):
    victim, intruder = sessions(2)
    learner = await Learner.at(web, intruder)
    # Typed in two halves, so that the command line echoed by the terminal
    # never holds the id itself.
    half = len(victim) // 2
    find = f"V={victim[:half]}''{victim[half:]}"

    # Loop devices' backing files are readable in every container: they
    # name disks, but by a random token, not by the session.
    backing = await learner.ok("cat /sys/block/loop*/loop/backing_file 2>/dev/null")
    victim_token = await sync_to_async(lambda: Instance.objects.get(session_id=victim).storage_token)()
    assert victim_token in backing
    searched = await learner.sh(
        f"{find}; "
        'grep -rsl "$V" /sys/block /sys/fs/cgroup /proc/mounts /proc/*/mountinfo /proc/*/environ /proc/*/cmdline '
        "/etc /run /tmp /home /var/log /var/lib/docker 2>/dev/null | head; "
        'find / -xdev -name "*$V*" 2>/dev/null | head; dmesg 2>/dev/null | grep -c "$V"; '
        'getent hosts "playground-$V"; env | grep -c "$V"',
        timeout=120,
    )

    assert victim not in backing
    assert victim not in searched[1]
    await learner.close()

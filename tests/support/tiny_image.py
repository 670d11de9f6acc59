"""A tiny image for tests that need containers inside a playground instance.

No registry can be reached on the machines the tests run on, so nothing can be
pulled into an instance. Instead the tests build a root filesystem holding one
static busybox (Debian's ``busybox-static`` package provides ``/bin/busybox``)
and ``docker import`` it inside the instance.
"""

from __future__ import annotations

import io
import os
import shlex
import tarfile
import time

from sessions_app.backends.docker import exec_user

BUSYBOX = "/bin/busybox"

# The applets a test or a curious person is likely to call.
APPLETS = (
    "sh ash echo cat ls sleep httpd wget ps env hostname id ip ifconfig mkdir rm cp mv "
    "true false uname date nc ping top vi grep sed awk head tail tee touch kill df du "
    "printf test which whoami yes seq sort uniq wc chmod ln pwd find xargs tr cut "
    "basename dirname free uptime mknod mount umount"
).split()

INDEX_HTML = b"hello from tiny\n"


class BusyboxMissing(RuntimeError):
    """The static busybox the tiny image is made of is not installed."""


def _add_file(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644, owner: int = 0) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    info.uid = info.gid = owner
    info.mtime = int(time.time())
    tar.addfile(info, io.BytesIO(data))


def _add_dir(tar: tarfile.TarFile, name: str, mode: int = 0o755) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = mode
    info.mtime = int(time.time())
    tar.addfile(info)


def _add_symlink(tar: tarfile.TarFile, name: str, target: str) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.SYMTYPE
    info.linkname = target
    info.mtime = int(time.time())
    tar.addfile(info)


def tiny_image_tar() -> bytes:
    """Return a root filesystem tar with busybox, for ``docker import``.

    It holds ``/bin/busybox``, a symlink per applet in ``APPLETS``, the usual
    empty directories, a root user and ``/www/index.html`` (``INDEX_HTML``)
    for ``httpd`` to serve. Raises ``BusyboxMissing`` when the static busybox
    is not installed on this machine.
    """
    try:
        with open(BUSYBOX, "rb") as f:
            busybox = f.read()
    except FileNotFoundError:
        raise BusyboxMissing(f"{BUSYBOX} is missing: install it with `apt-get install busybox-static`") from None
    if b"ld-linux" in busybox[:4096] or b"/lib64/" in busybox[:4096]:
        raise BusyboxMissing(f"{BUSYBOX} is dynamically linked; install busybox-static")

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for directory in ("bin", "etc", "dev", "proc", "sys", "root", "var", "www"):
            _add_dir(tar, directory)
        _add_dir(tar, "tmp", mode=0o1777)
        _add_file(tar, "bin/busybox", busybox, mode=0o755)
        for applet in APPLETS:
            _add_symlink(tar, f"bin/{applet}", "busybox")
        _add_file(tar, "etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n")
        _add_file(tar, "etc/group", b"root:x:0:\n")
        _add_file(tar, "www/index.html", INDEX_HTML)
    return buffer.getvalue()


def load_tiny_image(container, tag: str = "tiny:latest", user: str | None = None) -> str:
    """Import the tiny image into the inner Docker of a running instance.

    ``container`` is a docker-py ``Container`` whose inner daemon answers;
    ``user`` runs the commands (by default, whom the platform runs them as).
    Returns the id of the imported image inside the instance; raises
    ``RuntimeError`` with the inner docker's output when the import fails.
    """
    image = tiny_image_tar()
    if user is None:
        user = exec_user()  # who the platform runs commands as: the learner, under the rootless profile
    # put_archive unpacks a tar, so the image tar travels inside another one,
    # owned by that user.
    wrapper = io.BytesIO()
    with tarfile.open(fileobj=wrapper, mode="w") as tar:
        _add_file(tar, "tiny-image.tar", image, owner=int(user or 0))
    path = f"/tmp/tiny-{os.getpid()}"
    container.exec_run(["mkdir", "-p", path], user=user)
    if not container.put_archive(path, wrapper.getvalue()):
        raise RuntimeError(f"could not copy the tiny image into {container.name}")
    command = (
        "docker import --change 'WORKDIR /www' --change 'CMD [\"sh\"]' "
        f"{path}/tiny-image.tar {shlex.quote(tag)} && rm -rf {path}"
    )
    result = container.exec_run(["sh", "-c", command], user=user)
    output = result.output.decode(errors="replace").strip()
    if result.exit_code != 0:
        raise RuntimeError(f"docker import failed in {container.name}: {output}")
    return output.splitlines()[-1]

"""Twenty instances pulling the same image through the registry mirror at once.

Run against a platform that is up, with its mirror (scripts/run starts both),
on the same machine (the image is made in the host's engine and seeded with
manage.py seed_images), with the per-client limits raised, since every
session of the benchmark comes from one address:

    PLAYGROUND_MAX_SESSIONS_PER_CLIENT=100 PLAYGROUND_SESSION_RATE=1000/min scripts/run

    .venv/bin/python bench/mirror.py --url http://127.0.0.1:8000 --instances 20 --size-mb 50

It makes an image of the static busybox and SIZE_MB of random bytes (which
no compression shrinks) in the host's engine, seeds it, opens the sessions
and waits until they run, then has every instance `docker pull` it at the same
moment, as its learner, through POST /sessions/{id}/exec. It prints each
pull's time (p50, p95, max), that all of them ended well, and how much the
mirror's storage grew (du): the image once, not once per instance. Every
session it opens is closed before it exits, and the image is removed from the
host's engine (it stays in the mirror: manage.py mirror_gc).
"""

import argparse
import io
import logging
import os
import statistics
import subprocess
import sys
import tarfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "playground.settings")
import django  # noqa: E402

django.setup()  # the tiny image's module reads the platform's settings
from tests.support.api import api  # noqa: E402  (remembers each session's access token)
from tests.support.tiny_image import tiny_image_tar  # noqa: E402

POLL_INTERVAL = 0.5
# The shared HTTP session keeps 10 connections; the other 10 threads' are dropped, which is fine here.
logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def make_image(name: str, size_mb: int) -> None:
    """The tiny busybox root filesystem plus /data/random of size_mb MiB, imported into the host's engine."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(tiny_image_tar())) as tiny, tarfile.open(fileobj=buffer, mode="w") as tar:
        for member in tiny.getmembers():
            tar.addfile(member, tiny.extractfile(member) if member.isfile() else None)
        info = tarfile.TarInfo("data/random")
        info.size = size_mb * 2**20
        info.mode = 0o644
        tar.addfile(info, io.BytesIO(os.urandom(info.size)))
    done = subprocess.run(["docker", "import", "-", name], input=buffer.getvalue(), capture_output=True)
    if done.returncode != 0:
        raise RuntimeError(f"docker import failed: {done.stderr.decode()}")


def du_bytes(path: Path) -> int:
    return int(subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True, check=True).stdout.split()[0])


def open_running(url: str, opened: list[str], timeout: float) -> str:
    response = api.post(f"{url}/sessions", json={"playground_id": "default"}, timeout=30)
    response.raise_for_status()
    session_id = response.json()["session_id"]
    opened.append(session_id)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        instance = api.get(f"{url}/sessions/{session_id}", timeout=30).json()["instance"]
        if instance["status"] == "running":
            return session_id
        if instance["status"] == "failed":
            raise RuntimeError(f"session {session_id} failed: {instance['error']}")
        time.sleep(POLL_INTERVAL)
    raise RuntimeError(f"session {session_id} not running after {timeout}s")


def timed_pull(url: str, session_id: str, image: str, start: threading.Barrier) -> tuple[float, dict]:
    start.wait()
    began = time.monotonic()
    response = api.post(
        f"{url}/sessions/{session_id}/exec?wait=1",
        json={"cmd": ["docker", "pull", "-q", image], "timeout": 600},
        timeout=660,
    )
    return time.monotonic() - began, response.json()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--instances", type=int, default=20)
    parser.add_argument("--size-mb", type=int, default=50)
    parser.add_argument(
        "--storage",
        type=Path,
        default=Path(os.environ.get("PLAYGROUND_REGISTRY_DIR", ROOT / "var" / "registry")) / "storage",
        help="The mirror's storage, for du (default: var/registry/storage, where scripts/run keeps it).",
    )
    parser.add_argument("--timeout", type=float, default=300, help="Seconds a session may take to run.")
    args = parser.parse_args()

    image = f"mirror-bench:{uuid.uuid4().hex[:8]}"
    print(f"Making {image}: busybox and {args.size_mb} MiB of random bytes")
    make_image(image, args.size_mb)
    opened: list[str] = []
    try:
        before = du_bytes(args.storage)
        subprocess.run([sys.executable, "manage.py", "seed_images", image], cwd=ROOT, check=True)
        seeded = du_bytes(args.storage) - before
        print(f"Seeded: the mirror's storage grew by {seeded / 2**20:.1f} MiB")

        with ThreadPoolExecutor(args.instances) as pool:
            list(pool.map(lambda _: open_running(args.url, opened, args.timeout), range(args.instances)))
        print(f"{len(opened)} sessions running; pulling {image} in all of them at once")

        start = threading.Barrier(args.instances)
        with ThreadPoolExecutor(args.instances) as pool:
            results = list(pool.map(lambda session_id: timed_pull(args.url, session_id, image, start), opened))
        after = du_bytes(args.storage) - before

        seconds = [elapsed for elapsed, _ in results]
        failed = [ran for _, ran in results if ran.get("exit_code") != 0]
        print(f"pulls done: {len(results) - len(failed)}/{len(results)}")
        for ran in failed[:3]:
            print(f"  failed: {ran}")
        print(
            f"pull time (s): p50 {statistics.median(seconds):.2f}, p95 {percentile(seconds, 0.95):.2f}, "
            f"max {max(seconds):.2f}"
        )
        print(
            f"mirror storage: grew {after / 2**20:.1f} MiB in all ({seeded / 2**20:.1f} MiB at seeding, "
            f"{(after - seeded) / 2**20:.1f} MiB during the pulls) for a {args.size_mb} MiB image"
        )
        return 1 if failed else 0
    finally:
        for session_id in opened:
            api.delete(f"{args.url}/sessions/{session_id}", timeout=30)
        subprocess.run(["docker", "image", "rm", image], capture_output=True)


if __name__ == "__main__":
    sys.exit(main())

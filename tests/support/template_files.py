"""A template's folder as test data: a good one, and ways to make it a .zip or change its template.yaml."""

import io
import zipfile
from pathlib import Path

from labs.models import Step, Template
from sessions_app.models import Playground

TEMPLATE_YAML = """\
slug: first-container
title: Your first container
description: Run, list and remove a container.
playground:
  memory_mb: 1024
  cpus: 0.5
  pids: 200
  storage: 2G
  duration: 1h
  max_duration: 90m
  egress: none
  preload: [busybox:1.36]
prepared: 1
setup: setup.sh
setup_timeout: 30
steps:
  - title: Run a container
    text: steps/1-run.md
    check: steps/1-check.sh
    solve: steps/1-solve.sh
  - title: Remove it
    text: steps/2-remove.md
    check: steps/2-check.sh
"""

GOOD = {
    "template.yaml": TEMPLATE_YAML,
    "setup.sh": "docker import - tiny </dev/null\n",
    "steps/1-run.md": "# Run\n\n```bash run\ndocker run -d --name first tiny sleep 1d\n```\n",
    "steps/1-check.sh": "docker inspect first\r\n",
    "steps/1-solve.sh": "docker run -d --name first tiny sleep 1d\n",
    "steps/2-remove.md": "# Remove\n",
    "steps/2-check.sh": "! docker inspect first\n",
    "files/notes.txt": "Read me.\n",
    "files/bin/hello": "#!/bin/sh\necho hello\n",
}
EXECUTABLE = {"files/bin/hello"}


def write_tree(root: Path, files: dict[str, str | bytes]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        path.chmod(0o755 if name in EXECUTABLE else 0o644)
    return root


def zip_bytes(files: dict[str, str | bytes], *, prefix: str = "") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            info = zipfile.ZipInfo(prefix + name)
            info.external_attr = (0o100755 if name in EXECUTABLE else 0o100644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, content)
    return buffer.getvalue()


def with_yaml(old: str, new: str) -> dict[str, str]:
    assert old in TEMPLATE_YAML
    return {**GOOD, "template.yaml": TEMPLATE_YAML.replace(old, new)}


def database_state() -> tuple:
    """All that an import may write, to compare before and after."""
    return (
        list(Template.objects.values()),
        list(Step.objects.order_by("pk").values()),
        list(Playground.objects.order_by("pk").values()),
    )

"""What a template puts into an instance before its learner gets it: files, then a setup script.

Both run as the learner, in its home, through the backend's exec: the files
as a tar unpacked there, the script with bash. Run by the provisioning task
(a session's own instance) and by the pool (an instance prepared ahead).
"""

import base64
import io
import tarfile
import time
from dataclasses import dataclass

from labs.models import Template
from sessions_app.backends.base import AttachError, Backend, BackendError, ExecExit, ExecOutput
from sessions_app.models import Instance

UNPACK_TIMEOUT = 60  # seconds to unpack the files
OUTPUT_KEPT = 4000  # characters of a failed script's output kept for its learner


class SetupFailed(BackendError):
    reason = "setup_failed"
    message = "The lab's setup failed."


@dataclass(frozen=True)
class ScriptResult:
    passed: bool
    exit_code: int | None
    timed_out: bool
    output: str  # stdout and stderr as they came, its end kept when long


def needs_setup(template: Template | None) -> bool:
    return template is not None and bool(template.files or template.setup.strip())


def files_tar(template: Template) -> bytes:
    """The template's files as a tar (paths relative to the learner's home).

    Raises SetupFailed for files that are not as Template.files says (an
    admin may edit them by hand): the session fails, saying so.
    """
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for number, entry in enumerate(template.files if isinstance(template.files, list) else [None], start=1):
            try:
                data = base64.b64decode(entry["content"], validate=True)
                member = tarfile.TarInfo(entry["path"])
                member.mode = int(entry.get("mode", 0o644)) & 0o777
            except (TypeError, KeyError, ValueError, AttributeError) as exc:
                raise SetupFailed(
                    "The lab's files are malformed; tell the lab's author.",
                    log_message=f"template {template.slug}: file {number} is malformed: {exc!r}",
                ) from None
            member.size, member.mtime = len(data), int(time.time())
            tar.addfile(member, io.BytesIO(data))
    return buffer.getvalue()


def run_script(
    backend: Backend, instance: Instance, script: str, *, timeout: float, stdin: bytes = b""
) -> ScriptResult:
    """Run a bash script in the instance as its learner; what it printed and how it ended."""
    return run_command(backend, instance, ["bash", "-c", script], timeout=timeout, stdin=stdin)


def run_command(
    backend: Backend, instance: Instance, cmd: list[str], *, timeout: float, stdin: bytes = b""
) -> ScriptResult:
    output: list[str] = []
    kept = 0
    exit_code, timed_out = None, False
    try:
        for event in backend.exec(instance, cmd, stdin=stdin, timeout=timeout):
            if isinstance(event, ExecOutput):
                text = event.data.decode("utf-8", "replace")
                output.append(text)
                kept += len(text)
                while kept - len(output[0]) > OUTPUT_KEPT and len(output) > 1:
                    kept -= len(output.pop(0))
            elif isinstance(event, ExecExit):
                exit_code, timed_out = event.exit_code, event.timed_out
    except AttachError as exc:
        return ScriptResult(False, None, False, f"The instance did not answer: {exc}")
    text = "".join(output)[-OUTPUT_KEPT:]
    return ScriptResult(exit_code == 0 and not timed_out, exit_code, timed_out, text)


def instance_set_up(backend: Backend, instance: Instance, template: Template) -> None:
    """Put the template's files into the instance, then run its setup script; SetupFailed says why not."""
    if template.files:
        unpacked = run_command(
            backend,
            instance,
            ["tar", "-x", "--no-same-owner", "-f", "-"],
            stdin=files_tar(template),
            timeout=UNPACK_TIMEOUT,
        )
        if not unpacked.passed:
            raise SetupFailed(
                f"The lab's files could not be put in place:\n{unpacked.output}",
                log_message=f"template {template.slug}: unpacking its files failed: {unpacked.output[-500:]}",
            )
    if not template.setup.strip():
        return
    result = run_script(backend, instance, template.setup, timeout=template.setup_timeout)
    if result.passed:
        return
    how = f"ran out of its {template.setup_timeout} s" if result.timed_out else f"exit {result.exit_code}"
    raise SetupFailed(
        f"The lab's setup failed ({how}):\n{result.output}",
        log_message=f"template {template.slug}: setup failed ({how}): {result.output[-500:]}",
    )

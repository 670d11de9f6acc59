"""A learner at a session's terminal, for integration tests that act as one.

`open_session()` opens a session through the API of the test's Daphne and
waits until it runs; `Learner.at()` attaches to its browser terminal
WebSocket, and `learner.sh(command)` types a command as a learner would and
returns its output and exit status.
"""

import re
import shlex

from sessions_app.backends.docker import exec_user
from tests.integration.test_sessions_on_docker import containers_of, wait_until_running
from tests.support.api import api
from tests.support.terminal_client import Terminal
from tests.support.tiny_image import load_tiny_image

ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")
EXIT = re.compile(rb"exit=(\d+)\r?\n")
DONE = re.compile(rb"done-\d+\r?\n$")  # the marker Terminal.run ends the output with


def open_session(web) -> str:
    response = api.post(f"{web.url}/sessions", json={"playground_id": "default"}, timeout=10)
    assert response.status_code == 201, response.text
    session_id = response.json()["session_id"]
    wait_until_running(web, session_id)
    return session_id


def close_session(web, session_id: str) -> None:
    api.delete(f"{web.url}/sessions/{session_id}", timeout=10)


class Learner:
    def __init__(self, terminal: Terminal) -> None:
        self.terminal = terminal

    @classmethod
    async def at(cls, web, session_id: str) -> "Learner":
        terminal = await Terminal.open(web.url, session_id, cols=200, rows=50)
        await terminal.wait_for_status("running", timeout=60)
        return cls(terminal)

    async def sh(self, command: str, *, timeout: float = 60) -> tuple[int, str]:
        """Type a command at the prompt; its exit status and its output (colours stripped)."""
        output = await self.terminal.run(f"{command}; echo exit=$?", timeout=timeout)
        status = EXIT.findall(output)
        assert status, f"no exit status in {output!r}"
        text = ANSI.sub(b"", EXIT.sub(b"", DONE.sub(b"", output))).replace(b"\r\n", b"\n").decode(errors="replace")
        return int(status[-1]), text

    async def ok(self, command: str, *, timeout: float = 60) -> str:
        """Type a command that must succeed; its output."""
        status, output = await self.sh(command, timeout=timeout)
        assert status == 0, f"{command!r} failed ({status}):\n{output}"
        return output

    async def write_file(self, path: str, text: str) -> None:
        """Write a file as a learner would with an editor (here: printf)."""
        await self.ok(f"printf %s {shlex.quote(text)} >{shlex.quote(path)}")

    async def close(self) -> None:
        await self.terminal.close()


def give_tiny_image(docker_client, session_id: str) -> None:
    """Load the tiny busybox image into the session's inner Docker (no registry here).

    It goes in as the platform would run anything there: never as root of a
    rootless instance.
    """
    [container] = containers_of(docker_client, session_id)
    load_tiny_image(container, user=exec_user())

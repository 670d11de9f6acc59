"""scripts/run refuses to serve Django's debug pages beyond the machine itself.

Only refusals are tried here: a start that is allowed would run the platform.
"""

import os
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "run"


@pytest.mark.parametrize(
    ("debug", "bind"),
    [(None, "0.0.0.0"), ("true", "::"), ("1", "192.0.2.2"), ("on", "play.example.com"), (None, "127.evil.example")],
)
def test_it_refuses_debug_on_an_address_others_reach(debug, bind):
    env = {key: value for key, value in os.environ.items() if key != "DEBUG"}
    env["PLAYGROUND_BIND"] = bind
    if debug is not None:
        env["DEBUG"] = debug

    done = subprocess.run([SCRIPT], env=env, capture_output=True, text=True, timeout=30)

    assert done.returncode == 1
    assert done.stderr.startswith(
        f"error: DEBUG is on (the default), and PLAYGROUND_BIND={bind} is not a loopback address"
    ), done.stderr
    assert "set DEBUG=false" in done.stderr

"""POST /sessions/{id}/exec and GET /sessions/{id}/stats on the real engine, through Daphne: a command runs
in the instance as its learner, its output streams as it comes, and one past
its timeout is killed."""

import json
import time

import pytest
import requests

from tests.support.api import api
from tests.support.learner import give_tiny_image

pytestmark = pytest.mark.integration


def run(web, session_id: str, **body) -> requests.Response:
    return api.post(f"{web.url}/sessions/{session_id}/exec?wait=1", json=body, timeout=60)


def test_it_returns_stdout_stderr_and_the_exit_code(web, session_id):
    ran = run(web, session_id, cmd=["sh", "-c", "echo out; echo err >&2; exit 7"])

    assert ran.status_code == 200, ran.text
    assert ran.json() == {"stdout": "out\n", "stderr": "err\n", "exit_code": 7, "timed_out": False, "truncated": False}


def test_it_runs_as_the_learner_at_home_with_its_docker(web, session_id, docker_client):
    give_tiny_image(docker_client, session_id)

    who = run(web, session_id, cmd=["sh", "-c", "id -u; pwd"]).json()["stdout"].split()
    nested = run(web, session_id, cmd=["docker", "run", "--rm", "tiny:latest", "echo", "nested"]).json()

    assert who == ["1000", "/home/learner"]
    assert nested["exit_code"] == 0, nested
    assert nested["stdout"] == "nested\n"


def test_it_feeds_stdin_and_keeps_bytes_and_arguments_as_given(web, session_id):
    script = 'cat; printf "%s|" "$@"'
    ran = run(web, session_id, cmd=["sh", "-c", script, "sh", "a b", "$HOME", "; rm -rf /"], stdin="ünï\n")

    assert ran.json()["stdout"] == "ünï\na b|$HOME|; rm -rf /|"


def test_it_kills_a_command_past_its_timeout(web, session_id):
    started = time.monotonic()
    ran = run(web, session_id, cmd=["sh", "-c", "echo started; sleep 30"], timeout=2)

    assert time.monotonic() - started < 15
    assert ran.json()["timed_out"] is True
    assert ran.json()["stdout"] == "started\n"
    still = run(web, session_id, cmd=["sh", "-c", "pgrep -fx 'sleep 30' || echo none"]).json()["stdout"]
    assert still == "none\n"


def test_it_streams_output_as_the_command_writes_it(web, session_id):
    started = time.monotonic()
    arrivals = []
    with api.post(
        f"{web.url}/sessions/{session_id}/exec",
        json={"cmd": ["sh", "-c", "echo first; sleep 3; echo second; exit 3"]},
        stream=True,
        timeout=30,
    ) as response:
        assert response.headers["Content-Type"] == "application/x-ndjson"
        for line in response.iter_lines():
            arrivals.append((time.monotonic() - started, json.loads(line)))

    records = [record for _, record in arrivals]
    assert records == [
        {"stream": "stdout", "data": "first\n"},
        {"stream": "stdout", "data": "second\n"},
        {"exit_code": 3, "timed_out": False},
    ]
    assert arrivals[0][0] < 2.5 < arrivals[1][0], arrivals  # the first line came before the command ended


def test_stats_measure_what_the_instance_uses(web, session_id):
    # Something to measure: a second of CPU work, and a file in the inner Docker's storage.
    busy = ["sh", "-c", "echo busy; end=$(($(date +%s)+3)); while [ $(date +%s) -lt $end ]; do :; done"]
    with api.post(f"{web.url}/sessions/{session_id}/exec", json={"cmd": busy}, stream=True, timeout=30) as running:
        lines = running.iter_lines()
        assert json.loads(next(lines)) == {"stream": "stdout", "data": "busy\n"}
        stats = api.get(f"{web.url}/sessions/{session_id}/stats", timeout=30)
        list(lines)

    assert stats.status_code == 200, stats.text
    figures = stats.json()
    assert figures["cpu_percent"] > 20
    assert figures["cpu_seconds"] > 0
    assert 0 < figures["memory_bytes"] < figures["memory_limit_bytes"]
    assert 0 < figures["pids"] < figures["pids_limit"]
    assert figures["network_rx_bytes"] >= 0
    assert 0 < figures["storage_used_bytes"] < figures["storage_size_bytes"]


def test_a_process_that_leaves_the_commands_group_does_not_hold_the_answer(web, session_id):
    # `setsid -f` escapes the process group that `timeout` kills, and keeps
    # the output open; the answer comes when the command itself has ended.
    escape = ["setsid", "-f", "sh", "-c", "while :; do echo still here; sleep 1; done"]
    started = time.monotonic()

    ran = run(web, session_id, cmd=escape, timeout=5)

    assert ran.status_code == 200, ran.text
    assert time.monotonic() - started < 5 + 10 + 5, ran.json()  # its timeout, the grace, and slack
    assert ran.json()["exit_code"] is not None, ran.json()

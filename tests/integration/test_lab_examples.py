"""The example labs on the real stack: each imported, opened through the API, and walked step by step.

Every step's check fails before the step is done, its solve does it, and its
check passes then, each run in the instance as the learner.
"""

import pytest

from labs.importer import examples, template_import
from labs.models import CHECK_TIMEOUT
from labs.setup import run_script
from sessions_app.backends import get_backend
from sessions_app.models import Instance
from tests.integration.test_sessions_on_docker import close_session, wait_until_running
from tests.support.api import api

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("folder", examples(), ids=lambda folder: folder.name)
def test_it_takes_a_learner_through_every_step_of_the_example(platform, live_server, worker, docker_client, folder):
    template = template_import(folder)
    response = api.post(f"{live_server.url}/sessions", json={"template": template.slug}, timeout=10)
    assert response.status_code == 201, response.text
    session_id = response.json()["session_id"]
    try:
        wait_until_running(live_server, session_id, timeout=120)
        instance = Instance.objects.get(session_id=session_id)
        backend = get_backend()

        def run(script: str):
            return run_script(backend, instance, script, timeout=CHECK_TIMEOUT)

        for step in template.steps.order_by("position"):
            where = f"{template.slug} step {step.position} ({step.title})"
            before = run(step.check_script)
            assert not before.passed, f"{where}: its check passes before the step is done:\n{before.output}"
            assert before.output.strip(), f"{where}: its failing check tells the learner nothing"
            solved = run(step.solve_script)
            assert solved.passed, f"{where}: its solve failed (exit {solved.exit_code}):\n{solved.output}"
            after = run(step.check_script)
            assert after.passed, f"{where}: its check fails after its solve (exit {after.exit_code}):\n{after.output}"
    finally:
        close_session(live_server, docker_client, session_id)

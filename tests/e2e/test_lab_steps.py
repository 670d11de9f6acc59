"""A guided lab's steps beside the terminal, in a real headless Chromium on the real stack: a check
that fails and says why, a Run button that types the step's command into the terminal, a check that
passes and opens the next step."""

import re

import pytest
from playwright.sync_api import expect

from tests.factories import make_step, make_template
from tests.support.browser import errors_of_the_page
from tests.support.stack import ARTIFACTS

pytestmark = pytest.mark.e2e

STEP_ONE = """Make a file in your home:

```bash run
echo done > ~/step1 && echo step1-made-$((6*7))
```
"""
CHECK = 'test -f ~/step1 || { echo "There is no ~/step1 yet."; exit 1; }'


@pytest.fixture
def lab(platform):
    """The lab's template, in the database the web process reads (made before the browser's event loop starts:
    the ORM refuses to run beside one)."""
    template = make_template("steps-in-browser", title="Steps in the browser")
    make_step(template, 1, title="Make a file", text=STEP_ONE, check_script=CHECK)
    make_step(template, 2, title="All done", text="You made **it**.")
    return template


def test_a_learner_checks_a_step_runs_its_command_and_opens_the_next(lab, web, browser):  # noqa: F811
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    console_errors: list[str] = []
    page.on("console", lambda message: message.type == "error" and console_errors.append(message.text))

    page.goto(f"{web.url}/t/steps-in-browser")
    page.locator("#start").click()
    page.wait_for_url(re.compile(r"/p/[0-9a-f]{32}$"), timeout=15_000)
    rows = page.locator(".xterm-rows")
    expect(rows).to_contain_text("[node1]", timeout=60_000)
    expect(page.locator("#step-title")).to_have_text("Make a file")
    expect(page.locator("#step-counter")).to_have_text("Step 1 of 2")
    expect(page.locator("#step-next")).to_be_disabled()
    expect(page.locator("#step-go-next")).to_be_hidden()
    # The terminal fits beside the panel.
    assert page.locator("#terminal").bounding_box()["width"] <= 1280 - 300

    page.locator("#step-check").click()
    expect(page.locator("#step-verdict")).to_have_text("✗ Not yet:", timeout=40_000)
    expect(page.locator("#step-output")).to_have_text("There is no ~/step1 yet.")

    page.locator(".step-run-button").click()
    expect(rows).to_contain_text("step1-made-42", timeout=15_000)
    page.locator("#step-check").click()
    expect(page.locator("#step-verdict")).to_have_text("✓ Passed: the next step is open.", timeout=40_000)
    expect(page.locator("#step-output")).to_be_hidden()
    expect(page.locator("#step-next")).to_be_enabled()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "e2e-lab-steps.png"))

    page.locator("#step-go-next").click()
    expect(page.locator("#step-title")).to_have_text("All done")
    expect(page.locator("#step-counter")).to_have_text("Step 2 of 2")
    expect(page.locator("#step-body strong")).to_have_text("it")
    page.locator("#step-prev").click()
    expect(page.locator("#step-verdict")).to_have_text("✓ Passed")

    # Folded, the panel gives its room back to the terminal.
    beside = page.locator("#terminal").bounding_box()["width"]
    page.locator("#steps-toggle").click()
    expect(page.locator("#steps")).to_be_hidden()
    assert page.locator("#terminal").bounding_box()["width"] > beside + 250
    # On a narrow screen the panel goes under the terminal.
    page.locator("#steps-toggle").click()
    page.set_viewport_size({"width": 600, "height": 800})
    terminal, panel = page.locator("#terminal").bounding_box(), page.locator("#steps").bounding_box()
    assert terminal["y"] + terminal["height"] <= panel["y"] + 1
    assert terminal["width"] == panel["width"] == 600
    page.screenshot(path=str(ARTIFACTS / "e2e-lab-steps-narrow.png"))
    assert errors_of_the_page(console_errors) == []

    page.set_viewport_size({"width": 1280, "height": 800})

    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("#close-session").click()
    expect(page.locator("#overlay")).to_be_visible(timeout=15_000)


@pytest.fixture
def workshop(lab):
    from datetime import timedelta

    from django.utils import timezone

    from labs.models import Event

    return Event.objects.create(
        title="Workshop in the browser",
        template=lab,
        starts_at=timezone.now(),
        ends_at=timezone.now() + timedelta(hours=1),
        seats=1,
    )


def test_a_learner_joins_a_workshop_by_its_link_and_gets_its_labs_terminal(workshop, web, browser):  # noqa: F811
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.goto(f"{web.url}/e/{workshop.invite_code}")

    page.locator("#start").click()  # no name yet: nothing is sent
    expect(page.locator("#learner-name")).to_be_focused()
    page.locator("#learner-name").fill("Ada")
    page.locator("#learner-name").press("Enter")

    page.wait_for_url(re.compile(r"/p/[0-9a-f]{32}$"), timeout=15_000)
    expect(page.locator(".xterm-rows")).to_contain_text("[node1]", timeout=60_000)
    expect(page.locator("#step-title")).to_have_text("Make a file")
    # The one seat is taken: the next learner is told so.
    other = browser.new_context().new_page()
    other.goto(f"{web.url}/e/{workshop.invite_code}")
    expect(other.locator("#join-refused")).to_have_attribute("data-reason", "event_full")
    expect(other.locator("#seats-left")).to_have_text("0 of 1 seat left")

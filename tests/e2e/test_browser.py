"""A learner's first minute, in a real headless Chromium: open the site, click
Start, get a prompt, use the instance's Docker daemon, see the output."""

import re

import pytest
import requests
from playwright.sync_api import expect, sync_playwright

from tests.support.stack import ARTIFACTS
from tests.support.tiny_image import load_tiny_image

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


@pytest.fixture
def browser():
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def terminal_text(page) -> str:
    return page.locator(".xterm-rows").inner_text()


def test_it_takes_a_learner_from_start_to_a_nested_container(platform, web, docker_client, browser):
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    console_errors: list[str] = []
    page.on("console", lambda message: message.type == "error" and console_errors.append(message.text))

    page.goto(f"{web.url}/")
    page.locator("#start").click()

    page.wait_for_url(re.compile(r"/p/[0-9a-f]{32}$"), timeout=15_000)
    session_id = page.url.rsplit("/", 1)[1]
    expect(page.locator(".xterm-rows")).to_contain_text("[node1]", timeout=60_000)
    expect(page.locator("#node-ip")).to_have_text(re.compile(r"^\d+\.\d+\.\d+\.\d+$"))

    # Nothing can be pulled here, so the nested image is made on this machine.
    load_tiny_image(docker_client.containers.get(f"playground-{session_id}"))
    page.locator(".xterm").click()
    page.keyboard.type("docker run --rm tiny:latest echo hello-from-$((40+2))\n")
    page.keyboard.type("docker images --format 'img={{.Repository}}'\n")

    expect(page.locator(".xterm-rows")).to_contain_text("hello-from-42", timeout=30_000)
    expect(page.locator(".xterm-rows")).to_contain_text("img=tiny", timeout=30_000)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "e2e-terminal.png"))
    assert console_errors == []

    expect(page.locator("#countdown")).to_have_text(re.compile(r"^1:5\d:\d\d left$"))
    page.locator("#extend-session").click()
    # Two hours more, capped at the four-hour maximum.
    expect(page.locator("#countdown")).to_have_text(re.compile(r"^3:5\d:\d\d left$"), timeout=10_000)

    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("#close-session").click()
    expect(page.locator("#overlay")).to_be_visible(timeout=15_000)
    assert requests.get(f"{web.url}/sessions/{session_id}", timeout=10).json()["status"] == "closed"

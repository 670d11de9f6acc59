"""A learner's first minute, in a real headless Chromium: open the site, click
Start, get a prompt, use the instance's Docker daemon, see the output."""

import re
import time

import pytest
import requests
from playwright.sync_api import expect

from tests.support.browser import errors_of_the_page
from tests.support.stack import ARTIFACTS, WebServer
from tests.support.tiny_image import load_tiny_image

pytestmark = pytest.mark.e2e


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
    assert errors_of_the_page(console_errors) == []

    expect(page.locator("#countdown")).to_have_text(re.compile(r"^1:5\d:\d\d left$"))
    page.locator("#extend-session").click()
    # Two hours more, capped at the four-hour maximum.
    expect(page.locator("#countdown")).to_have_text(re.compile(r"^3:5\d:\d\d left$"), timeout=10_000)

    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("#close-session").click()
    expect(page.locator("#overlay")).to_be_visible(timeout=15_000)
    # The browser's own cookie is what makes it the owner.
    cookies = {cookie["name"]: cookie["value"] for cookie in page.context.cookies()}
    assert requests.get(f"{web.url}/sessions/{session_id}", cookies=cookies, timeout=10).json()["status"] == "closed"
    assert requests.get(f"{web.url}/sessions/{session_id}", timeout=10).status_code == 404  # anyone else


def test_it_shares_a_terminal_read_only_with_another_browser(platform, web, browser):
    owner = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
    owner.goto(f"{web.url}/")
    owner.locator("#start").click()
    owner.wait_for_url(re.compile(r"/p/[0-9a-f]{32}$"), timeout=15_000)
    expect(owner.locator(".xterm-rows")).to_contain_text("[node1]", timeout=60_000)
    session_page = owner.url

    owner.locator("#share-session").click()
    owner.locator("#share-mode").select_option("read-only")
    owner.locator("#share-form button[type=submit]").click()
    expect(owner.locator("#share-made")).to_be_visible(timeout=10_000)
    link = owner.locator("#share-url").input_value()
    assert link.startswith(session_page + "#share=")
    owner.locator("#share-close").click()

    # Someone else, in a browser of their own, without the link: no such session.
    guest = browser.new_context(viewport={"width": 1000, "height": 600}).new_page()
    guest.goto(session_page)
    expect(guest.locator("h1")).to_have_text("No such session")
    # With the link: the live terminal, read-only.
    guest.goto(link)
    guest.wait_for_url(session_page, timeout=15_000)
    expect(guest.locator("#access-badge")).to_have_text("read-only")
    assert guest.locator("#close-session").count() == 0
    owner.locator(".xterm").click()
    owner.keyboard.type("echo typed-by-$((6*7))\n")
    expect(guest.locator(".xterm-rows")).to_contain_text("typed-by-42", timeout=15_000)
    guest.locator(".xterm").click()
    guest.keyboard.type("echo guest-was-here\n")
    owner.wait_for_timeout(1000)
    assert "guest-was-here" not in terminal_text(owner)

    # Revoked, the link's terminal ends at once.
    owner.locator("#share-session").click()
    owner.locator("#share-list .btn-danger").first.click()
    expect(guest.locator("#overlay")).to_be_visible(timeout=5_000)
    expect(guest.locator("#overlay-title")).to_have_text("Access ended")


def test_the_page_reconnects_by_itself_after_a_web_restart_and_replays_the_scrollback(
    platform, worker_env, worker, browser
):
    web = WebServer(worker_env, name="daphne-restarted").start()
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.goto(f"{web.url}/")
    page.locator("#start").click()
    page.wait_for_url(re.compile(r"/p/[0-9a-f]{32}$"), timeout=15_000)
    rows = page.locator(".xterm-rows")
    expect(rows).to_contain_text("[node1]", timeout=60_000)
    page.locator(".xterm").click()
    page.keyboard.type("echo before-restart-$((6*7))\n")
    expect(rows).to_contain_text("before-restart-42", timeout=15_000)
    time.sleep(3)  # the scrollback is copied to the cache every 2 seconds

    web.kill()  # as a crash would; the learner's page stays open
    web.stop()
    expect(page.locator("#banner")).to_be_visible(timeout=10_000)
    restarted = WebServer(worker_env, port=web.port, name="daphne-restarted-again").start()
    try:
        # The page connects again by itself: its terminal is reset, and the
        # new web process replays what the old one saw.
        expect(page.locator("#banner")).to_be_hidden(timeout=30_000)
        expect(rows).to_contain_text("before-restart-42", timeout=15_000)
        assert terminal_text(page).count("before-restart-42") == 1
        page.locator(".xterm").click()
        page.keyboard.type("echo after-restart-$((6*7))\n")
        expect(rows).to_contain_text("after-restart-42", timeout=15_000)
        page.once("dialog", lambda dialog: dialog.accept())
        page.locator("#close-session").click()
        expect(page.locator("#overlay")).to_be_visible(timeout=15_000)
    finally:
        restarted.stop()


def pids_shown(page) -> int:
    return int(page.locator("#stat-pids").inner_text().split(" / ")[0])


def test_the_stats_bar_shows_what_the_instance_uses_and_follows_it(platform, web, browser):
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.goto(f"{web.url}/")
    page.locator("#start").click()
    page.wait_for_url(re.compile(r"/p/[0-9a-f]{32}$"), timeout=15_000)
    expect(page.locator(".xterm-rows")).to_contain_text("[node1]", timeout=60_000)

    memory = page.locator("#stat-memory")
    expect(memory).to_have_text(re.compile(r"^[1-9][\d.]* (KiB|MiB|GiB) / [1-9][\d.]* (MiB|GiB|TiB)$"), timeout=10_000)
    expect(page.locator("#stat-pids")).to_have_text(re.compile(r"^[1-9]\d*( / [1-9]\d*)?$"))
    expect(page.locator("#stat-cpu")).to_have_text(re.compile(r"^\d+\.\d %$"))
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "e2e-stats.png"))
    before = pids_shown(page)

    # The learner starts thirty processes: the bar follows within a few seconds.
    page.locator(".xterm").click()
    page.keyboard.type("for i in $(seq 30); do sleep 300 & done\n")
    deadline = time.monotonic() + 15
    while pids_shown(page) < before + 20:
        assert time.monotonic() < deadline, f"pids stayed at {pids_shown(page)} (from {before})"
        page.wait_for_timeout(250)

    # Folded, the bar hides and the terminal takes its place; unfolded, it goes on.
    terminal_height = page.locator("#terminal").bounding_box()["height"]
    page.locator("#stats-toggle").click()
    expect(page.locator("#stats")).to_be_hidden()
    assert page.locator("#terminal").bounding_box()["height"] > terminal_height
    page.locator("#stats-toggle").click()
    measured = page.locator("#stats").get_attribute("title")
    expect(page.locator("#stats")).not_to_have_attribute("title", measured, timeout=5_000)


def test_a_server_started_in_the_terminal_opens_from_its_badge(platform, web, browser):
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.goto(f"{web.url}/")
    page.locator("#start").click()
    page.wait_for_url(re.compile(r"/p/[0-9a-f]{32}$"), timeout=15_000)
    session_id = page.url.rsplit("/", 1)[1]
    expect(page.locator(".xterm-rows")).to_contain_text("[node1]", timeout=60_000)
    expect(page.locator(".port-badge")).to_have_count(0)

    page.locator(".xterm").click()
    page.keyboard.type("mkdir -p site && echo 'hello from my site' > site/index.html\n")
    page.keyboard.type("setsid busybox httpd -p 8000 -h site\n")
    badge = page.locator(".port-badge", has_text="8000")
    expect(badge).to_be_visible(timeout=10_000)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "e2e-ports.png"))

    # The badge opens the port in a new tab, at its own host name (the tests'
    # platform has PLAYGROUND_PORTS_DOMAIN=ports.localhost, which Chromium
    # resolves to this machine).
    with page.expect_popup() as opened:
        badge.click()
    site = opened.value
    expect(site.locator("body")).to_contain_text("hello from my site", timeout=15_000)
    assert site.url.startswith(f"http://8000-{session_id}.ports.localhost:{web.port}/")
    assert "playground-ticket" not in site.url

    # Another browser holds no access to it.
    stranger = browser.new_context().new_page()
    answer = stranger.goto(f"http://8000-{session_id}.ports.localhost:{web.port}/")
    assert answer.status == 404

    # The "Open port" box opens one the page has not seen (here: it is not
    # there at all, and the platform says so).
    page.locator("#open-port-number").fill("8001")
    with page.expect_popup() as opened:
        page.locator("#open-port button").click()
    expect(opened.value.locator("body")).to_contain_text("port_not_listening", timeout=15_000)

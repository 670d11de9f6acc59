"""Files dropped on the terminal in a real headless Chromium land in the learner's home."""

import re

import pytest
from playwright.sync_api import expect

from tests.support.browser import errors_of_the_page

pytestmark = pytest.mark.e2e

DROP = """([name, text]) => {
    const transfer = new DataTransfer();
    transfer.items.add(new File([text], name, {type: "text/plain"}));
    return transfer;
}"""


def test_a_file_dropped_on_the_terminal_can_be_read_there(platform, web, browser):  # noqa: F811
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    console_errors: list[str] = []
    page.on("console", lambda message: message.type == "error" and console_errors.append(message.text))
    page.goto(f"{web.url}/")
    page.locator("#start").click()
    page.wait_for_url(re.compile(r"/p/[0-9a-f]{32}$"), timeout=15_000)
    rows = page.locator(".xterm-rows")
    expect(rows).to_contain_text("[node1]", timeout=60_000)

    transfer = page.evaluate_handle(DROP, ["dropped.txt", "dropped-content-42\n"])
    page.dispatch_event(".xterm-screen", "dragover", {"dataTransfer": transfer})
    expect(page.locator("#drop-zone")).to_be_visible()
    page.dispatch_event(".xterm-screen", "drop", {"dataTransfer": transfer})

    expect(page.locator("#drop-zone")).to_be_hidden()
    expect(page.locator("#transfer")).to_contain_text("Uploaded /home/learner/dropped.txt", timeout=15_000)
    page.locator(".xterm").click()
    page.keyboard.type("cat ~/dropped.txt | tr a-z A-Z\n")
    expect(rows).to_contain_text("DROPPED-CONTENT-42", timeout=15_000)
    expect(page.locator("#transfer")).to_be_hidden(timeout=10_000)  # the outcome shows briefly
    assert errors_of_the_page(console_errors) == []

    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("#close-session").click()
    expect(page.locator("#overlay")).to_be_visible(timeout=15_000)

import pytest
from playwright.sync_api import sync_playwright

from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, BrowserJournal

JOURNAL = pytest.StashKey[BrowserJournal]()


@pytest.fixture
def browser(request):
    """A headless Chromium whose contexts are journalled: a failed test shows what its pages asked for."""
    journal = request.node.stash[JOURNAL] = BrowserJournal()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        new_context = launched.new_context

        def journalled_context(**options):
            context = new_context(**options)
            journal.watch(context)
            return context

        def journalled_page(**options):
            # A page in a context of its own, as Browser.new_page makes, watched too.
            return journalled_context(**options).new_page()

        launched.new_context = journalled_context
        launched.new_page = journalled_page
        yield launched
        launched.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    journal = item.stash.get(JOURNAL, None)
    if report.failed and call.when == "call" and journal is not None:
        report.sections.append(("the browser's journal", journal.report()))
    return report

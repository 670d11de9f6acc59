// A guided lab's steps beside the terminal (GET {session}/steps).
//
// One step shows at a time: its text (HTML the server rendered from the
// template's Markdown, with no HTML of the author's own), and the way to the
// steps before it and to the next one once it is unlocked. Whoever may type
// in the terminal also gets Check (POST .../check: passed, or what the check
// printed), Solve (POST .../solve, then its check), and a Run button on each
// runnable block, which types the block's command into the terminal.
(() => {
  "use strict";

  const session = window.playgroundSession;
  const $ = (id) => document.getElementById(id);
  const ui = {
    area: $("terminal-area"),
    toggle: $("steps-toggle"),
    panel: $("steps"),
    prev: $("step-prev"),
    next: $("step-next"),
    counter: $("step-counter"),
    title: $("step-title"),
    body: $("step-body"),
    check: $("step-check"), // the writers' controls: absent for a read-only share
    solve: $("step-solve"),
    goNext: $("step-go-next"),
    result: $("step-result"),
    verdict: $("step-verdict"),
    output: $("step-output"),
  };
  const writer = session.access !== "read-only";
  const state = { steps: [], index: 0, busy: false };

  function current() {
    return state.steps[state.index];
  }

  // Where the learner is: the last step unlocked.
  function lastUnlocked() {
    let index = 0;
    state.steps.forEach((step, i) => {
      if (step.unlocked) index = i;
    });
    return index;
  }

  function nextUnlocked() {
    const next = state.steps[state.index + 1];
    return Boolean(next && next.unlocked);
  }

  function showResult(verdict, tone, output) {
    ui.result.hidden = false;
    ui.result.dataset.tone = tone;
    ui.verdict.textContent = verdict;
    ui.output.hidden = !output;
    ui.output.textContent = output || "";
  }

  function showLastCheck(step) {
    const last = step.last_check;
    if (step.passed && (!last || last.passed)) showResult("✓ Passed", "ok");
    else if (last && !last.passed) {
      showResult(step.passed ? "✓ Passed before; the latest check failed:" : "✗ Not yet:", "error", last.output);
    } else ui.result.hidden = true;
  }

  function render() {
    const step = current();
    if (!step) return;
    ui.counter.textContent = `Step ${state.index + 1} of ${state.steps.length}`;
    ui.title.textContent = step.title;
    ui.body.innerHTML = step.html; // rendered by the server, raw HTML disabled (labs/markdown.py)
    ui.body.scrollTop = 0;
    if (!writer) ui.body.querySelectorAll(".step-run-button").forEach((button) => button.remove());
    ui.prev.disabled = state.index === 0;
    ui.next.disabled = !nextUnlocked();
    if (writer) {
      ui.check.hidden = !step.has_check;
      ui.solve.hidden = !step.has_solve;
      ui.goNext.hidden = !nextUnlocked();
      for (const button of [ui.check, ui.solve]) button.disabled = state.busy;
    }
    showLastCheck(step);
  }

  function go(index) {
    if (index < 0 || index >= state.steps.length || !state.steps[index].unlocked) return;
    state.index = index;
    render();
  }

  async function load({ follow } = { follow: false }) {
    try {
      state.steps = await session.api("GET", "/steps");
    } catch (error) {
      ui.counter.textContent = "";
      showResult(`The steps could not be loaded: ${error.message}`, "error");
      return;
    }
    if (!state.steps.length) {
      ui.counter.textContent = "This lab has no steps.";
      return;
    }
    if (follow || state.index >= state.steps.length) state.index = lastUnlocked();
    render();
  }

  async function run(what, work) {
    if (state.busy) return;
    state.busy = true;
    render();
    showResult(what, "busy");
    try {
      await work(current());
    } catch (error) {
      showResult(error.message, "error");
    } finally {
      state.busy = false;
      for (const button of [ui.check, ui.solve]) button.disabled = false;
    }
  }

  async function checkStep(step) {
    const result = await session.api("POST", `/steps/${step.position}/check`);
    await load(); // its state (passed, the latest check, the next step unlocked) as the server keeps it
    if (result.passed) showResult(result.next_unlocked ? "✓ Passed: the next step is open." : "✓ Passed", "ok");
    else showResult(result.timed_out ? "✗ Not yet (the check ran out of time):" : "✗ Not yet:", "error", result.output);
  }

  async function solveStep(step) {
    const result = await session.api("POST", `/steps/${step.position}/solve`);
    if (result.exit_code !== 0 || !step.has_check) {
      const how = result.timed_out ? "ran out of time" : `ended with exit code ${result.exit_code}`;
      showResult(`The solution ${how}.`, result.exit_code === 0 ? "ok" : "error", result.output);
      return;
    }
    showResult("The solution ran; checking…", "busy");
    await checkStep(step);
  }

  function onRunClick(event) {
    const button = event.target.closest(".step-run-button");
    if (!button || !writer) return;
    if (!session.typeText(`${button.dataset.run}\n`)) {
      showResult("The terminal is not connected; try again in a moment.", "error");
    }
  }

  function setShown(shown) {
    ui.area.classList.toggle("with-steps", shown);
    ui.panel.hidden = !shown;
    ui.toggle.setAttribute("aria-pressed", String(shown));
  }

  ui.prev.addEventListener("click", () => go(state.index - 1));
  ui.next.addEventListener("click", () => go(state.index + 1));
  ui.body.addEventListener("click", onRunClick);
  ui.toggle.addEventListener("click", () => setShown(ui.panel.hidden));
  if (writer) {
    ui.goNext.addEventListener("click", () => go(state.index + 1));
    ui.check.addEventListener("click", () => run("Checking…", checkStep));
    ui.solve.addEventListener("click", () => {
      if (window.confirm("Run this step's solution? It does the step for you.")) {
        run("Running the solution…", solveStep);
      }
    });
  }
  load({ follow: true });
})();

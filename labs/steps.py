"""A session's steps: where the learner is in its lab, and a step's check and solve run in the instance.

Step 1 is unlocked. Each next step unlocks once the one before it is
unlocked and done: it has no check, or its check passed in this session
(once passed, a step stays passed). Checks and solutions run as the learner,
in its home, through the backend's exec, within the same per-process and
per-session limits as an API client's commands; the database connection is
handed back while they run.
"""

from dataclasses import dataclass

from django.db import IntegrityError
from django.db.models import Exists, OuterRef, Subquery
from django.utils import timezone

from labs.models import CHECK_TIMEOUT, CheckRun, Step
from labs.setup import ScriptResult, run_script
from playground.db import release_connection
from sessions_app.backends import backend_for
from sessions_app.errors import (
    InstanceNotRunning,
    SessionHasNoSteps,
    SessionNotFound,
    StepHasNoCheck,
    StepHasNoSolve,
    StepLocked,
    StepNotFound,
)
from sessions_app.models import Session
from sessions_app.services.commands import running_instance, take_place


@dataclass(frozen=True)
class StepState:
    step: Step
    unlocked: bool
    passed: bool  # its check passed in this session at least once
    last_check: CheckRun | None  # the latest run of its check in this session


@dataclass(frozen=True)
class CheckResult:
    passed: bool
    output: str
    timed_out: bool
    next_unlocked: bool  # the step after this one is unlocked now (False when there is none)


@dataclass(frozen=True)
class SolveResult:
    exit_code: int
    output: str
    timed_out: bool


def step_done(step: Step, *, passed: bool) -> bool:
    """Whether a step lets the next one open: it has no check, or its check passed in the session.

    A session is at its first step not done (labs.events shows it to the trainer).
    """
    return passed or not step.check_script.strip()


def session_steps(*, session: Session) -> list[StepState]:
    """The steps of the session's template, in order, with where this session stands on each.

    Raises SessionHasNoSteps for a session of no template.
    """
    if session.template_id is None:
        raise SessionHasNoSteps(log_message=f"session {session.pk} is of no template")
    runs = CheckRun.objects.filter(session=session, step=OuterRef("pk"))
    steps = Step.objects.filter(template_id=session.template_id).annotate(
        last_run_id=Subquery(runs.order_by("-ran_at", "-pk").values("pk")[:1]),
        ever_passed=Exists(runs.filter(passed=True)),
    )
    steps = list(steps.order_by("position"))
    last_runs = CheckRun.objects.in_bulk([step.last_run_id for step in steps if step.last_run_id])
    states, unlocked = [], True
    for step in steps:
        states.append(StepState(step, unlocked, step.ever_passed, last_runs.get(step.last_run_id)))
        unlocked = unlocked and step_done(step, passed=step.ever_passed)
    return states


def step_check(*, session: Session, position: int) -> CheckResult:
    """Run the step's check in the session's running instance, and record how it went (a CheckRun).

    Exit 0 within CHECK_TIMEOUT passes. Raises SessionHasNoSteps, StepNotFound,
    StepLocked, StepHasNoCheck, or what reaching the instance raises
    (SessionClosed, SessionHasNoInstance, InstanceNotRunning, TooManyCommands,
    ServiceUnavailable); nothing is recorded then.
    """
    step = _unlocked_step(session, position)
    if not step.check_script.strip():
        raise StepHasNoCheck(log_message=f"session {session.pk}: step {position} has no check")
    result = _run(session, step.check_script, "check")
    try:
        CheckRun.objects.create(session=session, step=step, passed=result.passed, output=result.output)
    except IntegrityError:  # the session (or its template's step) was deleted meanwhile
        raise SessionNotFound(log_message=f"session {session.pk} or its step went away during a check") from None
    states = session_steps(session=session)
    after = next((state for state in states if state.step.position > step.position), None)
    return CheckResult(result.passed, result.output, result.timed_out, after is not None and after.unlocked)


def step_solve(*, session: Session, position: int) -> SolveResult:
    """Run the step's solution in the session's running instance (nothing is recorded: its check says
    whether it worked). Raises as step_check does, and StepHasNoSolve."""
    step = _unlocked_step(session, position)
    if not step.solve_script.strip():
        raise StepHasNoSolve(log_message=f"session {session.pk}: step {position} has no solution")
    result = _run(session, step.solve_script, "solve")
    return SolveResult(result.exit_code, result.output, result.timed_out)


def _unlocked_step(session: Session, position: int) -> Step:
    state = next((state for state in session_steps(session=session) if state.step.position == position), None)
    if state is None:
        raise StepNotFound(log_message=f"session {session.pk} has no step {position}")
    if not state.unlocked:
        raise StepLocked(log_message=f"session {session.pk}: step {position} is locked")
    return state.step


def _run(session: Session, script: str, what: str) -> ScriptResult:
    instance = running_instance(session, what)
    # Never past the session's end, as any command run in it.
    timeout = max(1, min(CHECK_TIMEOUT, int((session.expires_at - timezone.now()).total_seconds())))
    release = take_place(session.pk)
    release_connection()  # the script may run for CHECK_TIMEOUT seconds without the database
    try:
        result = run_script(backend_for(instance), instance, script, timeout=timeout)
    finally:
        release()
    if result.exit_code is None and not result.timed_out:  # the instance stopped answering
        raise InstanceNotRunning(log_message=f"{what} in session {session.pk}: {result.output}")
    return result

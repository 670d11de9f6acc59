"""What learners are told about their session: one table for the services,
the terminal's WebSocket and the session page (which gets it as JSON).
"""

from dataclasses import asdict, dataclass

from sessions_app.models import Instance


@dataclass(frozen=True)
class Ending:
    """Why a session's terminal is over: a title for the page and a sentence."""

    title: str
    message: str


ENDINGS: dict[str, Ending] = {
    # The reasons a session ends (services.session_close).
    "closed": Ending("Session closed", "The session was closed; its Docker host and everything on it were removed."),
    "expired": Ending(
        "Session expired", "The session reached its time limit; its Docker host and everything on it were removed."
    ),
    "idle": Ending(
        "Session closed", "The session was closed after a long time without input; its Docker host was removed."
    ),
    # What else ends a terminal for good.
    "ended": Ending("Session ended", "This session is closed or has expired."),
    "access_ended": Ending("Access ended", "The share link you used was revoked or has expired."),
    "too_many_terminals": Ending(
        "Too many terminals", "You have too many terminals open; close some, then reload this page."
    ),
    "failed": Ending("The Docker host could not start", "Something went wrong while starting it."),
    "not_found": Ending("No such session", "There is no session at this address."),
}

INSTANCE_STATUS_MESSAGES: dict[str, str] = {
    Instance.Status.PENDING: "Waiting for a Docker host…",
    Instance.Status.PROVISIONING: "Starting your Docker host…",
    Instance.Status.SETTING_UP: "Setting up the lab…",
    Instance.Status.RUNNING: "Your Docker host is ready.",
    Instance.Status.TERMINATING: "The instance is being removed.",
    Instance.Status.TERMINATED: "The instance was removed.",
    "reconnecting": "Reconnecting to the instance…",
}


def endings_for_page() -> dict[str, dict[str, str]]:
    """The table as the session page reads it (json_script)."""
    return {key: asdict(ending) for key, ending in ENDINGS.items()}

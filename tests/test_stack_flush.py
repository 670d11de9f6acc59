"""The integration tests' closing flush is run again when PostgreSQL makes it a deadlock's victim."""

from django.core.management.base import CommandError
from django.db.utils import OperationalError

from tests.support.stack import deadlocked


def flush_error(database_error: Exception) -> CommandError:
    try:
        try:
            raise database_error
        except Exception as exc:
            raise CommandError("Database test_playground couldn't be flushed.") from exc
    except CommandError as raised:
        return raised


def test_a_flush_that_lost_a_deadlock_is_known_as_such_through_the_flush_commands_error():
    assert deadlocked(flush_error(OperationalError("deadlock detected\nDETAIL: Process 1 waits for ...")))
    assert deadlocked(OperationalError("deadlock detected"))


def test_any_other_failure_of_the_flush_is_not():
    assert not deadlocked(flush_error(OperationalError("the database system is shutting down")))
    assert not deadlocked(CommandError("deadlock detected, in words only"))
    assert not deadlocked(None)

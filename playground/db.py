"""Database helpers shared by the apps."""

from django.db import connection


def release_connection() -> None:
    """Hand this thread's database connection back before long work without the database.

    Provisioning jobs mostly wait on the Docker engine, and a command run for
    an API client on the instance; with their connection back in the pool
    meanwhile (PostgreSQL), a few connections serve them all, and the next
    query takes one again. Inside a transaction the connection stays.
    """
    if not connection.in_atomic_block:
        connection.close()

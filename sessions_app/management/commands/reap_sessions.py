from django.core.management.base import BaseCommand

from sessions_app.services import sessions_reap_expired


class Command(BaseCommand):
    help = "Close every session past its expiry or idle timeout now."

    def handle(self, *args, **options) -> None:
        closed = sessions_reap_expired()
        self.stdout.write(f"closed {len(closed)} session(s)" + (f": {', '.join(closed)}" if closed else ""))

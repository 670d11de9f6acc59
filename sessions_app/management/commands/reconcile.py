from django.core.management.base import BaseCommand

from sessions_app.services import instances_reconcile


class Command(BaseCommand):
    help = "Compare Docker with the database now: remove leftovers, revive lost instances, retry stuck ones."

    def handle(self, *args, **options) -> None:
        report = instances_reconcile()
        for name, sessions in vars(report).items():
            self.stdout.write(
                f"{name.replace('_', ' ')}: {len(sessions)}" + (f" ({', '.join(sessions)})" if sessions else "")
            )

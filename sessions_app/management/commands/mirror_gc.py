"""Keep the registry mirror under its size cap, then free the space."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from sessions_app.mirror import MirrorError, mirror_collect_garbage, mirror_images, mirror_trim, stored_size


class Command(BaseCommand):
    help = (
        "Delete images from the registry mirror, oldest first, until it holds at most "
        "PLAYGROUND_REGISTRY_CAP_MB, then run the registry's garbage-collect to free their space."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--cap-mb", type=int, help="The cap in MiB (default: PLAYGROUND_REGISTRY_CAP_MB; 0: no cap)."
        )

    def handle(self, *args, cap_mb: int | None = None, **options) -> None:
        cap_mb = settings.PLAYGROUND_REGISTRY_CAP_MB if cap_mb is None else cap_mb
        if cap_mb < 0:
            raise CommandError("--cap-mb must be 0 (no cap) or more")
        try:
            deleted = mirror_trim(cap_bytes=cap_mb * 2**20, log=self.stdout.write) if cap_mb else []
            mirror_collect_garbage(log=self.stdout.write)
            held = stored_size(mirror_images())
        except MirrorError as exc:
            raise CommandError(exc.log_message) from exc
        cap = f"{cap_mb} MiB" if cap_mb else "no cap"
        self.stdout.write(
            self.style.SUCCESS(f"Deleted {len(deleted)} image(s); the mirror holds {held / 2**20:.1f} MiB ({cap})")
        )

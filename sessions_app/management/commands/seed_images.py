"""Put images into the registry mirror, from the host's Docker engine or from a tar."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from sessions_app.mirror import MirrorError, mirror_seed, mirror_seed_tar


class Command(BaseCommand):
    help = (
        "Push images of the host's Docker engine (or of a `docker save` tar) into the registry mirror, "
        "under their Docker Hub names, so that `docker pull NAME` in an instance is answered by the mirror."
    )

    def add_arguments(self, parser):
        parser.add_argument("images", nargs="*", metavar="IMAGE", help="An image of the host's engine: busybox:1.36")
        parser.add_argument(
            "--from-tar", type=Path, metavar="FILE", help="A tar of `docker save`: its tagged images go in."
        )

    def handle(self, *args, images: list[str], from_tar: Path | None = None, **options) -> None:
        if bool(images) == bool(from_tar):
            raise CommandError("name the images to seed, or give --from-tar FILE (not both)")
        try:
            if from_tar:
                seeded = mirror_seed_tar(path=from_tar, log=self.stdout.write)
            else:
                seeded = mirror_seed(references=images, log=self.stdout.write)
        except MirrorError as exc:
            raise CommandError(exc.log_message) from exc
        self.stdout.write(self.style.SUCCESS(f"The mirror holds {', '.join(seeded)}"))

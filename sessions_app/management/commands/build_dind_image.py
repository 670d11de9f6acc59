"""Build the DIND image that playground instances run, unless it is up to date."""

import docker
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from sessions_app.backends.docker import docker_client
from sessions_app.dind_image import DEFAULT_BASE_IMAGE, DEFAULT_TAG, DindImageError, build_dind_image


class Command(BaseCommand):
    help = (
        "Build the DIND image (settings.PLAYGROUND_DIND_IMAGE) from docker/, on PLAYGROUND_DIND_BASE_IMAGE "
        "when the engine has it or can pull it, else on an offline Debian base. A no-op when up to date."
    )

    def add_arguments(self, parser):
        parser.add_argument("--force", action="store_true", help="Build even if the image is up to date.")
        parser.add_argument("--base", help="The base image to prefer (default: settings.PLAYGROUND_DIND_BASE_IMAGE).")

    def handle(self, *args, force: bool = False, base: str | None = None, **options):
        tag = getattr(settings, "PLAYGROUND_DIND_IMAGE", DEFAULT_TAG)
        base_image = base or getattr(settings, "PLAYGROUND_DIND_BASE_IMAGE", DEFAULT_BASE_IMAGE)
        try:
            client = docker_client(timeout=600)
            image_id = build_dind_image(
                client=client, tag=tag, base_image=base_image, force=force, log=self.stdout.write
            )
        except (DindImageError, docker.errors.DockerException) as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(self.style.SUCCESS(f"{tag} is {image_id}"))

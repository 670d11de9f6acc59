"""Make or update templates from their folders or .zip files (labs/importer.py describes the format)."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from labs import importer


class Command(BaseCommand):
    help = (
        "Import templates from folders or .zip files holding template.yaml, Markdown steps and scripts; "
        "a template imported again is updated. Each is checked whole before anything is written."
    )

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="*", type=Path, metavar="PATH", help="A template's folder or .zip")
        parser.add_argument("--examples", action="store_true", help="Also import the examples the platform ships")

    def handle(self, *args, paths: list[Path], examples: bool = False, **options) -> None:
        sources = [*paths, *(importer.examples() if examples else [])]
        if not sources:
            raise CommandError("name a template's folder or .zip, or give --examples")
        failed = 0
        for source in sources:
            try:
                template = importer.template_import(source)
            except importer.TemplateFormatError as exc:
                failed += 1
                self.stderr.write(f"{source}: not imported, {exc.message[0].lower()}{exc.message[1:]}")
                continue
            steps = template.steps.count()
            self.stdout.write(f"{source}: imported {template.slug} ({steps} step{'s' if steps != 1 else ''})")
        if failed:
            raise CommandError(f"{failed} of {len(sources)} template(s) not imported")

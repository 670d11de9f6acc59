"""Templates as files: a folder, or a .zip of one, holding template.yaml, Markdown steps and scripts.

    slug: first-container              # required: a-z, 0-9 and dashes, at most 46 characters
    title: Your first container        # required
    description: Run, list and remove a container.
    playground:                        # a mapping: a playground of the template's own, "lab-<slug>",
      memory_mb: 1024                  #   made or updated from these keys (the others take their defaults):
      duration: 1h                     #   image, memory_mb, cpus, pids, storage, duration, max_duration,
                                       #   egress (internet|mirror-only|none), preload (a list of images);
                                       # (image: one an admin runs as instances already);
                                       # or a string: the id of an existing playground (default: "default")
    prepared: 0                        # sessions kept started and set up ahead
    setup: setup.sh                    # a bash script run as the learner before the session is handed out
    setup_timeout: 60                  # seconds, at most labs.models.SETUP_TIMEOUT_MAX
    files: files                       # a folder whose content goes into the learner's home
                                       #   (default: files/ when there is one)
    steps:                             # at least one
      - title: Run a container
        text: steps/1-run.md           # Markdown; a code block whose info string holds `run` runs on click
        check: steps/1-check.sh        # exit 0: the step is done
        solve: steps/1-solve.sh        # does the step for the learner

template.yaml is YAML without aliases (`*name`), nested at most 20 deep, at most 64 KiB.
Durations are a number of seconds or such as 90s, 45m, 1h30m; sizes (storage) such as 512M or 10G.
Every path is relative to the template's folder and stays inside it (no `..`, no absolute path, no
symbolic link leading out). A .zip holds the folder's content, or one folder holding it.

`template_import` checks all of it before it writes anything, and says every problem it found, each
with the file it is in (TemplateFormatError). Importing a slug again updates that template: its
playground, files and scripts, and its steps by position (a session's passed checks of a step that
is still there are kept; steps past the new last one go).
"""

import base64
import os
import posixpath
import re
import stat
import zipfile
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import BinaryIO

import yaml
from django.conf import settings
from django.db import transaction

from labs.models import SETUP_TIMEOUT_MAX, Step, Template
from sessions_app.backends.disks import MIN_SIZE, parse_size
from sessions_app.errors import InvalidRequest
from sessions_app.models import Playground, is_plain_name

TEMPLATE_FILE = "template.yaml"
DEFAULT_FILES_FOLDER = "files"
EXAMPLES = Path(__file__).resolve().parent / "examples"

MAX_TOTAL_BYTES = 8 << 20  # all that a template's files, steps and scripts hold together
MAX_YAML_BYTES = 64 << 10  # template.yaml: parsing YAML is slow (about 10 s a megabyte)
MAX_YAML_DEPTH = 20  # lists and mappings within each other in template.yaml (a step's keys are at depth 3)
MAX_ZIP_BYTES = 16 << 20  # a .zip of a template, as uploaded
MAX_FILES = 1000  # files in a template's folder (or members of its .zip)
MAX_STEPS = 100
MAX_PREPARED = 20
MAX_DURATION = timedelta(days=7)
SLUG_MAX = 46  # "lab-" + slug is a playground id (at most 50 characters)
SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
DURATION = re.compile(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
STORAGE_MAX_LENGTH = Playground._meta.get_field("storage_size").max_length
IMAGE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:@-]{0,199}")

TOP_KEYS = {"slug", "title", "description", "playground", "prepared", "setup", "setup_timeout", "files", "steps"}
STEP_KEYS = {"title", "text", "check", "solve"}
PLAYGROUND_KEYS = {
    "image",
    "memory_mb",
    "cpus",
    "pids",
    "storage",
    "duration",
    "max_duration",
    "egress",
    "preload",
}


@dataclass(frozen=True)
class Problem:
    file: str  # relative to the template's folder
    text: str

    def __str__(self) -> str:
        return f"{self.file}: {self.text}"


class TemplateFormatError(InvalidRequest):
    """A template's files are not valid; `problems` lists each problem with the file it is in."""

    reason = "template_format"
    message = "The template is not valid."

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("The template is not valid:\n" + "\n".join(f"- {problem}" for problem in problems))


class _Loader(yaml.SafeLoader):
    """safe_load's YAML without aliases (`*name`), nested at most MAX_YAML_DEPTH deep.

    A few lines of lists of aliases of lists make a value of billions of
    items, which the first message that shows it would spell out whole; and
    PyYAML reads nested values by recursion, which a few thousand brackets
    exhaust (a RecursionError, not a YAMLError).
    """

    depth = 0

    def compose_node(self, parent, index):
        mark = self.peek_event().start_mark
        if self.check_event(yaml.AliasEvent):
            raise yaml.composer.ComposerError(None, None, "aliases (*name) are not allowed in a template", mark)
        if self.depth >= MAX_YAML_DEPTH:
            raise yaml.composer.ComposerError(None, None, f"values nest more than {MAX_YAML_DEPTH} deep", mark)
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


class _Refused(Exception):
    """One file of a source cannot be read; its text says why."""


# --- Where the files come from -------------------------------------------------


def clean_path(value: str) -> str:
    """A path of the template's folder, normalised; _Refused when it is absolute or leads out."""
    if "\x00" in value or "\\" in value:
        raise _Refused(f"{value!r} is not a valid path")
    if value.startswith("/") or re.match(r"[A-Za-z]:", value):
        raise _Refused(f"{value} is an absolute path; paths are relative to the template's folder")
    parts = [part for part in value.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise _Refused(f"{value} leads out of the template's folder (..)")
    if not parts:
        raise _Refused(f"{value!r} names no file")
    return "/".join(parts)


def _mode(st_mode: int) -> int:
    """Executable for everyone or for no one: a learner's file is theirs whoever made the template."""
    return 0o755 if st_mode & 0o111 else 0o644


class _Source:
    """A template's folder, read within MAX_TOTAL_BYTES in all."""

    def __init__(self) -> None:
        self.read_bytes = 0

    def _count(self, size: int) -> None:
        self.read_bytes += size
        if self.read_bytes > MAX_TOTAL_BYTES:
            raise _Refused(f"the template holds more than {MAX_TOTAL_BYTES >> 20} MiB")

    def is_file(self, path: str) -> bool:
        raise NotImplementedError

    def is_dir(self, path: str) -> bool:
        raise NotImplementedError

    def read(self, path: str) -> bytes:
        raise NotImplementedError

    def files_under(self, folder: str) -> list[tuple[str, int]]:
        """The files under a folder: (path relative to the folder, mode)."""
        raise NotImplementedError

    def mode(self, path: str) -> int:
        raise NotImplementedError

    def close(self) -> None:
        pass


class _FolderSource(_Source):
    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = root.resolve()

    def _inside(self, path: str) -> Path:
        """The file's real path; _Refused when a symbolic link leads out of the folder."""
        try:
            real = (self.root / path).resolve()
        except (OSError, RuntimeError) as exc:  # a loop of symbolic links
            raise _Refused(f"{path} cannot be read: {exc}") from None
        if real != self.root and not real.is_relative_to(self.root):
            raise _Refused(f"{path} is a symbolic link that leads out of the template's folder")
        return real

    def is_file(self, path: str) -> bool:
        return self._inside(path).is_file()

    def is_dir(self, path: str) -> bool:
        return self._inside(path).is_dir()

    def read(self, path: str) -> bytes:
        real = self._inside(path)
        try:
            self._count(real.stat().st_size)
            return real.read_bytes()
        except OSError as exc:
            raise _Refused(f"{path} cannot be read: {exc.strerror or exc}") from None

    def mode(self, path: str) -> int:
        return _mode(self._inside(path).stat().st_mode)

    def files_under(self, folder: str) -> list[tuple[str, int]]:
        top = self._inside(folder)
        found, seen = [], set()
        for directory, dirnames, filenames in os.walk(top, followlinks=True):
            real = Path(directory).resolve()
            relative = Path(directory).relative_to(top).as_posix()
            self._inside(posixpath.normpath(f"{folder}/{relative}"))
            if real in seen:  # a symbolic link back to a folder already read
                dirnames.clear()
                continue
            seen.add(real)
            for name in sorted(filenames):
                path = posixpath.normpath(f"{relative}/{name}")
                full = f"{folder}/{path}"
                if not self._inside(full).is_file():
                    raise _Refused(f"{full} is not a regular file")
                found.append((path, self.mode(full)))
                if len(found) > MAX_FILES:
                    raise _Refused(f"{folder} holds more than {MAX_FILES} files")
        return found


class _ZipSource(_Source):
    """A .zip of the folder: every member is checked before any is read."""

    def __init__(self, archive: zipfile.ZipFile) -> None:
        super().__init__()
        self.archive = archive
        members = archive.infolist()
        if len(members) > MAX_FILES:
            raise _Refused(f"the .zip holds more than {MAX_FILES} members")
        problems, self.members = [], {}
        for info in members:
            try:
                name = clean_path(info.filename)
            except _Refused as exc:
                problems.append(str(exc))
                continue
            if stat.S_ISLNK(info.external_attr >> 16):
                problems.append(f"{info.filename} is a symbolic link; a .zip may hold files and folders only")
            elif not info.is_dir():
                self.members[name] = info
        if sum(info.file_size for info in self.members.values()) > MAX_TOTAL_BYTES:
            problems.append(f"the template holds more than {MAX_TOTAL_BYTES >> 20} MiB")
        if problems:
            raise _Refused("; ".join(problems))
        self.prefix = self._root()

    def _root(self) -> str:
        """The folder of template.yaml: the .zip's top, or the one folder it holds."""
        if TEMPLATE_FILE in self.members:
            return ""
        tops = {name.split("/", 1)[0] for name in self.members}
        if len(tops) == 1 and f"{next(iter(tops))}/{TEMPLATE_FILE}" in self.members:
            return f"{next(iter(tops))}/"
        return ""

    def is_file(self, path: str) -> bool:
        return self.prefix + path in self.members

    def is_dir(self, path: str) -> bool:
        return any(name.startswith(f"{self.prefix}{path}/") for name in self.members)

    def read(self, path: str) -> bytes:
        info = self.members[self.prefix + path]
        self._count(info.file_size)
        try:
            return self.archive.read(info)  # never more than file_size, and its CRC checked
        except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as exc:
            raise _Refused(f"{path} cannot be read from the .zip: {exc}") from None

    def mode(self, path: str) -> int:
        return _mode(self.members[self.prefix + path].external_attr >> 16)

    def files_under(self, folder: str) -> list[tuple[str, int]]:
        start = f"{self.prefix}{folder}/"
        return [
            (name[len(start) :], self.mode(name[len(self.prefix) :]))
            for name in sorted(self.members)
            if name.startswith(start)
        ]

    def close(self) -> None:
        self.archive.close()


def _open(source: str | Path | BinaryIO) -> _Source:
    if not isinstance(source, str | Path):
        return _open_zip(source, "the upload")
    path = Path(source)
    if path.is_dir():
        return _FolderSource(path)
    if path.is_file():
        return _open_zip(path, path.name)
    raise TemplateFormatError([Problem(str(path), "there is no such folder or .zip file")])


def _open_zip(source: Path | BinaryIO, name: str) -> _ZipSource:
    size = source.stat().st_size if isinstance(source, Path) else source.seek(0, os.SEEK_END)
    if size > MAX_ZIP_BYTES:
        raise TemplateFormatError([Problem(name, f"is larger than {MAX_ZIP_BYTES >> 20} MiB")])
    if not isinstance(source, Path):
        source.seek(0)
    try:
        archive = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise TemplateFormatError([Problem(name, f"is neither a folder nor a .zip file ({exc})")]) from None
    try:
        return _ZipSource(archive)
    except _Refused as exc:
        archive.close()
        raise TemplateFormatError([Problem(name, str(exc))]) from None


# --- What template.yaml says ---------------------------------------------------


@dataclass
class _Spec:
    """A template checked through, ready to be written."""

    slug: str = ""
    title: str = ""
    description: str = ""
    playground_id: str = "default"
    playground_fields: dict | None = None  # a playground of the template's own
    prepared: int = 0
    setup: str = ""
    setup_timeout: int = 60
    files: list[dict] = field(default_factory=list)
    steps: list[dict] = field(default_factory=list)


class _Reader:
    """Reads a source into a _Spec, noting every problem instead of stopping at the first."""

    def __init__(self, source: _Source) -> None:
        self.source = source
        self.problems: list[Problem] = []
        self.spec = _Spec()

    def problem(self, text: str, file: str = TEMPLATE_FILE) -> None:
        self.problems.append(Problem(file, text))

    def read(self) -> _Spec:
        data = self._yaml()
        if data is None:
            return self.spec
        for key in sorted(set(data) - TOP_KEYS, key=str):
            self.problem(f"unknown key {key!r} (known: {', '.join(sorted(TOP_KEYS))})")
        self._names(data)
        self._playground(data.get("playground", "default"))
        self.spec.prepared = self._integer(data, "prepared", 0, 0, MAX_PREPARED)
        self.spec.setup_timeout = self._integer(data, "setup_timeout", 60, 1, SETUP_TIMEOUT_MAX)
        if data.get("setup") is not None:
            self.spec.setup = self._script("setup", data["setup"])
        self._files(data)
        self._steps(data.get("steps"))
        return self.spec

    def _yaml(self) -> dict | None:
        try:
            if not self.source.is_file(TEMPLATE_FILE):
                self.problem(f"there is no {TEMPLATE_FILE} in the template's folder")
                return None
            raw = self.source.read(TEMPLATE_FILE)
            if len(raw) > MAX_YAML_BYTES:
                self.problem(f"is larger than {MAX_YAML_BYTES >> 10} KiB")
                return None
            data = yaml.load(self._text(TEMPLATE_FILE, raw) or "", Loader=_Loader)
        except _Refused as exc:
            self.problem(str(exc))
            return None
        except yaml.YAMLError as exc:
            self.problem(f"is not valid YAML: {exc}")
            return None
        if not isinstance(data, dict):
            self.problem("must be a mapping of keys (slug, title, steps, ...)")
            return None
        return data

    def _text(self, path: str, data: bytes) -> str:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise _Refused(f"{path} is not UTF-8 text") from None
        if "\x00" in text:  # no text holds one, and PostgreSQL keeps none
            raise _Refused(f"{path} is not text (it holds a NUL byte)")
        return text

    def _string(self, data: dict, key: str, *, where: str = "", required: bool = False, limit: int = 200) -> str:
        value, name = data.get(key), f"{where}.{key}" if where else key
        if value is None:
            if required:
                self.problem(f"{name} is missing")
            return ""
        if not isinstance(value, str):
            self.problem(f"{name} must be text, not {type(value).__name__}")
            return ""
        if len(value) > limit:
            self.problem(f"{name} is longer than {limit} characters")
        elif "\x00" in value:
            self.problem(f"{name} holds a NUL character")
            return ""
        elif required and not value.strip():
            self.problem(f"{name} is empty")
        return value.strip()

    def _integer(self, data: dict, key: str, default: int, low: int, high: int) -> int:
        value = data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem(f"{key} must be a whole number, not {value!r}")
            return default
        if not low <= value <= high:
            self.problem(f"{key} must be between {low} and {high}, not {value}")
            return default
        return value

    def _names(self, data: dict) -> None:
        self.spec.slug = slug = self._string(data, "slug", required=True, limit=SLUG_MAX)
        if slug and not SLUG.fullmatch(slug):
            self.problem(f"slug {slug!r} may hold only a-z, 0-9 and single dashes between them")
        self.spec.title = self._string(data, "title", required=True)
        self.spec.description = self._string(data, "description", limit=2000)

    def _file(self, where: str, value) -> str | None:
        """The path a key names, when it is a file of the template's folder."""
        if not isinstance(value, str):
            self.problem(f"{where} must be the path of a file, not {value!r}")
            return None
        try:
            path = clean_path(value)
            if not self.source.is_file(path):
                self.problem(f"{where}: there is no file {value}")
                return None
        except _Refused as exc:
            self.problem(f"{where}: {exc}")
            return None
        return path

    def _markdown(self, where: str, value) -> str:
        path = self._file(where, value)
        if path is None:
            return ""
        try:
            return self._text(path, self.source.read(path))
        except _Refused as exc:
            self.problem(str(exc), file=path)
            return ""

    def _script(self, where: str, value) -> str:
        # Scripts run with bash: a carriage return at each line's end would be read as part of the line.
        return self._markdown(where, value).replace("\r\n", "\n")

    def _files(self, data: dict) -> None:
        folder = data.get("files")
        if folder is None:
            try:
                if not self.source.is_dir(DEFAULT_FILES_FOLDER):
                    return
            except _Refused as exc:
                self.problem(str(exc))
                return
            folder = DEFAULT_FILES_FOLDER
        if not isinstance(folder, str):
            self.problem(f"files must be the path of a folder, not {folder!r}")
            return
        try:
            folder = clean_path(folder)
            if not self.source.is_dir(folder):
                self.problem(f"files: there is no folder {folder}")
                return
            for path, mode in self.source.files_under(folder):
                content = base64.b64encode(self.source.read(f"{folder}/{path}")).decode("ascii")
                self.spec.files.append({"path": path, "content": content, "mode": mode})
        except _Refused as exc:
            self.problem(f"files: {exc}")

    def _steps(self, steps) -> None:
        if not isinstance(steps, list) or not steps:
            self.problem("steps must be a list of at least one step (title, text, check, solve)")
            return
        if len(steps) > MAX_STEPS:
            self.problem(f"a template has at most {MAX_STEPS} steps, not {len(steps)}")
            return
        for number, step in enumerate(steps, start=1):
            where = f"steps[{number}]"
            if not isinstance(step, dict):
                self.problem(f"{where} must be a mapping (title, text, check, solve)")
                continue
            for key in sorted(set(step) - STEP_KEYS, key=str):
                self.problem(f"{where}: unknown key {key!r} (known: {', '.join(sorted(STEP_KEYS))})")
            title = self._string(step, "title", where=where, required=True)
            texts = {
                key: (self._markdown if key == "text" else self._script)(f"{where}.{key}", step[key])
                for key in ("text", "check", "solve")
                if step.get(key) is not None
            }
            self.spec.steps.append(
                {
                    "title": title,
                    "text": texts.get("text", ""),
                    "check_script": texts.get("check", ""),
                    "solve_script": texts.get("solve", ""),
                }
            )

    def _playground(self, value) -> None:
        if isinstance(value, str):
            self.spec.playground_id = value
            if not is_plain_name(value) or not Playground.objects.filter(pk=value).exists():
                self.problem(f"playground: there is no playground {value!r}")
            return
        if not isinstance(value, dict):
            self.problem("playground must be the id of a playground, or a mapping of its settings")
            return
        for key in sorted(set(value) - PLAYGROUND_KEYS, key=str):
            self.problem(f"playground: unknown key {key!r} (known: {', '.join(sorted(PLAYGROUND_KEYS))})")
        self.spec.playground_fields = _PlaygroundReader(self).read(value)


class _PlaygroundReader:
    """The settings of a template's own playground, the model's defaults where a key is not given."""

    def __init__(self, reader: _Reader) -> None:
        self.reader = reader

    def problem(self, text: str) -> None:
        self.reader.problem(f"playground: {text}")

    def read(self, value: dict) -> dict:
        defaults = {f.name: f.get_default() for f in Playground._meta.concrete_fields}
        fields = {
            "description": self.reader.spec.title[:200],
            "default_image": self._image(value.get("image", "")),
            "memory_limit_mb": self._whole(value, "memory_mb", defaults["memory_limit_mb"], 64),
            "pids_limit": self._whole(value, "pids", defaults["pids_limit"], 64),
            "cpu_limit": self._cpus(value.get("cpus", defaults["cpu_limit"])),
            "storage_size": self._storage(value.get("storage", defaults["storage_size"])),
            "egress": self._egress(value.get("egress", defaults["egress"])),
            "preload_images": self._preload(value.get("preload", [])),
        }
        duration = self._duration(value, "duration", defaults["default_duration"])
        longest = self._duration(value, "max_duration", max(duration, defaults["max_duration"]))
        if longest < duration:
            self.problem("max_duration is shorter than duration")
        fields.update(default_duration=duration, max_duration=longest)
        return fields

    def _whole(self, value: dict, key: str, default: int, low: int) -> int:
        number = value.get(key, default)
        if isinstance(number, bool) or not isinstance(number, int) or not low <= number <= 10**7:
            self.problem(f"{key} must be a whole number of at least {low}, not {number!r}")
            return default
        return number

    def _cpus(self, number) -> Decimal:
        try:
            if isinstance(number, bool) or not isinstance(number, int | float | Decimal):
                raise InvalidOperation
            cpus = Decimal(str(number)).quantize(Decimal("0.01"))
            if not Decimal("0.01") <= cpus <= Decimal("999.99"):
                raise InvalidOperation
        except InvalidOperation:
            self.problem(f"cpus must be a number of CPUs such as 0.5 or 2, not {number!r}")
            return Decimal(1)
        return cpus

    def _storage(self, size) -> str:
        if size in ("", None):
            return ""
        try:
            if len(str(size)) <= STORAGE_MAX_LENGTH and parse_size(str(size)) >= MIN_SIZE:
                return str(size)
        except ValueError:
            pass
        self.problem(f"storage must be a size of at least 64M such as 512M or 10G, not {size!r}")
        return "10G"

    def _duration(self, value: dict, key: str, default: timedelta) -> timedelta:
        raw = value.get(key)
        if raw is None:
            return default
        seconds = None
        if isinstance(raw, int) and not isinstance(raw, bool):
            seconds = raw
        elif isinstance(raw, str) and raw and (match := DURATION.fullmatch(raw.strip())):
            hours, minutes, secs = (int(part or 0) for part in match.groups())
            seconds = hours * 3600 + minutes * 60 + secs
        if seconds is None or not 60 <= seconds <= MAX_DURATION.total_seconds():
            self.problem(f"{key} must be a duration from 1m to {MAX_DURATION.days} days such as 45m or 1h30m")
            return default
        return timedelta(seconds=seconds)

    def _egress(self, egress) -> str:
        if egress not in Playground.Egress.values:
            self.problem(f"egress must be one of {', '.join(Playground.Egress.values)}, not {egress!r}")
            return Playground.Egress.INTERNET
        return egress

    def _image(self, image) -> str:
        if image == "":
            return ""
        if not isinstance(image, str) or not IMAGE.fullmatch(image):
            self.problem(f"image must be an image reference such as busybox:1.36, not {image!r}")
            return ""
        if image not in _instance_images():
            # The image runs as the instance itself, with the capabilities its entrypoint needs
            # before it drops to the learner: a template may only pick one an admin runs already.
            self.problem(
                f"image {image!r} is not an instance image of this platform (its DIND image, or one a playground "
                "offers); an admin adds it to a playground first"
            )
            return ""
        return image

    def _preload(self, images) -> list[str]:
        if not isinstance(images, list) or not all(isinstance(i, str) and IMAGE.fullmatch(i) for i in images):
            self.problem(f"preload must be a list of image references, not {images!r}")
            return []
        return images


def _instance_images() -> set[str]:
    """The images an admin runs as instances already: the platform's DIND image, and those playgrounds offer."""
    images = {settings.PLAYGROUND_DIND_IMAGE}
    for default, allowed in Playground.objects.values_list("default_image", "allowed_images"):
        images.update([default, *allowed])
    return images - {""}


# --- The service ---------------------------------------------------------------


def template_import(source: str | Path | BinaryIO) -> Template:
    """Make or update the template that a folder or a .zip (a path, or an open binary file) describes.

    Raises TemplateFormatError, listing every problem found, and then has changed nothing.
    """
    opened = _open(source)
    try:
        reader = _Reader(opened)
        spec = reader.read()
    finally:
        opened.close()
    if reader.problems:
        raise TemplateFormatError(reader.problems)
    return _store(spec)


@transaction.atomic
def _store(spec: _Spec) -> Template:
    """Write a checked template, its playground and its steps: all of them or, on an error, none."""
    playground_id = spec.playground_id
    if spec.playground_fields is not None:
        playground_id = f"lab-{spec.slug}"
        Playground.objects.update_or_create(pk=playground_id, defaults=spec.playground_fields)
    template, _ = Template.objects.update_or_create(
        slug=spec.slug,
        defaults={
            "title": spec.title,
            "description": spec.description,
            "playground_id": playground_id,
            "files": spec.files,
            "setup": spec.setup,
            "setup_timeout": spec.setup_timeout,
            "prepared": spec.prepared,
        },
    )
    # Steps are matched by position, so that a session's passed checks of a step still there are kept.
    existing = {step.position: step for step in template.steps.select_for_update()}
    for position, fields in enumerate(spec.steps, start=1):
        step = existing.get(position) or Step(template=template, position=position)
        for name, value in fields.items():
            setattr(step, name, value)
        step.save()
    template.steps.filter(position__gt=len(spec.steps)).delete()
    return template


def examples() -> list[Path]:
    """The folders of the example templates shipped with the platform."""
    return sorted(path for path in EXAMPLES.iterdir() if (path / TEMPLATE_FILE).is_file())

"""template_import and manage.py import_template: templates from folders and .zip files, checked whole first."""

import base64
import io
import os
import zipfile
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from labs import importer
from labs.importer import TemplateFormatError, template_import
from labs.models import CheckRun, Step, Template
from sessions_app.models import Playground
from tests.factories import make_playground, make_session
from tests.support.template_files import GOOD, TEMPLATE_YAML, database_state, with_yaml, write_tree, zip_bytes

pytestmark = pytest.mark.django_db


def problems_of(excinfo) -> list[str]:
    return [str(problem) for problem in excinfo.value.problems]


# --- Good templates ------------------------------------------------------------


def test_it_imports_a_folder_with_its_playground_steps_scripts_and_files(tmp_path):
    template = template_import(write_tree(tmp_path / "lab", GOOD))

    template.refresh_from_db()
    assert (template.slug, template.title) == ("first-container", "Your first container")
    assert template.description == "Run, list and remove a container."
    assert (template.prepared, template.setup_timeout) == (1, 30)
    assert template.setup == GOOD["setup.sh"]
    playground = template.playground
    assert playground.pk == "lab-first-container"
    assert (playground.memory_limit_mb, playground.cpu_limit, playground.pids_limit) == (1024, Decimal("0.5"), 200)
    assert (playground.storage_size, playground.egress) == ("2G", "none")
    assert (playground.default_duration, playground.max_duration) == (timedelta(hours=1), timedelta(minutes=90))
    assert playground.preload_images == ["busybox:1.36"]
    assert playground.default_image == ""  # the platform's DIND image
    assert playground.description == "Your first container"
    steps = list(template.steps.values("position", "title", "text", "check_script", "solve_script"))
    assert steps == [
        {
            "position": 1,
            "title": "Run a container",
            "text": GOOD["steps/1-run.md"],
            "check_script": "docker inspect first\n",  # its carriage return dropped: bash would read it
            "solve_script": GOOD["steps/1-solve.sh"],
        },
        {
            "position": 2,
            "title": "Remove it",
            "text": "# Remove\n",
            "check_script": "! docker inspect first\n",
            "solve_script": "",
        },
    ]
    files = {entry["path"]: (base64.b64decode(entry["content"]).decode(), entry["mode"]) for entry in template.files}
    assert files == {"notes.txt": ("Read me.\n", 0o644), "bin/hello": ("#!/bin/sh\necho hello\n", 0o755)}


@pytest.mark.parametrize("prefix", ["", "first-container/"], ids=["at-its-top", "in-one-folder"])
def test_it_imports_a_zip_file(tmp_path, prefix):
    archive = tmp_path / "lab.zip"
    archive.write_bytes(zip_bytes(GOOD, prefix=prefix))

    template = template_import(archive)

    assert template.slug == "first-container"
    assert template.steps.count() == 2
    modes = {entry["path"]: entry["mode"] for entry in template.files}
    assert modes == {"notes.txt": 0o644, "bin/hello": 0o755}


def test_it_imports_an_open_zip_as_an_upload_gives_it():
    template = template_import(io.BytesIO(zip_bytes(GOOD)))

    assert Template.objects.get().pk == template.pk == "first-container"


def test_it_uses_an_existing_playground_named_by_its_id(tmp_path):
    make_playground("workshop", memory_limit_mb=512)
    files = with_yaml(TEMPLATE_YAML[TEMPLATE_YAML.index("playground:") : TEMPLATE_YAML.index("prepared:")], "")
    files["template.yaml"] = "playground: workshop\n" + files["template.yaml"]

    template = template_import(write_tree(tmp_path / "lab", files))

    assert template.playground_id == "workshop"
    assert Playground.objects.get(pk="workshop").memory_limit_mb == 512  # left as it was
    assert not Playground.objects.filter(pk="lab-first-container").exists()


def test_it_takes_the_default_playground_and_no_files_when_the_template_names_none(tmp_path):
    make_playground("default")
    files = {key: value for key, value in GOOD.items() if not key.startswith("files/")}
    files["template.yaml"] = "slug: tiny\ntitle: Tiny\nsteps:\n  - title: Look around\n"

    template = template_import(write_tree(tmp_path / "lab", files))

    assert (template.playground_id, template.files, template.setup, template.prepared) == ("default", [], "", 0)
    assert list(template.steps.values_list("title", "text", "check_script")) == [("Look around", "", "")]


def test_it_updates_a_template_imported_again_and_replaces_its_steps(tmp_path):
    first = template_import(write_tree(tmp_path / "v1", GOOD))
    kept_step = first.steps.get(position=1)
    session = make_session(playground_id=first.playground_id, template=first)
    CheckRun.objects.create(session=session, step=kept_step, passed=True)
    updated_at = first.updated_at
    files = with_yaml("title: Your first container", "title: Containers, again")
    files["template.yaml"] = files["template.yaml"].replace("memory_mb: 1024", "memory_mb: 2048")
    files["template.yaml"] = files["template.yaml"].split("  - title: Remove it")[0]  # one step only now
    files["steps/1-run.md"] = "# Run, again\n"

    again = template_import(write_tree(tmp_path / "v2", files))

    again.refresh_from_db()
    assert Template.objects.count() == 1
    assert again.title == "Containers, again"
    assert again.updated_at > updated_at  # prepared sessions of the old version no longer match
    assert again.playground.memory_limit_mb == 2048
    assert list(again.steps.values_list("position", "text")) == [(1, "# Run, again\n")]
    # The session of the old version keeps its progress on the step still there.
    assert CheckRun.objects.get(session=session).step_id == kept_step.pk
    session.refresh_from_db()
    assert session.template_id == "first-container"


# --- Bad templates: every problem said, nothing written ------------------------


def symlink_out(root: Path, name: str, target: Path) -> None:
    (root / name).unlink(missing_ok=True)
    (root / name).parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, root / name)


BAD_CASES = {
    "unknown-key": (with_yaml("prepared: 1", "prepared: 1\ncolour: blue"), "template.yaml: unknown key 'colour'"),
    "unknown-step-key": (
        with_yaml("    solve: steps/1-solve.sh", "    solve: steps/1-solve.sh\n    hint: later"),
        "template.yaml: steps[1]: unknown key 'hint'",
    ),
    "unknown-playground-key": (
        with_yaml("  memory_mb: 1024", "  memory_mb: 1024\n  gpus: 1"),
        "template.yaml: playground: unknown key 'gpus'",
    ),
    "no-title": (with_yaml("title: Your first container\n", ""), "template.yaml: title is missing"),
    "step-without-title": (
        with_yaml("  - title: Remove it\n    text:", "  - text:"),
        "template.yaml: steps[2].title is missing",
    ),
    "bad-slug": (with_yaml("slug: first-container", "slug: First Container"), "slug 'First Container' may hold only"),
    "long-slug": (with_yaml("slug: first-container", "slug: " + "a" * 47), "slug is longer than 46 characters"),
    "wrong-type": (with_yaml("prepared: 1", "prepared: many"), "prepared must be a whole number, not 'many'"),
    "setup-timeout-too-long": (
        with_yaml("setup_timeout: 30", "setup_timeout: 91"),
        "setup_timeout must be between 1 and 90, not 91",
    ),
    "no-steps": (
        {**GOOD, "template.yaml": TEMPLATE_YAML.split("steps:")[0] + "steps: []\n"},
        "steps must be a list of at least one step",
    ),
    "missing-step-file": (
        {key: value for key, value in GOOD.items() if key != "steps/1-check.sh"},
        "template.yaml: steps[1].check: there is no file steps/1-check.sh",
    ),
    "missing-setup": (
        {key: value for key, value in GOOD.items() if key != "setup.sh"},
        "template.yaml: setup: there is no file setup.sh",
    ),
    "missing-files-folder": (
        with_yaml("prepared: 1", "prepared: 1\nfiles: home"),
        "template.yaml: files: there is no folder home",
    ),
    "dot-dot": (
        with_yaml("text: steps/1-run.md", "text: ../secret.md"),
        "steps[1].text: ../secret.md leads out of the template's folder (..)",
    ),
    "absolute": (
        with_yaml("check: steps/1-check.sh", "check: /etc/passwd"),
        "steps[1].check: /etc/passwd is an absolute path",
    ),
    "not-utf8": ({**GOOD, "steps/1-run.md": b"\xff\xfe caf\xe9"}, "steps/1-run.md: steps/1-run.md is not UTF-8 text"),
    "bad-yaml": ({**GOOD, "template.yaml": "slug: [unclosed\n"}, "template.yaml: is not valid YAML"),
    "yaml-not-a-mapping": ({**GOOD, "template.yaml": "- slug\n"}, "template.yaml: must be a mapping of keys"),
    "no-template-yaml": (
        {key: value for key, value in GOOD.items() if key != "template.yaml"},
        "there is no template.yaml in the template's folder",
    ),
    "small-memory": (with_yaml("memory_mb: 1024", "memory_mb: 32"), "memory_mb must be a whole number of at least 64"),
    "bad-storage": (with_yaml("storage: 2G", "storage: 2X"), "storage must be a size of at least 64M"),
    "tiny-storage": (with_yaml("storage: 2G", "storage: 1M"), "storage must be a size of at least 64M"),
    "bad-duration": (with_yaml("duration: 1h", "duration: forever"), "duration must be a duration from 1m to 7 days"),
    "short-max-duration": (with_yaml("max_duration: 90m", "max_duration: 30m"), "max_duration is shorter than"),
    "bad-cpus": (with_yaml("cpus: 0.5", "cpus: lots"), "cpus must be a number of CPUs"),
    "bad-egress": (with_yaml("egress: none", "egress: sometimes"), "egress must be one of internet, mirror-only, none"),
    "unknown-playground": (
        {**GOOD, "template.yaml": "slug: s\ntitle: T\nplayground: nowhere\nsteps:\n  - title: One\n"},
        "template.yaml: playground: there is no playground 'nowhere'",
    ),
}


@pytest.mark.parametrize("files,expected", BAD_CASES.values(), ids=BAD_CASES.keys())
def test_it_refuses_a_bad_template_says_why_and_writes_nothing(tmp_path, files, expected):
    make_playground("default")
    before = database_state()

    with pytest.raises(TemplateFormatError) as excinfo:
        template_import(write_tree(tmp_path / "lab", files))

    assert any(expected in problem for problem in problems_of(excinfo)), problems_of(excinfo)
    assert expected.split(": ")[-1] in excinfo.value.message
    assert database_state() == before


def test_it_lists_every_problem_each_with_its_file(tmp_path):
    files = with_yaml("prepared: 1", "prepared: -1\ncolour: blue")
    files["template.yaml"] = files["template.yaml"].replace("text: steps/1-run.md", "text: ../x.md")
    files["steps/2-remove.md"] = b"\xff"

    with pytest.raises(TemplateFormatError) as excinfo:
        template_import(write_tree(tmp_path / "lab", files))

    assert problems_of(excinfo) == [
        "template.yaml: unknown key 'colour' (known: description, files, playground, prepared, setup, "
        "setup_timeout, slug, steps, title)",
        "template.yaml: prepared must be between 0 and 20, not -1",
        "template.yaml: steps[1].text: ../x.md leads out of the template's folder (..)",
        "steps/2-remove.md: steps/2-remove.md is not UTF-8 text",
    ]


def test_it_leaves_a_template_as_it_was_when_its_new_version_is_bad(tmp_path):
    template_import(write_tree(tmp_path / "v1", GOOD))
    before = database_state()
    files = with_yaml("title: Your first container", "title: Changed")
    files["template.yaml"] = files["template.yaml"].replace("memory_mb: 1024", "memory_mb: 4096")
    files["template.yaml"] = files["template.yaml"].replace("check: steps/1-check.sh", "check: steps/gone.sh")

    with pytest.raises(TemplateFormatError, match="there is no file steps/gone.sh"):
        template_import(write_tree(tmp_path / "v2", files))

    assert database_state() == before


def test_it_writes_nothing_when_a_write_fails_half_way(tmp_path, monkeypatch):
    template_import(write_tree(tmp_path / "v1", GOOD))
    before = database_state()
    saved = Step.save

    def fail_on_the_second_step(step, *args, **kwargs):
        if step.position == 2:
            raise RuntimeError("the database went away")
        return saved(step, *args, **kwargs)

    monkeypatch.setattr(Step, "save", fail_on_the_second_step)
    files = with_yaml("title: Your first container", "title: Changed")
    files["steps/1-run.md"] = "# Changed\n"

    with pytest.raises(RuntimeError):
        template_import(write_tree(tmp_path / "v2", files))

    assert database_state() == before


def test_it_refuses_a_symbolic_link_out_of_the_folder(tmp_path):
    secret = tmp_path / "secret.md"
    secret.write_text("the host's secret")
    root = write_tree(tmp_path / "lab", GOOD)
    symlink_out(root, "steps/1-run.md", secret)
    symlink_out(root, "files/passwd", Path("/etc/passwd"))

    with pytest.raises(TemplateFormatError) as excinfo:
        template_import(root)

    assert problems_of(excinfo) == [
        "template.yaml: files: files/passwd is a symbolic link that leads out of the template's folder",
        "template.yaml: steps[1].text: steps/1-run.md is a symbolic link that leads out of the template's folder",
    ]
    assert not Template.objects.exists()


def test_it_follows_a_symbolic_link_that_stays_in_the_folder(tmp_path):
    root = write_tree(tmp_path / "lab", GOOD)
    symlink_out(root, "steps/2-check.sh", root / "steps/1-check.sh")

    template = template_import(root)

    assert template.steps.get(position=2).check_script == "docker inspect first\n"


def test_it_refuses_a_template_larger_than_the_cap(tmp_path, monkeypatch):
    monkeypatch.setattr(importer, "MAX_TOTAL_BYTES", 1000)
    files = {**GOOD, "files/big.bin": b"x" * 1001}

    with pytest.raises(TemplateFormatError, match="the template holds more than"):
        template_import(write_tree(tmp_path / "lab", files))
    with pytest.raises(TemplateFormatError, match="the template holds more than"):
        template_import(io.BytesIO(zip_bytes(files)))
    assert not Template.objects.exists()


# --- .zip files that try to reach outside ---------------------------------------


def zip_with(member: str, content: bytes = b"pwned", *, mode: int = 0o100644) -> io.BytesIO:
    buffer = io.BytesIO(zip_bytes(GOOD))
    with zipfile.ZipFile(buffer, "a", zipfile.ZIP_DEFLATED) as archive:
        info = zipfile.ZipInfo(member)
        info.external_attr = mode << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        archive.writestr(info, content)
    buffer.seek(0)
    return buffer


@pytest.mark.parametrize(
    "member,expected",
    [
        ("../../etc/cron.d/evil", "../../etc/cron.d/evil leads out of the template's folder (..)"),
        ("files/../../evil.sh", "files/../../evil.sh leads out of the template's folder (..)"),
        ("/etc/passwd", "/etc/passwd is an absolute path"),
        ("..\\evil.sh", "is not a valid path"),
    ],
    ids=["dot-dot", "dot-dot-inside", "absolute", "backslash"],
)
def test_it_refuses_a_zip_slip(member, expected):
    with pytest.raises(TemplateFormatError) as excinfo:
        template_import(zip_with(member))

    [problem] = problems_of(excinfo)
    assert problem.startswith("the upload: ") and expected in problem
    assert not Template.objects.exists()


def test_it_refuses_a_symbolic_link_in_a_zip():
    with pytest.raises(TemplateFormatError, match="files/passwd is a symbolic link"):
        template_import(zip_with("files/passwd", b"/etc/passwd", mode=0o120777))

    assert not Template.objects.exists()


def test_it_refuses_a_zip_bomb_before_reading_it(monkeypatch):
    monkeypatch.setattr(importer, "MAX_TOTAL_BYTES", 10_000)
    bomb = zip_with("files/zeros", b"\0" * 1_000_000)
    assert len(bomb.getvalue()) < 10_000  # small packed, large unpacked

    with pytest.raises(TemplateFormatError, match="the template holds more than"):
        template_import(bomb)


def test_it_refuses_what_is_not_a_zip_nor_a_folder(tmp_path):
    not_zip = tmp_path / "lab.zip"
    not_zip.write_text("hello")

    with pytest.raises(TemplateFormatError, match="lab.zip: is neither a folder nor a .zip file"):
        template_import(not_zip)
    with pytest.raises(TemplateFormatError, match="there is no such folder or .zip file"):
        template_import(tmp_path / "missing")


def test_it_refuses_an_upload_larger_than_the_cap(monkeypatch):
    monkeypatch.setattr(importer, "MAX_ZIP_BYTES", 100)

    with pytest.raises(TemplateFormatError, match="the upload: is larger than"):
        template_import(io.BytesIO(zip_bytes(GOOD)))


# --- manage.py import_template ---------------------------------------------------


def test_the_command_imports_folders_and_zips(tmp_path, capsys):
    folder = write_tree(tmp_path / "lab", GOOD)
    archive = tmp_path / "other.zip"
    archive.write_bytes(zip_bytes(with_yaml("slug: first-container", "slug: second")))

    call_command("import_template", str(folder), str(archive))

    out = capsys.readouterr().out
    assert f"{folder}: imported first-container (2 steps)" in out
    assert f"{archive}: imported second (2 steps)" in out
    assert set(Template.objects.values_list("pk", flat=True)) == {"first-container", "second"}


def test_the_command_says_what_is_wrong_and_fails(tmp_path, capsys):
    good = write_tree(tmp_path / "good", with_yaml("slug: first-container", "slug: good"))
    bad = write_tree(tmp_path / "bad", with_yaml("setup_timeout: 30", "setup_timeout: 900"))

    with pytest.raises(CommandError, match="1 of 2 template"):
        call_command("import_template", str(bad), str(good))

    err = capsys.readouterr().err
    assert f"{bad}: not imported, the template is not valid:" in err
    assert "- template.yaml: setup_timeout must be between 1 and 90, not 900" in err
    assert list(Template.objects.values_list("pk", flat=True)) == ["good"]  # each template on its own


def test_the_command_imports_the_examples_again_and_again(capsys):
    call_command("import_template", "--examples")
    call_command("import_template", "--examples")

    assert set(Template.objects.values_list("pk", flat=True)) == {"first-container", "build-an-image", "compose-app"}
    for template in Template.objects.all():
        assert template.playground_id == f"lab-{template.slug}"
        assert template.setup.strip()
        steps = list(template.steps.all())
        assert len(steps) == 3
        assert all(step.text and step.check_script and step.solve_script for step in steps)
        assert all("```bash run" in step.text for step in steps)


def test_the_command_asks_for_something_to_import():
    with pytest.raises(CommandError, match="name a template's folder or .zip, or give --examples"):
        call_command("import_template")


def test_it_refuses_a_loop_of_symbolic_links(tmp_path):
    root = write_tree(tmp_path / "lab", GOOD)
    symlink_out(root, "steps/1-run.md", root / "steps/loop.md")
    symlink_out(root, "steps/loop.md", root / "steps/1-run.md")

    with pytest.raises(TemplateFormatError) as excinfo:
        template_import(root)

    [problem] = problems_of(excinfo)
    assert problem.startswith("template.yaml: steps[1].text: steps/1-run.md cannot be read:"), problem
    assert not Template.objects.exists()

"""The admin of templates (import from an uploaded .zip, steps inline), events, seats and check runs."""

from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from labs.models import CheckRun, Event, Seat, Step, Template
from tests.factories import make_session
from tests.support.template_files import GOOD, database_state, with_yaml, zip_bytes

pytestmark = pytest.mark.django_db

IMPORT = "/admin/labs/template/import/"


def upload(content: bytes, name: str = "lab.zip") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type="application/zip")


def test_it_imports_an_uploaded_zip_and_shows_the_template(admin_client):
    response = admin_client.post(IMPORT, {"archive": upload(zip_bytes(GOOD))}, follow=True)

    assert response.status_code == 200
    assert response.redirect_chain == [("/admin/labs/template/first-container/change/", 302)]
    assert "Imported first-container: Your first container." in response.content.decode()
    template = Template.objects.get()
    assert list(template.steps.values_list("title", flat=True)) == ["Run a container", "Remove it"]


def test_it_shows_every_problem_of_a_bad_zip_and_changes_nothing(admin_client):
    files = with_yaml("setup_timeout: 30", "setup_timeout: 300")
    files["template.yaml"] = files["template.yaml"].replace("text: steps/1-run.md", "text: ../../etc/passwd")
    before = database_state()

    response = admin_client.post(IMPORT, {"archive": upload(zip_bytes(files))})

    assert response.status_code == 200
    page = response.content.decode()
    assert "The template was not imported (nothing was changed)" in page
    assert "<code>template.yaml</code>: setup_timeout must be between 1 and 90, not 300" in page
    assert "<code>template.yaml</code>: steps[1].text: ../../etc/passwd leads out of the template&#x27;s folder" in page
    assert database_state() == before


def test_it_says_when_the_upload_is_not_a_zip(admin_client):
    response = admin_client.post(IMPORT, {"archive": upload(b"not a zip at all")})

    assert "<code>the upload</code>: is neither a folder nor a .zip file" in response.content.decode()
    assert not Template.objects.exists()


def test_it_asks_for_a_file(admin_client):
    page = admin_client.get(IMPORT).content.decode()
    posted = admin_client.post(IMPORT, {})

    assert 'enctype="multipart/form-data"' in page
    assert "This field is required." in posted.content.decode()
    assert not Template.objects.exists()


def test_it_keeps_the_import_from_whoever_may_not_add_templates(client, django_user_model):
    staff = django_user_model.objects.create_user("staff", password="pw", is_staff=True)
    client.force_login(staff)

    response = client.post(IMPORT, {"archive": upload(zip_bytes(GOOD))})

    assert response.status_code == 403
    assert not Template.objects.exists()


def test_it_links_the_import_from_the_list_of_templates(admin_client):
    admin_client.post(IMPORT, {"archive": upload(zip_bytes(GOOD))})

    page = admin_client.get("/admin/labs/template/").content.decode()

    assert f'href="{IMPORT}"' in page
    assert 'href="/t/first-container"' in page


def test_it_edits_a_templates_steps_inline(admin_client):
    admin_client.post(IMPORT, {"archive": upload(zip_bytes(GOOD))})
    template = Template.objects.get()
    url = f"/admin/labs/template/{template.pk}/change/"
    form = admin_client.get(url).context["adminform"].form
    steps = list(template.steps.all())
    data = {
        **{name: value for name, value in form.initial.items() if value is not None and name != "files"},
        "files": "[]",
        "playground": template.playground_id,
        "steps-TOTAL_FORMS": "2",
        "steps-INITIAL_FORMS": "2",
        "steps-MIN_NUM_FORMS": "0",
        "steps-MAX_NUM_FORMS": "1000",
    }
    for index, step in enumerate(steps):
        data |= {
            f"steps-{index}-id": step.pk,
            f"steps-{index}-template": template.pk,
            f"steps-{index}-position": step.position,
            f"steps-{index}-title": step.title,
            f"steps-{index}-text": step.text,
            f"steps-{index}-check_script": step.check_script,
            f"steps-{index}-solve_script": step.solve_script,
        }
    data["steps-1-title"] = "Remove it, for good"

    response = admin_client.post(url, data)

    assert response.status_code == 302, response.context["errors"] if response.context else response
    assert Step.objects.get(template=template, position=2).title == "Remove it, for good"


def test_it_lists_events_with_seats_taken_invite_link_and_dashboard(admin_client):
    admin_client.post(IMPORT, {"archive": upload(zip_bytes(GOOD))})
    template = Template.objects.get()
    starts = timezone.now()
    event = Event.objects.create(
        title="Docker 101", template=template, starts_at=starts, ends_at=starts + timedelta(hours=3), seats=12
    )
    for _ in range(2):
        Seat.objects.create(event=event, session=make_session(template=template, playground_id=template.playground_id))

    page = admin_client.get("/admin/labs/event/").content.decode()

    assert "Docker 101" in page
    assert "2 / 12" in page
    assert f'value="/e/{event.invite_code}"' in page and "readonly" in page
    assert f'href="/events/{event.pk}/dashboard"' in page


def test_it_refuses_an_event_that_ends_before_it_starts(admin_client):
    admin_client.post(IMPORT, {"archive": upload(zip_bytes(GOOD))})

    response = admin_client.post(
        "/admin/labs/event/add/",
        {
            "title": "Backwards",
            "template": "first-container",
            "starts_at_0": "2030-01-02",
            "starts_at_1": "10:00",
            "ends_at_0": "2030-01-02",
            "ends_at_1": "09:00",
            "seats": "5",
        },
    )

    assert response.status_code == 200
    assert "An event ends after it starts." in response.content.decode()
    assert not Event.objects.exists()


def test_it_shows_seats_and_check_runs_read_only(admin_client):
    admin_client.post(IMPORT, {"archive": upload(zip_bytes(GOOD))})
    template = Template.objects.get()
    session = make_session(template=template, playground_id=template.playground_id)
    run = CheckRun.objects.create(session=session, step=template.steps.get(position=1), passed=False, output="no")

    listed = admin_client.get("/admin/labs/checkrun/")
    change = admin_client.post(f"/admin/labs/checkrun/{run.pk}/change/", {"passed": "on"})

    assert listed.status_code == 200 and session.pk in listed.content.decode()
    assert admin_client.get("/admin/labs/checkrun/add/").status_code == 403
    assert admin_client.get("/admin/labs/seat/add/").status_code == 403
    assert admin_client.get("/admin/labs/seat/").status_code == 200
    assert change.status_code == 403
    run.refresh_from_db()
    assert run.passed is False

"""The admin's read-only page of what the registry mirror holds (a fake registry answers)."""

import pytest

from tests.support.fake_registry import FakeRegistry

pytestmark = pytest.mark.django_db

PAGE = "/admin/mirror/"


@pytest.fixture
def registry(settings, tmp_path):
    fake = FakeRegistry()
    settings.PLAYGROUND_REGISTRY_API = fake.url
    settings.PLAYGROUND_REGISTRY_DIR = tmp_path
    settings.PLAYGROUND_REGISTRY_MIRROR = "172.17.0.1:5000"
    settings.PLAYGROUND_REGISTRY_CAP_MB = 100
    yield fake
    fake.close()


def test_it_lists_every_image_with_its_size_and_the_total_counting_shared_layers_once(admin_client, registry):
    registry.add_image("library/busybox:latest", 2_000_000, config=1000)
    registry.add_image("library/nginx:1.27", 2_000_000, 5_000_000, config=1000)
    amd64 = registry.add_image("library/alpine:amd64", 3_000_000, config=1000)
    registry.add_list("library/alpine:latest", amd64, missing=3)  # a cache holds the platform it was asked for
    registry.add_image("team/tool:v1", 10, config=1000)  # a third page of the catalog

    response = admin_client.get(PAGE)

    assert response.status_code == 200
    page = response.content.decode()
    for name, size in [
        ("library/busybox:latest", "1.9\xa0MB"),
        ("library/nginx:1.27", "6.7\xa0MB"),
        ("library/alpine:latest", "2.9\xa0MB"),
        ("team/tool:v1", "1010\xa0bytes"),
    ]:
        assert name in page
        assert size in page.split(name, 1)[1].split("</tr>", 1)[0]
    # 2 + 5 + 3 MB of layers, 10 bytes, four configs of 1000 bytes (the list shares alpine:amd64's).
    assert response.context["total"] == 10_004_010
    assert "172.17.0.1:5000" in page


def test_it_says_when_the_mirror_holds_nothing(admin_client, registry):
    page = admin_client.get(PAGE).content.decode()

    assert "The mirror holds no image yet" in page


def test_it_says_so_when_the_mirror_does_not_answer(admin_client, registry, settings):
    registry.close()

    response = admin_client.get(PAGE)

    assert response.status_code == 200
    assert "The registry mirror does not answer." in response.content.decode()


def test_it_is_for_staff_only(client, registry):
    response = client.get(PAGE)

    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_the_admin_index_links_to_it(admin_client):
    page = admin_client.get("/admin/").content.decode()

    assert f'href="{PAGE}"' in page
    assert "Recent actions" in page  # the index's own sidebar is still there

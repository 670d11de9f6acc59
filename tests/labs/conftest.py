import pytest


@pytest.fixture(autouse=True)
def _fake_backend(use_backend):
    """Unit tests never touch Docker."""

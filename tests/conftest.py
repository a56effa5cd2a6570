"""Every test gets its own profile database, so tests never read or write the user's."""
import pytest


@pytest.fixture(autouse=True)
def _private_profile_db(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("EDGEWISE_PROFILE_DB", str(tmp_path_factory.mktemp("profile") / "profile.db"))

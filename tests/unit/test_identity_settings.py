"""The identity service's settings: where AuthenticateUser's password URLs point."""

from __future__ import annotations

import pytest

from services.identity.settings import DEVELOPMENT_PORTAL_URL, IdentitySettings


def test_the_password_urls_point_at_the_development_portal_by_default() -> None:
    """Unconfigured, AssureSign's ExpiredPasswordUrl and ChangePasswordUrl are the development
    portal's pages: a caller always gets them."""
    links = IdentitySettings().password_links

    assert links.expired(user_name="jdoe@example.com", user_id=1) == (
        f"{DEVELOPMENT_PORTAL_URL}/password/expired?user_name=jdoe%40example.com")
    assert links.change(user_name="jdoe@example.com", user_id=1) == (
        f"{DEVELOPMENT_PORTAL_URL}/password/change?user_name=jdoe%40example.com")


def test_one_setting_moves_both_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGNGATE_IDENTITY_PORTAL_URL is the base of both URLs."""
    monkeypatch.setenv("SIGNGATE_IDENTITY_PORTAL_URL", "https://sign.example.com/portal/")
    links = IdentitySettings().password_links

    assert links.expired(user_name="j", user_id=1) == "https://sign.example.com/portal/password/expired?user_name=j"
    assert links.change(user_name="j", user_id=1) == "https://sign.example.com/portal/password/change?user_name=j"


def test_a_portal_url_must_be_http() -> None:
    """Anything but an http(s) URL is refused at start."""
    with pytest.raises(ValueError, match="http"):
        IdentitySettings(portal_url="javascript:alert(1)")

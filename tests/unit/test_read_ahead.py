"""A lane's read-ahead: what was read for a package holds until a record about it writes."""

from __future__ import annotations

from libs.runtime.read_ahead import ByPackage
from signgate_contracts import authentication as auth
from signgate_contracts import identity as idn


def test_a_write_forgets_only_its_own_package() -> None:
    """A record about one package that writes forgets what was read for that package, and only that."""
    ahead: ByPackage[str] = ByPackage()
    ahead.remember("p1", 1, "recipient 1")
    ahead.remember("p1", 2, None)
    ahead.remember("p2", 1, "other")

    ahead.forget(auth.VerifyDocumentOtp(package_id="p1", order=1, code="123456"))

    assert ahead.recall("p1", 1) == (False, None) and ahead.recall("p1", 2) == (False, None)
    assert ahead.recall("p2", 1) == (True, "other")


def test_a_look_up_that_found_nothing_is_remembered_as_such() -> None:
    """A recipient read ahead and not found is known to be missing, unlike one never read."""
    ahead: ByPackage[str] = ByPackage()
    ahead.remember("p1", 1, None)

    assert ahead.recall("p1", 1) == (True, None)
    assert ahead.recall("p1", 2) == (False, None)


def test_a_write_about_no_one_package_forgets_everything() -> None:
    """A record that names no package (an API user's fact) and writes makes every entry doubtful."""
    ahead: ByPackage[str] = ByPackage()
    ahead.remember("p1", 1, "recipient 1")

    ahead.forget(idn.AuthenticateUser(user_name="someone@example.com", password="x"))

    assert ahead.recall("p1", 1) == (False, None)

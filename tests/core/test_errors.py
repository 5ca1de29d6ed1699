"""Every error class of the product derives from the one root, `AlertsError`, and says what
it means on the web; a new error class that forgets the root fails here."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import alerts
import subscriptions
from alerts.core.errors import AlertsError

STATUSES = {400, 401, 403, 404, 409, 422, 500, 502, 503}


def error_classes() -> list[type[BaseException]]:
    """The exception classes defined in any module of `alerts` and `subscriptions`."""
    found: list[type[BaseException]] = []
    for package in (alerts, subscriptions):
        for module in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            if ".migrations." in module.name or module.name.endswith(".__main__"):
                continue  # Alembic's scripts and `python -m` run on import
            loaded = importlib.import_module(module.name)
            found += [value for _name, value in inspect.getmembers(loaded, inspect.isclass)
                      if issubclass(value, BaseException) and value.__module__ == module.name]
    return found


def test_every_error_of_the_product_derives_from_the_root_with_a_status() -> None:
    classes = error_classes()
    assert len(classes) > 30
    assert [c.__qualname__ for c in classes if not issubclass(c, AlertsError)] == []
    assert {c.__qualname__: c.http_status for c in classes
            if issubclass(c, AlertsError) and c.http_status not in STATUSES} == {}


def test_errors_keep_the_built_in_bases_callers_catch() -> None:
    from alerts.accounts.access import Forbidden
    from alerts.delivery.maildir import MaildirError
    from alerts.usecases.staff import NotFound
    from subscriptions.wards import WardError

    assert issubclass(WardError, ValueError) and WardError.http_status == 400
    assert issubclass(Forbidden, PermissionError) and Forbidden.http_status == 403
    assert issubclass(NotFound, LookupError) and NotFound.http_status == 404
    assert issubclass(MaildirError, OSError)

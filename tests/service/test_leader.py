"""Which `alerts run` leads: a database that cannot be shared is a configuration error."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine

from alerts.core.errors import AlertsError
from alerts.service.leader import leadership_for


def test_an_in_memory_database_is_a_configuration_error_naming_the_key() -> None:
    with pytest.raises(AlertsError, match=r"database\.url: .*share"):
        leadership_for(create_engine("sqlite://"))

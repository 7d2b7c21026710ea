"""The expert directory takes only Entra object ids as expert ids (what Graph's createOrGet keys on)."""

from __future__ import annotations

import pytest

from adapters.tables import TableRepository
from appointments.model import Expert


def test_a_directory_write_with_a_non_guid_expert_id_is_refused_and_writes_nothing(
    storage_connection_string: str,
) -> None:
    """A UPN as expert id never reaches the Experts table."""
    repo = TableRepository.from_connection_string(storage_connection_string)
    upn = "not.an.object.id@pankki.example"
    with pytest.raises(ValueError, match="object id"):
        repo.put_expert(Expert(upn, "Maija", upn, ("loans.home-loan",), ("fi",)))
    assert repo.get_expert(upn) is None

"""The views' expert directory: one query per minute at most, never staler than that."""

from __future__ import annotations

from datetime import timedelta

from appointments.directory import ExpertDirectory
from appointments.model import Expert


class Directory:
    """The directory part of the repository port, counting the reads it serves."""

    def __init__(self, *experts: Expert) -> None:
        self.experts = {x.expert_id: x for x in experts}
        self.queries = 0
        self.point_reads = 0

    def list_experts(self) -> list[Expert]:
        self.queries += 1
        return list(self.experts.values())

    def get_expert(self, expert_id: str) -> Expert | None:
        self.point_reads += 1
        return self.experts.get(expert_id)


def expert(expert_id: str, name: str) -> Expert:
    return Expert(expert_id, name, f"{expert_id}@pankki.example", ("loans.home-loan",), ("fi",))


class Ticks:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_reads_within_the_max_age_share_one_query() -> None:
    """Many views in a minute cost one directory query, and no point reads."""
    repo = Directory(expert("a", "Aino"), expert("b", "Bertta"))
    ticks = Ticks()
    directory = ExpertDirectory(repo, timedelta(seconds=60), ticks)  # type: ignore[arg-type]
    for _ in range(50):
        assert directory.get("a") is not None
        assert set(directory.all()) == {"a", "b"}
        ticks.now += 1
    assert (repo.queries, repo.point_reads) == (1, 0)


def test_a_rename_is_seen_once_the_max_age_has_passed() -> None:
    """Staleness is bounded: after max_age the directory is read again."""
    repo = Directory(expert("a", "Aino"))
    ticks = Ticks()
    directory = ExpertDirectory(repo, timedelta(seconds=60), ticks)  # type: ignore[arg-type]
    assert directory.get("a").display_name == "Aino"  # type: ignore[union-attr]
    repo.experts["a"] = expert("a", "Aino Uusinimi")
    ticks.now += 59
    assert directory.get("a").display_name == "Aino"  # type: ignore[union-attr]
    ticks.now += 1
    assert directory.get("a").display_name == "Aino Uusinimi"  # type: ignore[union-attr]
    assert repo.queries == 2


def test_an_expert_added_after_the_query_is_found_at_once() -> None:
    """A new expert is read on its own, and an unknown id is not remembered as absent."""
    repo = Directory(expert("a", "Aino"))
    ticks = Ticks()
    directory = ExpertDirectory(repo, timedelta(seconds=60), ticks)  # type: ignore[arg-type]
    assert directory.get("new") is None
    repo.experts["new"] = expert("new", "Uusi")
    assert directory.get("new").display_name == "Uusi"  # type: ignore[union-attr]
    assert directory.get("new") is not None
    assert (repo.queries, repo.point_reads) == (1, 2)

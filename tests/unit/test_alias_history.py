import pytest

from pipelines.promotion import champion_lineage
from pipelines.registry import format_history


def event(action: str, to: str, alias: str = "champion", source: str | None = None) -> dict:
    return {
        "time": "2026-11-23T00:00:00Z",
        "action": action,
        "alias": alias,
        "from_version": source,
        "to_version": to,
        "reason": f"{action} v{to}",
    }


@pytest.mark.parametrize(
    ("events", "lineage"),
    [
        ([], []),
        ([event("promote", "1")], ["1"]),
        ([event("promote", "1"), event("challenge", "2", "challenger")], ["1"]),
        ([event("promote", "1"), event("promote", "3", source="1")], ["1", "3"]),
        (
            [
                event("promote", "1"),
                event("promote", "3", source="1"),
                event("rollback", "1", source="3"),
            ],
            ["1"],
        ),
        (
            [
                event("promote", "1"),
                event("promote", "2", source="1"),
                event("promote", "3", source="2"),
                event("rollback", "2", source="3"),
            ],
            ["1", "2"],
        ),
    ],
)
def test_a_rollback_walks_back_the_promotions_instead_of_undoing_itself(events, lineage):
    assert champion_lineage(events) == lineage


def test_history_lists_every_change_in_order():
    text = format_history([event("promote", "1"), event("promote", "2", source="1")])
    lines = text.splitlines()
    assert lines[0].split()[:5] == ["time", "action", "alias", "from", "to"]
    assert lines[1].split()[1:5] == ["promote", "champion", "-", "v1"]
    assert lines[2].split()[1:5] == ["promote", "champion", "v1", "v2"]

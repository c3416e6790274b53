"""One gate vocabulary: checks pass or fail against their limit and explain themselves."""

from pipelines import gates


def test_limits_are_inclusive_both_ways():
    assert gates.at_most("drop", 0.01, 0.01, "").passed
    assert not gates.at_most("drop", 0.0101, 0.01, "").passed
    assert gates.at_least("floor", 0.05, 0.05, "").passed
    assert not gates.at_least("floor", 0.0499, 0.05, "").passed


def test_more_than_is_strict():
    assert gates.more_than("gain", 0.0001, 0.0, "").passed
    assert not gates.more_than("gain", 0.0, 0.0, "").passed
    assert not gates.more_than("gain", -0.01, 0.0, "").passed


def test_explain_names_only_the_failures_when_any_fail():
    checks = [
        gates.at_least("pr_auc", 0.6, 0.05, "PR-AUC ok"),
        gates.at_most("psi:amount", 0.4, 0.25, "column 'amount' PSI 0.4000"),
    ]
    assert not gates.passed(checks)
    assert gates.explain(checks) == "column 'amount' PSI 0.4000"
    assert [c.name for c in gates.failures(checks)] == ["psi:amount"]


def test_explain_lists_every_reason_when_all_pass():
    checks = [gates.at_least("a", 1, 0, "a ok"), gates.at_most("b", 0, 1, "b ok")]
    assert gates.passed(checks)
    assert gates.explain(checks) == "a ok; b ok"


def test_records_and_tags_carry_every_field():
    check = gates.at_most("latency_ratio", 1.2, 1.05, "latency 1.20x > 1.05x")
    assert gates.as_records([check]) == [
        {
            "name": "latency_ratio",
            "passed": False,
            "measured": 1.2,
            "limit": 1.05,
            "reason": "latency 1.20x > 1.05x",
        }
    ]
    assert gates.as_tags("quantize.int8", [check]) == {
        "gate.quantize.int8.latency_ratio": "fail: latency 1.20x > 1.05x"
    }

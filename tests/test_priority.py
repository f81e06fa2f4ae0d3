"""ITIL impact × urgency → priority: the default table, inline matrices and clear errors."""

from __future__ import annotations

import pytest

from triage.errors import ConfigError
from triage.priority import PriorityMatrix


def test_default_matrix_is_the_standard_itil_table():
    m = PriorityMatrix()
    assert m.label("high", "high") == "P1"
    assert m.label("high", "low") == "P3"
    assert m.label("medium", "medium") == "P3"
    assert m.label("low", "high") == "P3"
    assert m.label("low", "low") == "P5"
    assert sorted(m.impacts) == ["high", "low", "medium"]


def test_inline_matrix_from_yaml_values_accepts_numbers_and_p_labels():
    m = PriorityMatrix.from_config({"critical": {"1": "P1", "2": 1}, "minor": {"1": 3, "2": "p4"}})
    assert m.priority("critical", "2") == 1
    assert m.label("minor", "2") == "P4"


@pytest.mark.parametrize(
    "config, needle",
    [
        ({"high": {"high": 7}}, "expected a priority 1..5"),
        ({"high": {"high": 1}, "low": {"low": 5}}, "expected urgency columns"),
        ({"high": "P1"}, "expected a mapping urgency -> priority"),
        ([], "expected a mapping impact"),
    ],
)
def test_bad_matrix_says_what_was_expected(config, needle):
    with pytest.raises(ConfigError, match=needle):
        PriorityMatrix.from_config(config, source="mapping.yaml")


def test_unknown_level_is_a_clear_error():
    with pytest.raises(ConfigError, match="unknown impact"):
        PriorityMatrix().priority("huge", "high")
    with pytest.raises(ConfigError, match="unknown urgency"):
        PriorityMatrix().priority("high", "now")


def test_joint_distribution_sums_products_per_priority():
    m = PriorityMatrix()
    joint = m.joint({"high": 0.5, "low": 0.5}, {"high": 0.2, "low": 0.8})
    # P3 = high×low + low×high = 0.4 + 0.1
    assert joint["P3"] == pytest.approx(0.5)
    assert joint["P1"] == pytest.approx(0.1)
    assert joint["P5"] == pytest.approx(0.4)
    assert sum(joint.values()) == pytest.approx(1.0)
    assert list(joint)[0] == "P3"  # most probable first

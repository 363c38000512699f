"""The adaptive budget's stopping rule over cycle scores (``training.cycle_stopping``)."""

import pytest

from anomalib_fastflow.training.cycle_stopping import CycleStopping


def test_patience_one_stops_at_the_first_cycle_without_a_new_best_and_keeps_the_best() -> None:
    assert CycleStopping().replay([0.6, 0.8, 0.7, 0.9]) == (2, 3)
    assert CycleStopping().replay([0.6, 0.605, 0.7]) == (1, 2)  # by default a new best must gain 0.01


def test_a_new_best_must_beat_the_best_by_more_than_min_delta() -> None:
    scores = [0.80, 0.805, 0.83, 0.835, 0.838]
    assert CycleStopping(min_delta=0.01).replay(scores) == (1, 2)  # +0.005 is not enough
    assert CycleStopping(min_delta=0.01, patience=2).replay(scores) == (3, 5)  # +0.025 is; +0.005, +0.008 are not
    assert CycleStopping(min_delta=0.0, patience=2).replay([*scores, 0.838, 0.838]) == (5, 7)


def test_patience_waits_that_many_cycles_and_max_cycles_caps_the_run() -> None:
    assert CycleStopping(patience=2).replay([0.6, 0.5, 0.7, 0.6, 0.6]) == (3, 5)
    assert CycleStopping(max_cycles=3).replay([0.1, 0.2, 0.3, 0.4]) == (3, 3)


def test_the_state_carries_over_between_updates_as_in_a_run() -> None:
    rule = CycleStopping(patience=1, min_delta=0.05)
    assert rule.update(1, 0.5) == (True, False)
    assert rule.update(2, 0.52) == (False, True)
    assert (rule.best_cycle, rule.best_score) == (1, 0.5)


def test_replay_refuses_scores_that_end_before_the_rule_stops() -> None:
    with pytest.raises(ValueError, match="train more cycles"):
        CycleStopping(patience=3).replay([0.1, 0.2])


@pytest.mark.parametrize("arguments", [{"patience": 0}, {"max_cycles": 0}, {"min_delta": -0.1}])
def test_refuses_a_rule_that_cannot_stop_sensibly(arguments: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="at least 1|non-negative"):
        CycleStopping(**arguments)

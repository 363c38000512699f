"""When an adaptive budget stops: early stopping over its cycles' self-validation scores.

With self-validation and no budget given, FastFlow trains in cycles of its default budget
(``schedule.cyclic_one_cycle``) and scores the self-validation set at the end of each. A cycle is
the new best when its score beats the best so far by more than ``min_delta``; the run stops after
``patience`` cycles without a new best, or after ``max_cycles``, and keeps the best cycle's
weights (Lightning's ``EarlyStopping``, with cycles for epochs and the best weights restored).

A cycle must beat the best by ``MIN_DELTA`` (one point of the score's AUROC scale): cycle traces on
the demo and the production-line parts (``docs/self_validation/``, 9 categories, three seeds) show
later cycles gaining the estimate a few thousandths while the test AUROC fell (nut, board, grass);
with it the kept cycles lost less against the default budget on both sets.
"""

from collections.abc import Sequence
from dataclasses import dataclass, replace

MIN_DELTA = 0.01  # how much a cycle must improve the self-validation score to count


@dataclass
class CycleStopping:
    """The stopping rule and its state: the best cycle so far (1-based; 0 before the first) and its score.

    Args:
        patience: Cycles without a new best before the run stops.
        min_delta: How much a cycle's score must beat the best so far to be the new best.
        max_cycles: The most cycles a run trains.

    Raises:
        ValueError: ``patience`` or ``max_cycles`` below 1, or a negative ``min_delta``.
    """

    patience: int = 1
    min_delta: float = MIN_DELTA
    max_cycles: int = 8
    best_cycle: int = 0
    best_score: float = float("-inf")

    def __post_init__(self) -> None:
        if self.patience < 1 or self.max_cycles < 1:
            msg = f"patience={self.patience}, max_cycles={self.max_cycles}: both must be at least 1."
            raise ValueError(msg)
        if self.min_delta < 0:
            msg = f"min_delta={self.min_delta}: a cycle must beat the best by a non-negative margin."
            raise ValueError(msg)

    def update(self, cycle: int, score: float) -> tuple[bool, bool]:
        """Take cycle ``cycle``'s score; return whether it is the new best and whether to stop after it."""
        improved = self.best_cycle == 0 or score > self.best_score + self.min_delta
        if improved:
            self.best_cycle, self.best_score = cycle, score
        stop = cycle >= self.max_cycles or cycle - self.best_cycle >= self.patience
        return improved, stop

    def restarted(self) -> "CycleStopping":
        """The same rule with no cycle seen yet."""
        return replace(self, best_cycle=0, best_score=float("-inf"))

    def replay(self, scores: Sequence[float]) -> tuple[int, int]:
        """The cycle this rule keeps and the cycle it stops after, for the scores of cycles 1, 2, ...
        (as many as a run without stopping trained; at least up to where this rule stops).

        Raises:
            ValueError: The scores end before the rule stops.
        """
        rule = self.restarted()
        for cycle, score in enumerate(scores, start=1):
            if rule.update(cycle, score)[1]:
                return rule.best_cycle, cycle
        msg = f"{len(scores)} cycle scores end before this rule stops; train more cycles."
        raise ValueError(msg)

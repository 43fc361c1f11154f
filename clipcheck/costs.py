"""What a request costs the model, known before any forward pass: rows.

A row is one input of a forward pass, at most the model's context: a photo, a
text passage, an attribute rewrite. A text costs its passages (at most
``MAX_PASSAGES``, planned with bounded work whatever the text's length,
``clipcheck.passages``) and, if it fails, the likeliest rewrite of each
passage that names an attribute (at most ``MAX_REWRITES``,
``clipcheck.verdicts``). So the plan says what a request may cost before the
model runs:

* ``RequestBudget.admit`` refuses a request over its bound (413
  ``request_too_costly``), then charges its rows to the client
  (``clipcheck.access``: the cost throttle);
* the admission gate counts the same rows in flight
  (``clipcheck.engine.admission``).

Work for the operator's own commands (audits, uploads) takes no budget: they
bound themselves by chunking.
"""

from collections.abc import Callable
from dataclasses import dataclass

from clipcheck import verdicts
from clipcheck.errors import RequestTooCostly


@dataclass(frozen=True)
class Cost:
    """Rows a request may cost: ``rewrites`` is the most its failing texts can need."""

    photos: int = 0
    passages: int = 0
    rewrites: int = 0

    @property
    def rows(self) -> int:
        return self.photos + self.passages + self.rewrites

    def __add__(self, other: "Cost") -> "Cost":
        return Cost(
            photos=self.photos + other.photos, passages=self.passages + other.passages,
            rewrites=self.rewrites + other.rewrites,
        )

    def as_dict(self) -> dict:
        return {"rows": self.rows, "photos": self.photos, "passages": self.passages, "rewrites": self.rewrites}


def plan_cost(plan: "verdicts.TextPlan") -> Cost:
    """What judging one planned text may cost (its photo aside)."""
    return Cost(passages=len(plan.passages), rewrites=verdicts.rewrite_rows(plan))


def plans_cost(plans, *, photos: int = 0) -> Cost:
    total = Cost(photos=photos)
    for plan in plans:
        total += plan_cost(plan)
    return total


@dataclass(frozen=True)
class RequestBudget:
    """The most rows one request may cost, and who pays for them.

    ``charge(rows)`` debits the client (it raises when the client has spent
    its allowance); None charges nobody.
    """

    max_rows: int
    charge: Callable[[int], None] | None = None

    def refuse_over(self, cost: Cost, *, partial: bool = False) -> None:
        """413 ``request_too_costly`` when ``cost`` exceeds the bound
        (``partial``: the cost of part of the request, already over)."""
        if cost.rows > self.max_rows:
            raise RequestTooCostly(cost=cost.as_dict(), max_rows=self.max_rows, partial=partial)

    def admit(self, cost: Cost) -> None:
        """Refuse a request over the bound, else charge its rows; before any model work."""
        self.refuse_over(cost)
        if self.charge is not None and cost.rows:
            self.charge(cost.rows)


def texts_plan_within(*, texts, photos: int, engine, budget: RequestBudget | None, language: str = "en"):
    """``({text: plan}, cost)`` of a request's texts in ``language`` (one per item,
    repeats planned once but counted each time) and ``photos`` photos; with a budget,
    planning stops at the first text that takes the request past its bound."""
    plans, cost = {}, Cost(photos=photos)
    for number, text in enumerate(texts, start=1):
        if text not in plans:
            plans[text] = verdicts.text_plan(text=text, engine=engine, language=language)
        cost += plan_cost(plans[text])
        if budget is not None:
            budget.refuse_over(cost, partial=number < len(texts))
    return plans, cost

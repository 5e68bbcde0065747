"""What each relation head is for, as checkable claims over frame-mAP per class group.

The synthetic dataset's three class groups each need one kind of information (docs/synthetic.md),
so the heads' purposes become margins:

* every head >= 60 AP on ``short_term`` (the actor's own box decides those classes);
* ACAR and ACFB >= linear + 10 AP on ``relational`` (what lies outside the box);
* every LFB variant >= linear + 15 AP on ``long_term`` (what happened seconds away);
* ACFB the best head overall (``all``).

A claim is checked per seed (its margin: the measured value minus what the claim needs) and holds
when the mean margin is positive and, over several seeds, beyond twice the margins' standard
deviation. One seed (the demo) has no spread: there the margin's sign decides.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

#: head label -> per-seed {group: AP in [0, 1]}; the group "all" is the overall mAP.
SeedResults = Mapping[str, Sequence[Mapping[str, float]]]

SHORT_TERM_FLOOR = 0.60
RELATIONAL_GAIN = 0.10
LONG_TERM_GAIN = 0.15
RELATIONAL_HEADS = ("acar", "acfb")


@dataclass(frozen=True)
class ClaimResult:
    """One claim on one head: ``margins`` [seeds] in AP units (>0: the claim's bar is cleared)."""

    text: str  # e.g. "relational: acar - linear >= +10"
    measured: str  # e.g. "acar - linear = +21.3"
    margins: tuple[float, ...]

    @property
    def mean(self) -> float:
        return statistics.mean(self.margins)

    @property
    def std(self) -> float:
        return statistics.stdev(self.margins) if len(self.margins) > 1 else 0.0

    @property
    def holds(self) -> bool:
        if not self.margins or any(math.isnan(m) for m in self.margins):
            return False
        return self.mean > 0 and self.mean > 2 * self.std

    def line(self) -> str:
        spread = f" ± {100 * self.std:.1f}" if len(self.margins) > 1 else ""
        verdict = "holds" if self.holds else "FAILS"
        return f"{verdict:5s}  {self.text}: {self.measured}{spread}, margin {100 * self.mean:+.1f}"


def _group(results: SeedResults, head: str, group: str) -> list[float]:
    values = [r.get(group) for r in results[head]]
    return [math.nan if v is None else float(v) for v in values]


def _mean_pct(values: Sequence[float]) -> str:
    return f"{100 * statistics.mean(values):.1f}"


def check_claims(results: SeedResults) -> list[ClaimResult]:
    """Every claim that the heads in ``results`` allow (a claim about an absent head is left out;
    the comparisons need ``linear``). Seeds pair up by position: margins are per seed."""
    claims: list[ClaimResult] = []
    for head in results:
        values = _group(results, head, "short_term")
        claims.append(ClaimResult(f"short_term: {head} >= {100 * SHORT_TERM_FLOOR:.0f}",
                                  f"{head} = {_mean_pct(values)}", tuple(v - SHORT_TERM_FLOOR for v in values)))
    if "linear" in results:
        base = {g: _group(results, "linear", g) for g in ("relational", "long_term")}
        comparisons = [(h, "relational", RELATIONAL_GAIN) for h in RELATIONAL_HEADS if h in results]
        comparisons += [(h, "long_term", LONG_TERM_GAIN) for h in results if h.startswith("lfb")]
        for head, group, gain in comparisons:
            diffs = [a - b for a, b in zip(_group(results, head, group), base[group], strict=False)]
            claims.append(ClaimResult(f"{group}: {head} - linear >= +{100 * gain:.0f}",
                                      f"{head} - linear = {100 * statistics.mean(diffs):+.1f}",
                                      tuple(d - gain for d in diffs)))
    others = [h for h in results if h != "acfb"]
    if "acfb" in results and others:
        acfb = _group(results, "acfb", "all")
        best_other = [max(_group(results, h, "all")[i] for h in others) for i in range(len(acfb))]
        runner_up = max(others, key=lambda h: statistics.mean(_group(results, h, "all")))
        claims.append(ClaimResult("overall: acfb is the best head",
                                  f"acfb - best other ({runner_up}) = "
                                  f"{100 * statistics.mean(a - b for a, b in zip(acfb, best_other)):+.1f}",
                                  tuple(a - b for a, b in zip(acfb, best_other))))
    return claims

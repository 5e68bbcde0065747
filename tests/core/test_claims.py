"""The heads' claims: margins per seed, the 2-std rule, and which claims a set of heads allows."""

import math

from stad_core.evaluation.claims import check_claims


def _res(all_, short, rel, long):
    return {"all": all_, "short_term": short, "relational": rel, "long_term": long}


def test_single_seed_margins_and_verdicts():
    results = {
        "linear": [_res(0.40, 0.70, 0.10, 0.20)],
        "lfb_max": [_res(0.45, 0.65, 0.10, 0.30)],
        "acar": [_res(0.50, 0.72, 0.25, 0.20)],
        "acfb": [_res(0.55, 0.59, 0.30, 0.40)],
    }
    claims = {c.text: c for c in check_claims(results)}
    assert claims["short_term: linear >= 60"].holds
    assert math.isclose(claims["short_term: acfb >= 60"].mean, -0.01)
    assert not claims["short_term: acfb >= 60"].holds
    assert claims["relational: acar - linear >= +10"].holds  # +15 against a +10 bar
    assert math.isclose(claims["relational: acar - linear >= +10"].mean, 0.05)
    assert not claims["long_term: lfb_max - linear >= +15"].holds  # +10 only
    assert claims["overall: acfb is the best head"].holds
    assert "acfb - best other (acar) = +5.0" in claims["overall: acfb is the best head"].line()
    assert len(claims) == 4 + 2 + 1 + 1


def test_seed_spread_must_be_beyond_two_std():
    steady = {"linear": [_res(0.3, 0.7, 0.10, 0.2)] * 3, "acar": [_res(0.3, 0.7, 0.25, 0.2)] * 3}
    noisy = {"linear": [_res(0.3, 0.7, 0.10, 0.2)] * 3,
             "acar": [_res(0.3, 0.7, r, 0.2) for r in (0.12, 0.45, 0.20)]}  # mean +15.7, std 17.2
    rel = "relational: acar - linear >= +10"
    assert {c.text: c for c in check_claims(steady)}[rel].holds
    noisy_claim = {c.text: c for c in check_claims(noisy)}[rel]
    assert noisy_claim.mean > 0 and not noisy_claim.holds
    assert "±" in noisy_claim.line() and noisy_claim.line().startswith("FAILS")


def test_missing_values_fail_and_absent_heads_are_left_out():
    claims = check_claims({"acfb": [{"all": None, "short_term": 0.8}]})
    assert [c.text for c in claims] == ["short_term: acfb >= 60"]  # no linear: no comparisons
    assert check_claims({"linear": [{"all": 0.1}]})[0].holds is False  # NaN short_term

"""Scoring instruments kept as data: hand-computed means, thresholds, errors and the stored form."""

import copy
import json

import pytest

from domain.assessments import (
    SURVIVOR_OUTCOME_ASSESSMENT,
    SURVIVOR_OUTCOME_INSTRUMENT,
    AssessmentScore,
    Instrument,
    Subdomain,
    parse_scores,
    score,
)
from domain.enums import OutcomeDomain, UserErrorCode
from domain.errors import InvalidInput

D = OutcomeDomain

# Hand-computed: domains have 3, 3, 4, 3, 3 and 2 sub-domains.
#   SAFETY 2,3,4 -> 3 | LEGAL 1,2,2 -> 5/3 | MENTAL 4,3,3,2 -> 3 | ECONOMIC 1,1,2 -> 4/3
#   SOCIAL 4,4,3 -> 11/3 | PHYSICAL 3,4 -> 3.5
#   overall = (3 + 5/3 + 3 + 4/3 + 11/3 + 3.5) / 6 = 48.5 / 18 = 2.69444...
#   (the plain mean of all 18 answers would be 48 / 18 = 2.67: domains weigh equally, answers do not)
SURVIVOR_SCORES = {
    "safety.housing_stable": 2,
    "safety.free_from_exploiter_contact": 3,
    "safety.safety_plan": 4,
    "legal.case_status": 1,
    "legal.protection_order": 2,
    "legal.documentation": 2,
    "mental.trauma_symptoms": 4,
    "mental.coping_skills": 3,
    "mental.self_worth": 3,
    "mental.substance_use": 2,
    "economic.education_enrolment": 1,
    "economic.income": 1,
    "economic.basic_needs": 2,
    "social.family_relationships": 4,
    "social.trusted_adult": 4,
    "social.community_acceptance": 3,
    "physical.health_care_access": 3,
    "physical.sexual_reproductive_health": 4,
}


def test_survivor_outcome_hand_computed():
    assert score(SURVIVOR_OUTCOME_INSTRUMENT, SURVIVOR_SCORES) == AssessmentScore(
        domain_scores=(
            (D.SAFETY, 3.0),
            (D.LEGAL_PROTECTION, 1.67),
            (D.MENTAL_WELLBEING, 3.0),
            (D.ECONOMIC_EMPOWERMENT_AND_EDUCATION, 1.33),
            (D.SOCIAL_SUPPORT, 3.67),
            (D.PHYSICAL_WELLBEING, 3.5),
        ),
        overall=2.69,
        meets_restoration_threshold=False,
    )


@pytest.mark.parametrize(
    ("threshold", "meets"),
    [(None, False), (2.69, True), (2.6944, True), (2.6945, False), (2.7, False), (1.0, True), (4.0, False)],
)
def test_threshold_override(threshold, meets):
    result = score(SURVIVOR_OUTCOME_INSTRUMENT, SURVIVOR_SCORES, threshold=threshold)
    assert result.meets_restoration_threshold is meets
    assert result.overall == 2.69


@pytest.mark.parametrize("value", [1, 2, 3, 4])
def test_uniform_answers_score_that_value(value):
    result = score(SURVIVOR_OUTCOME_INSTRUMENT, dict.fromkeys(SURVIVOR_SCORES, value))
    assert result.overall == float(value)
    assert result.domain_scores == tuple((domain, float(value)) for domain in OutcomeDomain)
    assert result.meets_restoration_threshold is (value >= 3)


# A small instrument, declared out of domain order, with one domain of one item and one of three.
SMALL = Instrument(
    key="small",
    version="2",
    name="Small test instrument",
    scale_min=1,
    scale_max=4,
    subdomains=(
        Subdomain("social.b1", D.SOCIAL_SUPPORT, "B1"),
        Subdomain("social.b2", D.SOCIAL_SUPPORT, "B2"),
        Subdomain("social.b3", D.SOCIAL_SUPPORT, "B3"),
        Subdomain("safety.a", D.SAFETY, "A"),
    ),
    restoration_threshold=2.5,
)


@pytest.mark.parametrize(
    ("answers", "safety", "social", "overall", "meets"),
    [
        # (4 + 4/3) / 2 = 8/3 = 2.666...
        ({"safety.a": 4, "social.b1": 1, "social.b2": 1, "social.b3": 2}, 4.0, 1.33, 2.67, True),
        # (3 + 2) / 2 = 2.5: exactly at the threshold meets it
        ({"safety.a": 3, "social.b1": 2, "social.b2": 2, "social.b3": 2}, 3.0, 2.0, 2.5, True),
        # (3 + 5/3) / 2 = 7/3 = 2.333...
        ({"safety.a": 3, "social.b1": 2, "social.b2": 2, "social.b3": 1}, 3.0, 1.67, 2.33, False),
        # (1 + 11/3) / 2 = 7/3
        ({"safety.a": 1, "social.b1": 4, "social.b2": 4, "social.b3": 3}, 1.0, 3.67, 2.33, False),
    ],
)
def test_small_instrument(answers, safety, social, overall, meets):
    assert score(SMALL, answers) == AssessmentScore(
        domain_scores=((D.SAFETY, safety), (D.SOCIAL_SUPPORT, social)),
        overall=overall,
        meets_restoration_threshold=meets,
    )


def test_threshold_is_compared_before_rounding():
    # Overall is 8/3 = 2.6667, shown as 2.67, but it is below a 2.67 threshold.
    result = score(SMALL, {"safety.a": 4, "social.b1": 1, "social.b2": 1, "social.b3": 2}, threshold=2.67)
    assert result.overall == 2.67
    assert result.meets_restoration_threshold is False


def test_rounding_is_half_up():
    four_items = Instrument(
        key="four",
        version="1",
        name="Four",
        scale_min=1,
        scale_max=4,
        subdomains=(
            Subdomain("m.1", D.MENTAL_WELLBEING, "1"),
            Subdomain("m.2", D.MENTAL_WELLBEING, "2"),
            Subdomain("m.3", D.MENTAL_WELLBEING, "3"),
            Subdomain("m.4", D.MENTAL_WELLBEING, "4"),
            Subdomain("s.1", D.SAFETY, "1"),
        ),
        restoration_threshold=3,
    )
    # MENTAL (2+2+2+3)/4 = 2.25, SAFETY 2, overall 2.125 -> 2.13
    result = score(four_items, {"m.1": 2, "m.2": 2, "m.3": 2, "m.4": 3, "s.1": 2})
    assert result.domain_scores == ((D.SAFETY, 2.0), (D.MENTAL_WELLBEING, 2.25))
    assert result.overall == 2.13


@pytest.mark.parametrize("threshold", [0.99, 4.01])
def test_threshold_override_outside_the_scale_is_a_configuration_error(threshold):
    with pytest.raises(ValueError, match="within"):
        score(SURVIVOR_OUTCOME_INSTRUMENT, SURVIVOR_SCORES, threshold=threshold)


def _invalid_scores(changes, removed=()):
    answers = {key: value for key, value in SURVIVOR_SCORES.items() if key not in removed} | changes
    with pytest.raises(InvalidInput) as caught:
        score(SURVIVOR_OUTCOME_INSTRUMENT, answers)
    assert caught.value.field == ("input", "scores")
    assert caught.value.code == UserErrorCode.INVALID
    return caught.value.message


def test_missing_subdomains_are_named():
    message = _invalid_scores({}, removed=("legal.documentation", "mental.self_worth"))
    assert message == "Missing sub-domain score(s): legal.documentation, mental.self_worth."


SURVIVOR_KEYS = ", ".join(sorted(s.key for s in SURVIVOR_OUTCOME_INSTRUMENT.subdomains))


def test_unknown_subdomain_is_named_with_the_valid_keys():
    message = _invalid_scores({"safety.pets": 3})
    assert message == f"Unknown sub-domain(s) for survivor-outcome: safety.pets. Valid keys: {SURVIVOR_KEYS}."


def test_the_valid_keys_are_those_of_the_instrument_scored():
    tiny = Instrument(key="tiny", version="1", name="Tiny", scale_min=1, scale_max=4, restoration_threshold=3.0,
                      subdomains=(Subdomain("safety.home", OutcomeDomain.SAFETY, "Home"),
                                  Subdomain("legal.papers", OutcomeDomain.LEGAL_PROTECTION, "Papers")))
    with pytest.raises(InvalidInput) as caught:
        score(tiny, {"safety.home": 2, "safety.housing_stable": 3})
    assert caught.value.message == \
        "Unknown sub-domain(s) for tiny: safety.housing_stable. Valid keys: legal.papers, safety.home."


def test_unknown_subdomain_free_text_is_not_echoed():
    message = _invalid_scores({"Amina lives near Likoni ferry": 3})
    assert "Amina" not in message
    assert "Likoni" not in message
    assert message == f"Unknown sub-domain(s) for survivor-outcome: (unrecognised key). Valid keys: {SURVIVOR_KEYS}."


@pytest.mark.parametrize("value", [0, 5, -1, 40])
def test_out_of_scale_scores(value):
    message = _invalid_scores({"safety.safety_plan": value})
    assert message == "Score for sub-domain safety.safety_plan must be from 1 to 4."


@pytest.mark.parametrize("value", [True, 2.5, "3"])
def test_non_integer_scores(value):
    message = _invalid_scores({"social.trusted_adult": value})
    assert message == "Score for sub-domain social.trusted_adult must be a whole number."


def test_parse_scores():
    assert parse_scores([("safety.a", 4), ("social.b1", 1)]) == {"safety.a": 4, "social.b1": 1}
    assert parse_scores([]) == {}


def test_parse_scores_refuses_a_duplicate():
    with pytest.raises(InvalidInput) as caught:
        parse_scores([("safety.a", 4), ("social.b1", 1), ("safety.a", 3)])
    assert caught.value.field == ("input", "scores")
    assert caught.value.message == "Sub-domain safety.a is scored more than once."


def test_survivor_outcome_instrument_shape():
    instrument = SURVIVOR_OUTCOME_INSTRUMENT
    assert (instrument.key, instrument.version) == ("survivor-outcome", "1")
    assert (instrument.scale_min, instrument.scale_max, instrument.restoration_threshold) == (1, 4, 3.0)
    assert instrument.domains == tuple(OutcomeDomain)
    counts = {domain: sum(s.domain == domain for s in instrument.subdomains) for domain in OutcomeDomain}
    assert counts == {
        D.SAFETY: 3,
        D.LEGAL_PROTECTION: 3,
        D.MENTAL_WELLBEING: 4,
        D.ECONOMIC_EMPOWERMENT_AND_EDUCATION: 3,
        D.SOCIAL_SUPPORT: 3,
        D.PHYSICAL_WELLBEING: 2,
    }
    assert {s.key for s in instrument.subdomains} == set(SURVIVOR_SCORES)


@pytest.mark.parametrize("instrument", [SURVIVOR_OUTCOME_INSTRUMENT, SMALL])
def test_round_trip_through_json(instrument):
    stored = json.loads(json.dumps(instrument.to_dict()))
    assert Instrument.from_dict(stored) == instrument


def test_the_literal_is_the_stored_form():
    assert SURVIVOR_OUTCOME_INSTRUMENT.to_dict() == SURVIVOR_OUTCOME_ASSESSMENT


def test_integer_threshold_is_read_as_float():
    data = copy.deepcopy(dict(SURVIVOR_OUTCOME_ASSESSMENT)) | {"restoration_threshold": 3}
    assert Instrument.from_dict(data).restoration_threshold == 3.0


def _broken(**changes):
    return copy.deepcopy(dict(SURVIVOR_OUTCOME_ASSESSMENT)) | changes


FIRST = {"key": "safety.housing_stable", "domain": "SAFETY", "label": "Housing"}
SECOND = {"key": "legal.case_status", "domain": "LEGAL_PROTECTION", "label": "Case"}


@pytest.mark.parametrize(
    ("data", "complaint"),
    [
        (_broken(subdomains=[FIRST, FIRST]), "unique"),
        (_broken(subdomains=[]), "at least one"),
        (_broken(subdomains=[FIRST, SECOND | {"domain": "SPIRITUAL"}]), "OutcomeDomain"),
        (_broken(subdomains=[FIRST, {"key": "x", "domain": "SAFETY"}]), "exactly the keys"),
        (_broken(subdomains=[FIRST, SECOND | {"key": " "}]), "blank"),
        (_broken(subdomains=[FIRST, SECOND | {"label": 7}]), "label must be a string"),
        (_broken(subdomains="safety.housing_stable"), "must be a list"),
        (_broken(restoration_threshold=4.5), "within the scale"),
        (_broken(restoration_threshold=0.5), "within the scale"),
        (_broken(restoration_threshold="3"), "must be a number"),
        (_broken(scale_min=4), "below scale_max"),
        (_broken(scale_min=5), "below scale_max"),
        (_broken(scale_min="1"), "must be an integer"),
        (_broken(scale_max=True), "must be an integer"),
        (_broken(key=""), "key must not be blank"),
        (_broken(version=1), "version must be a string"),
        (_broken(extra="x"), "keys must be exactly"),
        ({k: v for k, v in SURVIVOR_OUTCOME_ASSESSMENT.items() if k != "name"}, "keys must be exactly"),
    ],
)
def test_invalid_instruments_are_refused(data, complaint):
    with pytest.raises(ValueError, match=complaint):
        Instrument.from_dict(data)

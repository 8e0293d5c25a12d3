"""A seeded synthetic credit-card churn data set with a `drift` knob and a `concept` knob.

Features mix numeric and categorical (string) columns, shaped like the public bank-churners data:
age, gender, dependents, education, marital status, income band, card category, months on book,
relationship count, months inactive, contacts, credit limit, revolving balance, transaction
amounts and counts, utilisation.

The label is a documented logistic model plus noise:

    logit = -1.2
            + 0.45 * (months_inactive_12_mon - 2)
            + 0.35 * (contacts_count_12_mon - 2.5)
            - 0.40 * (total_relationship_count - 3.5)
            - 0.045 * (total_trans_ct - 65)
            - 0.0012 * (total_revolving_bal - 1200)
            + 0.35 * [card_category == "Blue"]
            + 0.30 * [income_category == "Less than $40K"]
            + N(0, 0.5)
    churn = Bernoulli(sigmoid(logit))

`drift` (0 = none) shifts the columns in DRIFTED_COLUMNS and leaves the others untouched, so
drift detection can be checked column by column. The label keeps the same formula, so drift
also changes the churn rate and the model's accuracy, as real covariate drift does.

`concept` (0 = none) is concept drift: the features keep their distribution and the label
model changes. Three coefficients move linearly with C (CONCEPT_SHIFT), and at C = 1 their
signs are flipped:

    months_inactive_12_mon     0.45  -> 0.45  - 0.90 * C
    total_relationship_count  -0.40  -> -0.40 + 0.80 * C
    total_trans_ct            -0.045 -> -0.045 + 0.09 * C

The terms are centred, so the churn rate barely moves while the old model's accuracy falls
(measured: 0.73 -> 0.51 at C = 1) and a model trained on the new regime gets 0.74 back. Both knobs
draw the same random numbers, so `concept=0` is exactly today's data.

Churn rate under the combinations the demo uses (`generate_churn(20000, seed=0, ...)`):

    drift  concept  churn    where
    0      0        36.7 %   v1's training data and the demo's clean traffic
    1      0        57.7 %   (covariate drift alone)
    0      1        34.5 %   (concept drift alone)
    1      1        14.6 %   the demo's drifted traffic: "nobody churns" scores 0.85 accuracy,
                             which is why the gate and the live test check for skill, not
                             accuracy alone
"""

from __future__ import annotations

import numpy as np
import pandas as pd

TARGET = "churn"
EDUCATION = ["Uneducated", "High School", "College", "Graduate", "Post-Graduate", "Doctorate"]
MARITAL = ["Single", "Married", "Divorced", "Unknown"]
INCOME = ["Less than $40K", "$40K - $60K", "$60K - $80K", "$80K - $120K", "$120K +"]
CARDS = ["Blue", "Silver", "Gold", "Platinum"]

# Coefficients of the label model at concept 0, and how far each moves per unit of concept.
COEFFICIENTS = {
    "months_inactive_12_mon": 0.45,
    "total_relationship_count": -0.40,
    "total_trans_ct": -0.045,
}
CONCEPT_SHIFT = {
    "months_inactive_12_mon": -0.90,
    "total_relationship_count": 0.80,
    "total_trans_ct": 0.09,
}

# Columns whose distribution the drift knob moves; every other column stays as it was.
DRIFTED_COLUMNS = (
    "customer_age",
    "income_category",
    "card_category",
    "months_inactive_12_mon",
    "total_trans_amt",
    "total_trans_ct",
)
UNDRIFTED_COLUMNS = (
    "gender",
    "dependent_count",
    "education_level",
    "marital_status",
    "months_on_book",
    "total_relationship_count",
    "contacts_count_12_mon",
    "credit_limit",
    "total_revolving_bal",
    "avg_utilization_ratio",
)


def churn_features(rows: int, seed: int = 0, drift: float = 0.0) -> pd.DataFrame:
    """Feature columns only (what a client sends to the API)."""
    return generate_churn(rows, seed, drift).drop(columns=[TARGET])


def coefficients(concept: float = 0.0) -> dict[str, float]:
    """The label model's moving coefficients at concept drift `concept`."""
    return {k: v + CONCEPT_SHIFT[k] * float(concept) for k, v in COEFFICIENTS.items()}


def generate_churn(
    rows: int, seed: int = 0, drift: float = 0.0, concept: float = 0.0
) -> pd.DataFrame:
    """`rows` customers with features and the `churn` label (0/1)."""
    rng = np.random.default_rng(seed)
    d = float(drift)

    age = np.clip(rng.normal(46 + 8 * d, 8, rows), 18, 90).round().astype(int)
    gender = rng.choice(["F", "M"], rows, p=[0.53, 0.47])
    dependents = rng.integers(0, 6, rows)
    education = rng.choice(EDUCATION, rows, p=[0.15, 0.25, 0.12, 0.33, 0.08, 0.07])
    marital = rng.choice(MARITAL, rows, p=[0.39, 0.46, 0.08, 0.07])
    income_p = _shift([0.35, 0.18, 0.14, 0.15, 0.18], d)
    income = rng.choice(INCOME, rows, p=income_p)
    card_p = _shift([0.90, 0.06, 0.03, 0.01], d)
    card = rng.choice(CARDS, rows, p=card_p)
    months_on_book = np.clip(rng.normal(36, 8, rows), 13, 56).round().astype(int)
    relationships = rng.integers(1, 7, rows)
    inactive = np.clip(rng.poisson(2.2 + 1.5 * d, rows), 0, 6)
    contacts = np.clip(rng.poisson(2.5, rows), 0, 6)
    credit_limit = np.round(np.exp(rng.normal(8.6, 0.7, rows)).clip(1400, 35000), 2)
    revolving = np.round(np.minimum(rng.uniform(0, 2600, rows), credit_limit), 2)
    trans_ct = np.clip(rng.normal(65 - 20 * d, 22, rows), 10, 140).round().astype(int)
    trans_amt = np.round(trans_ct * rng.lognormal(np.log(66) + 0.6 * d, 0.35, rows), 2)
    utilisation = np.round(revolving / credit_limit, 3)

    churn = _churn(
        rng,
        coefficients(concept),
        inactive,
        contacts,
        relationships,
        trans_ct,
        revolving,
        card,
        income,
    )

    return pd.DataFrame(
        {
            "customer_age": age,
            "gender": gender,
            "dependent_count": dependents,
            "education_level": education,
            "marital_status": marital,
            "income_category": income,
            "card_category": card,
            "months_on_book": months_on_book,
            "total_relationship_count": relationships,
            "months_inactive_12_mon": inactive,
            "contacts_count_12_mon": contacts,
            "credit_limit": credit_limit,
            "total_revolving_bal": revolving,
            "total_trans_amt": trans_amt,
            "total_trans_ct": trans_ct,
            "avg_utilization_ratio": utilisation,
            TARGET: churn,
        }
    )


def _churn(
    rng: np.random.Generator,
    coef: dict[str, float],
    inactive: np.ndarray,
    contacts: np.ndarray,
    relationships: np.ndarray,
    trans_ct: np.ndarray,
    revolving: np.ndarray,
    card: np.ndarray,
    income: np.ndarray,
) -> np.ndarray:
    """The label model (module docstring) with the coefficients in force: 0/1 per row."""
    rows = len(inactive)
    logit = (
        -1.2
        + coef["months_inactive_12_mon"] * (inactive - 2)
        + 0.35 * (contacts - 2.5)
        + coef["total_relationship_count"] * (relationships - 3.5)
        + coef["total_trans_ct"] * (trans_ct - 65)
        - 0.0012 * (revolving - 1200)
        + 0.35 * (card == "Blue")
        + 0.30 * (income == "Less than $40K")
        + rng.normal(0, 0.5, rows)
    )
    churn = (rng.uniform(size=rows) < 1 / (1 + np.exp(-logit))).astype(int)
    return churn


def _shift(probabilities: list[float], drift: float) -> list[float]:
    """Move probability mass from the first category toward the last ones as drift grows."""
    p = np.asarray(probabilities, dtype=float)
    weights = np.linspace(1 - drift * 0.8, 1 + drift * 1.5, len(p)).clip(0.05)
    p = p * weights
    return list(p / p.sum())

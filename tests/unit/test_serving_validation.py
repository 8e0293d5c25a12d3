"""Request validation from the model's FeatureSpec + MLflow signature (no server needed)."""

from __future__ import annotations

import math

import pytest
from mlflow.models import infer_signature

from lifecycle.core.errors import InputValidationError, UnseenCategoryError
from lifecycle.data.synthetic import generate_churn
from lifecycle.model.predictor import FeatureSpec
from serving.errors import ApiError
from serving.routes.mlflow_input import mlflow_records, parse_csv
from serving.validation import RecordValidator


@pytest.fixture(scope="module")
def validator() -> RecordValidator:
    frame = generate_churn(300, seed=1)
    spec = FeatureSpec.infer(frame, "churn", "binary")
    features = frame.drop(columns=["churn"])
    signature = infer_signature(features.head(5), frame["churn"].head(5).to_numpy())
    return RecordValidator(spec, signature.inputs)


@pytest.fixture
def record() -> dict:
    return generate_churn(1, seed=2).drop(columns=["churn"]).to_dict(orient="records")[0]


class _Model:
    """What the format parsers need of a loaded model."""

    def __init__(self, validator: RecordValidator) -> None:
        self.validator = validator


def _error(validator: RecordValidator, records: list, max_batch: int = 100) -> InputValidationError:
    with pytest.raises(InputValidationError) as info:
        validator.encode(records, max_batch)
    return info.value


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        (lambda r: r.pop("credit_limit"), "credit_limit", "missing feature"),
        (lambda r: r.update(customer_age="forty"), "customer_age", "expected an integer"),
        (lambda r: r.update(credit_limit="a lot"), "credit_limit", "expected a number"),
        (lambda r: r.update(credit_limit=True), "credit_limit", "expected a number"),
        (lambda r: r.update(gender=1), "gender", "expected a string"),
        (lambda r: r.update(customer_age=None), "customer_age", "null is not allowed"),
        (lambda r: r.update(customer_age=math.nan), "customer_age", "NaN is not allowed"),
        (lambda r: r.update(customer_age=40.5), "customer_age", "expected an integer"),
        (lambda r: r.update(credit_limit=1e300), "credit_limit", "out of range"),
        (lambda r: r.update(customer_age=10**400), "customer_age", "out of range"),
        (lambda r: r.update(credit_limit=math.inf), "credit_limit", "finite"),
        (lambda r: r.update(card_category="Titanium"), "card_category", "unknown category"),
        (lambda r: r.update(favourite_colour="blue"), "favourite_colour", "unknown field"),
    ],
)
def test_validator_names_the_field(validator, record, change, field, words) -> None:
    change(record)
    error = _error(validator, [record])
    assert error.field == field
    assert field in str(error) and words in str(error)


def test_validator_allows_nulls_where_the_model_takes_missing_values(validator, record) -> None:
    record.update(credit_limit=None, education_level=None, total_trans_amt=math.nan)
    matrix = validator.encode([record], 10)
    names = [c.name for c in validator.columns]
    for name in ("credit_limit", "education_level", "total_trans_amt"):
        assert math.isnan(matrix[0, names.index(name)])


def test_validator_empty_and_oversized_batches(validator, record) -> None:
    assert _error(validator, []).field == "records"
    error = _error(validator, [record] * 11, max_batch=10)
    assert error.field == "records" and "limit of 10" in str(error)


def test_validator_row_number_in_batch_errors(validator, record) -> None:
    bad = dict(record, gender="X")
    error = _error(validator, [record, record, bad])
    assert error.field == "gender" and "row 2" in str(error)
    assert _error(validator, [record, "not a record"]).field == "records[1]"


def test_json_schema_lists_categories_and_required(validator) -> None:
    schema = validator.json_schema()
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {c.name for c in validator.columns}
    assert schema["properties"]["card_category"]["anyOf"][0]["enum"] == [
        "Blue",
        "Gold",
        "Platinum",
        "Silver",
    ]
    assert schema["properties"]["customer_age"] == {"type": "integer"}


def test_mlflow_formats_give_the_same_records(validator, record) -> None:
    model = _Model(validator)
    columns = list(record)
    split = {"dataframe_split": {"columns": columns, "data": [[record[c] for c in columns]]}}
    payloads = [
        split,
        {"dataframe_records": [record]},
        {"instances": [record]},
        {"inputs": [record]},
        {"inputs": {c: [record[c]] for c in columns}},
        {"instances": {c: [record[c]] for c in columns}, "params": {"probabilities": True}},
    ]
    for payload in payloads:
        records, _ = mlflow_records(payload, model)  # type: ignore[arg-type]
        assert records == [record]


@pytest.mark.parametrize(
    "payload",
    [
        [],
        {"nothing": 1},
        {"inputs": [], "instances": []},
        {"dataframe_split": {"columns": ["a"], "data": [[1, 2]]}},
        {"dataframe_split": []},
        {"inputs": "text"},
        {"inputs": [], "params": 3},
    ],
)
def test_mlflow_formats_reject_malformed_payloads(validator, payload) -> None:
    with pytest.raises(ApiError) as info:
        mlflow_records(payload, _Model(validator))  # type: ignore[arg-type]
    assert info.value.status == 400 and info.value.mlflow_format


def test_csv_is_typed_by_the_model(validator, record) -> None:
    columns = list(record)
    text = ",".join(columns) + "\n" + ",".join(str(record[c]) for c in columns) + "\n"
    records = parse_csv(text.encode(), _Model(validator))  # type: ignore[arg-type]
    assert records == [record]
    # pandas' to_csv() writes an unnamed index column first: it is skipped
    indexed = "," + text.replace("\n", "\n0,", 1).rstrip(",")
    assert parse_csv(indexed.encode(), _Model(validator)) == [record]  # type: ignore[arg-type]
    with pytest.raises(ApiError) as info:
        parse_csv(b"customer_age\nold\n", _Model(validator))  # type: ignore[arg-type]
    assert info.value.field == "customer_age"


def test_validator_rejects_an_unseen_category_by_default(validator, record) -> None:
    record["gender"] = "X"
    error = _error(validator, [record, dict(record, gender="M")])
    assert isinstance(error, UnseenCategoryError)
    assert (error.field, error.value) == ("gender", "X")
    assert str(error).startswith("gender: unknown category 'X'; expected one of ['F', 'M']")


def test_validator_scores_unseen_categories_as_missing_when_asked(validator, record) -> None:
    records = [dict(record, gender="X"), record, dict(record, gender="m", card_category="Ti")]
    unseen: list = []
    matrix = validator.encode(records, 100, unseen)
    assert unseen == [
        {"row": 0, "field": "gender", "value": "X"},
        {"row": 2, "field": "gender", "value": "m"},
        {"row": 2, "field": "card_category", "value": "Ti"},
    ]
    gender = [c.name for c in validator.columns].index("gender")
    assert math.isnan(matrix[0, gender]) and math.isnan(matrix[2, gender])
    assert not math.isnan(matrix[1, gender])
    # The other features are encoded as without the unseen value, and other errors still raise.
    others = [j for j in range(matrix.shape[1]) if j != gender]
    assert (matrix[0, others] == validator.encode([record], 100)[0, others]).all()
    with pytest.raises(InputValidationError, match="expected a string"):
        validator.encode([dict(record, gender=1)], 100, [])
    single: list = []
    validator.encode([dict(record, gender="X")], 100, single)
    assert single == [{"row": 0, "field": "gender", "value": "X"}]


def test_frame_encoding_follows_the_same_unseen_choice(record) -> None:
    import pandas as pd

    frame = generate_churn(300, seed=1)
    spec = FeatureSpec.infer(frame, "churn", "binary")
    rows = pd.DataFrame([record, dict(record, gender="X"), dict(record, gender=None)])
    with pytest.raises(UnseenCategoryError, match="gender: unknown category 'X'"):
        spec.encode_frame(rows)
    unseen: list = []
    matrix = spec.encode_frame(rows, unseen)
    assert unseen == [{"row": 1, "field": "gender", "value": "X"}]
    gender = spec.names.index("gender")
    assert math.isnan(matrix[1, gender]) and math.isnan(matrix[2, gender])

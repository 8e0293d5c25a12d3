"""Training rows from production: logged predictions that have received ground truth.

A labelled production row is the logged, validated input of a prediction (`features` of its
`predictions` document) with the label `/feedback` stored for it (`actual`). Two ways in:

* `MLOPS_FEEDBACK_WINDOW=14d` appends the labelled rows of the last 14 days to the training
  source's rows (`with_production`);
* the source `feedback:14d` is those rows alone (`read_source`).

Either way the most recent HOLDOUT_SHARE of them (by prediction time) is held out from
training: the gate scores candidate and champion on it (lifecycle.decisions.gate), so a model
that only wins on old data is not promoted. Fewer than `MLOPS_FEEDBACK_MIN_ROWS` labelled rows:
one log line, and training goes on with the base source alone.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import pandas as pd

from lifecycle.core.errors import DataSourceError
from lifecycle.core.settings import Settings, Task
from lifecycle.core.times import parse_duration, utcnow
from lifecycle.data.dataset import Dataset, dataset_from_frame
from lifecycle.stores.prediction_store import PredictionStore

log = logging.getLogger(__name__)

PREFIX = "feedback:"
DEFAULT_TARGET = "actual"  # the target's name for `feedback:` alone when MLOPS_TARGET is unset
HOLDOUT_SHARE = 0.3  # the most recent share of labelled rows the gate scores on
ID_COLUMN = "_prediction_id"  # carried beside the rows until they become a Dataset


@dataclass(frozen=True)
class ProductionRows:
    """What training took from production: how many labelled rows the window held, how many
    were appended to training, and the most recent ones held out for the gate."""

    window: str
    labelled: int
    appended: int
    holdout: pd.DataFrame
    used: bool
    note: str

    def markdown(self) -> str:
        """The training artifact's line about production rows."""
        return f"**Production rows** (feedback window {self.window}): {self.note}."


def read_labelled(
    store: PredictionStore, since: datetime, until: datetime, target: str, with_ids: bool = False
) -> pd.DataFrame:
    """Labelled predictions logged in [since, until): features + `target` (+ ID_COLUMN with
    `with_ids`), oldest first."""
    # Every label of a prediction logged after `since` arrived after it: read those labels,
    # then their predictions in the window, by id.
    labels = dict(store.labels_since(since))
    rows = []
    projection = {"features": 1, "ts": 1}
    for doc in store.predictions_for(list(labels), since, until, projection):
        row = {**doc["features"], target: labels[doc["_id"]], "_ts": doc["ts"]}
        if with_ids:
            row[ID_COLUMN] = doc["_id"]
        rows.append(row)
    if not rows:
        return pd.DataFrame(columns=[target])
    frame = pd.DataFrame(rows).sort_values("_ts", kind="stable")
    return frame.drop(columns=["_ts"]).reset_index(drop=True)


def read_source(
    source: str,
    settings: Settings,
    target: str | None = None,
    task: Task | None = None,
    store: PredictionStore | None = None,
) -> Dataset:
    """`feedback:14d`: the labelled production rows of the last 14 days as a source."""
    window = source.removeprefix(PREFIX)
    try:
        length = parse_duration(window)
    except ValueError as exc:
        raise DataSourceError(source, f"bad window ({exc}); expected e.g. feedback:14d") from None
    target = target or settings.target or DEFAULT_TARGET
    frame = _read(settings, store, length, target, source)
    frame = frame[frame[target].notna()].reset_index(drop=True) if len(frame) else frame
    ids = frame.pop(ID_COLUMN) if ID_COLUMN in frame.columns else pd.Series([], dtype=object)
    dataset = dataset_from_frame(frame, source, target, task or settings.task)
    return _replace_frame(dataset, dataset.frame, tuple(map(str, ids)))


def with_production(
    dataset: Dataset, settings: Settings, store: PredictionStore | None = None
) -> tuple[Dataset, ProductionRows | None]:
    """The dataset to train on, and what it took from production (None: feedback is off).

    With a `feedback:` source the holdout comes out of that source's own rows; otherwise, with
    MLOPS_FEEDBACK_WINDOW, the window's labelled rows are appended to the source's rows.
    """
    if dataset.source.startswith(PREFIX):
        window = dataset.source.removeprefix(PREFIX)
        train, holdout = split_recent(dataset.frame)
        note = (
            f"{len(dataset.frame)} labelled rows; {len(train)} trained on, "
            f"the {len(holdout)} most recent held out for the gate"
        )
        rows = ProductionRows(window, len(dataset.frame), len(train), holdout, True, note)
        return _replace_frame(dataset, train, dataset.prediction_ids[: len(train)]), rows
    if not settings.feedback_window:
        return dataset, None
    window = settings.feedback_window
    frame = _read(settings, store, parse_duration(window), dataset.target, dataset.source)
    ids = frame.pop(ID_COLUMN) if ID_COLUMN in frame.columns else pd.Series([], dtype=object)
    if len(frame) < settings.feedback_min_rows:
        note = (
            f"{len(frame)} labelled rows, fewer than MLOPS_FEEDBACK_MIN_ROWS="
            f"{settings.feedback_min_rows}; trained on {dataset.source} only"
        )
        log.warning("feedback window %s: %s", window, note)
        return dataset, ProductionRows(window, len(frame), 0, frame.iloc[0:0], False, note)
    frame = _conform(frame, dataset)
    train, holdout = split_recent(frame)
    note = (
        f"{len(frame)} labelled rows; {len(train)} appended to the {len(dataset.frame)} rows of "
        f"{dataset.source}, the {len(holdout)} most recent held out for the gate"
    )
    log.info("feedback window %s: %s", window, note)
    combined = pd.concat([dataset.frame, train], ignore_index=True)
    used_ids = tuple(map(str, ids.iloc[: len(train)]))
    return _replace_frame(dataset, combined, dataset.prediction_ids + used_ids), ProductionRows(
        window, len(frame), len(train), holdout, True, note
    )


def split_recent(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(older rows, the most recent HOLDOUT_SHARE): `frame` is oldest first."""
    held = max(1, round(len(frame) * HOLDOUT_SHARE)) if len(frame) > 1 else 0
    cut = len(frame) - held
    return frame.iloc[:cut].reset_index(drop=True), frame.iloc[cut:].reset_index(drop=True)


def _read(
    settings: Settings,
    store: PredictionStore | None,
    length: timedelta,
    target: str,
    source: str,
) -> pd.DataFrame:
    own = store is None
    store = store or PredictionStore.open(settings, "training")
    until = utcnow()
    try:
        return read_labelled(store, until - length, until, target, with_ids=True)
    except Exception as exc:  # pymongo's errors are many; the user needs the source and cause
        cause = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataSourceError(
            source, f"prediction store unreachable ({cause})", transient=True
        ) from None
    finally:
        if own:
            store.close()


def _conform(frame: pd.DataFrame, dataset: Dataset) -> pd.DataFrame:
    """Production rows in the source's columns and label type (extra logged fields dropped,
    missing ones null, which the model's encoder treats as missing)."""
    frame = frame.reindex(columns=list(dataset.frame.columns))
    # When the source's label type cannot hold them, they stay as they are and the model's
    # label encoding refuses them with the column's name.
    with contextlib.suppress(TypeError, ValueError):
        frame[dataset.target] = frame[dataset.target].astype(dataset.labels.dtype)
    return frame


def _replace_frame(
    dataset: Dataset, frame: pd.DataFrame, prediction_ids: tuple[str, ...] | None = None
) -> Dataset:
    ids = dataset.prediction_ids if prediction_ids is None else prediction_ids
    return Dataset(frame, dataset.target, dataset.task, dataset.source, ids)

"""The train / validation / test split every training run and the gate share."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from sklearn.model_selection import train_test_split

from lifecycle.data.dataset import Dataset


@dataclass
class Splits:
    """Train / validation / test frames (features + target), stratified and seeded."""

    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame


def split_dataset(dataset: Dataset, seed: int) -> Splits:
    """70 / 15 / 15 split; stratified on the label for classification."""
    frame = dataset.frame
    strat = frame[dataset.target] if dataset.task != "regression" else None
    train, rest = train_test_split(frame, test_size=0.30, random_state=seed, stratify=strat)
    strat_rest = rest[dataset.target] if strat is not None else None
    val, test = train_test_split(rest, test_size=0.50, random_state=seed, stratify=strat_rest)
    return Splits(*(part.reset_index(drop=True) for part in (train, val, test)))

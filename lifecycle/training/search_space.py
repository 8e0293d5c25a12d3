"""Named XGBoost search spaces for hyperopt TPE (`MLOPS_SEARCH_SPACE`).

Tuned values never live in flows: a space is picked by name, and every trial's sampled values are
logged to MLflow.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

# hyperopt is imported by the builders, not here: it pulls in scipy.stats (1.5 s of CPU), and
# `mlops train` checks a space's name, then its data source, before anything heavy loads.


@dataclass(frozen=True)
class SearchSpace:
    """A hyperopt space plus the boosting budget each trial gets."""

    name: str
    space: dict[str, Any]
    num_boost_round: int
    early_stopping_rounds: int


def _default() -> SearchSpace:
    from hyperopt import hp
    from hyperopt.pyll import scope

    return SearchSpace(
        "default",
        {
            "max_depth": scope.int(hp.quniform("max_depth", 2, 10, 1)),
            "learning_rate": hp.loguniform("learning_rate", np.log(0.02), np.log(0.3)),
            "min_child_weight": hp.loguniform("min_child_weight", np.log(0.5), np.log(20)),
            "subsample": hp.uniform("subsample", 0.5, 1.0),
            "colsample_bytree": hp.uniform("colsample_bytree", 0.5, 1.0),
            "reg_lambda": hp.loguniform("reg_lambda", np.log(1e-3), np.log(10)),
            "reg_alpha": hp.loguniform("reg_alpha", np.log(1e-3), np.log(10)),
            "gamma": hp.loguniform("gamma", np.log(1e-3), np.log(5)),
        },
        num_boost_round=400,
        early_stopping_rounds=25,
    )


def _fast() -> SearchSpace:
    # For tests and the demo: the same dimensions with a small boosting budget.
    base = _default()
    return SearchSpace("fast", base.space, num_boost_round=60, early_stopping_rounds=10)


def _stump() -> SearchSpace:
    # Deliberately weak (depth-1 trees, few rounds): used to show that the gate refuses a
    # worse candidate.
    from hyperopt import hp

    return SearchSpace(
        "stump",
        {
            "max_depth": 1,
            "learning_rate": hp.uniform("learning_rate", 0.01, 0.02),
            "min_child_weight": 1.0,
        },
        num_boost_round=3,
        early_stopping_rounds=3,
    )


SPACES = {"default": _default, "fast": _fast, "stump": _stump}


def get_space(name: str) -> SearchSpace:
    """The named space; raises KeyError with the known names."""
    try:
        return SPACES[name]()
    except KeyError:
        raise KeyError(f"unknown search space {name!r}; expected one of {sorted(SPACES)}") from None

"""How the side features of a dataset's users (or items) become the towers' inputs, and back
from raw values: the vocabularies and numeric statistics a trained model was fitted with.

Training reads a version's integer codes (`Entities`); serving and export get raw values (a
genre name, an age) and must encode them exactly as training did, so the codec is kept with
the registered model (`cl_core.recommender.encoder`), as JSON.

Encoding (`EntityFeatures`, `cl_core.recommender.training_data`):
- categorical: value `vocabulary[k]` is k + 1, 0 is "missing" or a value the model never saw;
  cardinality len(vocabulary) + 1;
- multi-valued: value `vocabulary[k]` is k, unused slots PAD; unknown values are dropped;
- numeric: (value - mean) / std over the known values of the training version; missing, and
  every value of a column with fewer than two known values or no spread, is 0 (the mean).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cl_core.datasets.sources.interactions.data import Entities
from cl_core.models.two_tower import PAD, SideFeatureSizes
from cl_core.recommender.training_data import EntityFeatures


@dataclass(frozen=True)
class FeatureCodec:
    """The side features of one entity kind: vocabularies by feature name (categorical and
    multi-valued) and (mean, std) by numeric feature; std 0 encodes every value as 0."""

    categorical: Mapping[str, tuple[str, ...]]
    multi_valued: Mapping[str, tuple[str, ...]]
    numeric: Mapping[str, tuple[float, float]]

    @classmethod
    def fit(cls, entities: Entities) -> FeatureCodec:
        """The vocabularies of a version's users or items, and their numeric statistics."""
        numeric = {}
        for name, feature in entities.numeric.items():
            known = feature.values[~feature.missing]
            spread = float(known.std()) if len(known) >= 2 else 0.0
            numeric[name] = (float(known.mean()) if len(known) else 0.0, spread)
        return cls(
            {name: f.vocabulary for name, f in entities.categorical.items()},
            {name: f.vocabulary for name, f in entities.multi_valued.items()},
            numeric,
        )

    @property
    def sizes(self) -> SideFeatureSizes:
        # An embedding table needs a row even when a multi-valued column never had a value.
        return SideFeatureSizes(
            categorical=tuple(len(v) + 1 for v in self.categorical.values()),
            multi_valued=tuple(max(len(v), 1) for v in self.multi_valued.values()),
            numeric=len(self.numeric),
        )

    @property
    def names(self) -> list[str]:
        return [*self.categorical, *self.multi_valued, *self.numeric]

    def from_entities(self, entities: Entities) -> EntityFeatures:
        """The features of every user (or item) of a version, from its codes: what training
        reads. The codec must be this version's (`fit`)."""
        count = len(entities)
        categorical = np.stack([entities.categorical[n].codes for n in self.categorical], axis=1) if self.categorical else None
        multi = tuple(entities.multi_valued[n].padded() - 1 for n in self.multi_valued)  # padding 0 -> PAD
        numeric = None
        if self.numeric:
            numeric = np.stack([self._standardized(n, entities.numeric[n].values) for n in self.numeric], axis=1)
        features = EntityFeatures(self.sizes, categorical, multi, numeric)
        features.check(count, entities.kind[:-1])
        return features

    def encode(self, rows: Sequence[Mapping[str, Any] | None]) -> EntityFeatures:
        """The features of N entities from raw values: row n maps a feature name to its value
        (a string, a list of strings, a number; None or absent when unknown)."""
        rows = [row or {} for row in rows]
        categorical = None
        if self.categorical:
            codes = [{value: k + 1 for k, value in enumerate(vocabulary)} for vocabulary in self.categorical.values()]
            categorical = np.array([[code.get(row.get(name), 0) for name, code in zip(self.categorical, codes, strict=True)]
                                    for row in rows], dtype=np.int64).reshape(len(rows), len(codes))
        multi = []
        for name, vocabulary in self.multi_valued.items():
            code = {value: k for k, value in enumerate(vocabulary)}
            lists = [[code[v] for v in _values(row.get(name)) if v in code] for row in rows]
            padded = np.full((len(rows), max((len(values) for values in lists), default=0)), PAD, dtype=np.int64)
            for r, values in enumerate(lists):
                padded[r, : len(values)] = values
            multi.append(padded)
        numeric = None
        if self.numeric:
            columns = [np.array([_number(row.get(name)) for row in rows], dtype=np.float64) for name in self.numeric]
            numeric = np.stack([self._standardized(n, c) for n, c in zip(self.numeric, columns, strict=True)], axis=1)
            numeric = numeric.reshape(len(rows), len(self.numeric))
        return EntityFeatures(self.sizes, categorical, tuple(multi), numeric)

    def _standardized(self, name: str, values: np.ndarray) -> np.ndarray:
        """float32 (N,) from float64 values, NaN where missing."""
        mean, std = self.numeric[name]
        out = np.zeros(len(values), dtype=np.float32)
        known = ~np.isnan(values)
        if std > 0:
            out[known] = (values[known] - mean) / std
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "categorical": {n: list(v) for n, v in self.categorical.items()},
            "multi_valued": {n: list(v) for n, v in self.multi_valued.items()},
            "numeric": {n: list(stats) for n, stats in self.numeric.items()},
        }

    @classmethod
    def from_dict(cls, meta: Mapping[str, Any]) -> FeatureCodec:
        return cls(
            {n: tuple(v) for n, v in meta["categorical"].items()},
            {n: tuple(v) for n, v in meta["multi_valued"].items()},
            {n: (float(stats[0]), float(stats[1])) for n, stats in meta["numeric"].items()},
        )


def _number(value: Any) -> float:
    if value is None:
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"a numeric feature must be a number or None, got {value!r}") from None


def _values(value: Any) -> Sequence:
    # A list, a tuple or a numpy array (what a DataFrame of pyarrow lists holds); None: no values.
    return () if value is None else value

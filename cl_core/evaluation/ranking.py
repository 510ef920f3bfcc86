"""Top-k recommendation metrics: recall@k, NDCG@k, MRR and catalogue coverage@k.

Protocol (the "all-ranking" evaluation of RecBole and of Krichene & Rendle 2020, "On Sampled
Metrics for Item Recommendation"): each evaluated user scores every item; the items it has in
training are excluded (except its own test items, should it have both); its held-out test items
T (one in leave-last-one-out, maybe more) are ranked among the remaining candidates. A target's
rank r is the number of candidates scoring at least as high as it (ties counted against it, as
in `cl_core.evaluation.retrieval`, so a constant scorer gets no credit for ties). Per user:
    recall@k   = |{t in T : r_t <= k}| / |T|,
    NDCG@k     = sum_{t in T, r_t <= k} 1 / log2(r_t + 1)  /  sum_{i=1..min(k, |T|)} 1 / log2(i + 1),
    MRR        = 1 / min_t r_t over the full ranking (not cut at k),
averaged over the users with test items; coverage@k = |union of the users' top-k lists| / number
of items. `rank_users` also gives each user's values (what a bootstrap interval resamples). From
top-k lists alone (`ranking_metrics_from_top_k`) a target outside the list has no
rank, so the reciprocal rank is cut at the list length K: "mrr_at_K".

Metric names use "_at_" (recall_at_10): MLflow metric keys cannot hold "@".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

DEFAULT_KS = (10, 20)

ScoreFn = Callable[[np.ndarray], "torch.Tensor | np.ndarray"]


class UserItems:
    """(user, item) pairs grouped by user: the items of a batch of users as a (b, I) mask."""

    def __init__(self, users: np.ndarray, items: np.ndarray, num_users: int, num_items: int) -> None:
        users, items = np.asarray(users, dtype=np.int64), np.asarray(items, dtype=np.int64)
        if users.shape != items.shape or users.ndim != 1:
            raise ValueError(f"users and items must be (N,) alike, got {users.shape} and {items.shape}")
        for name, values, size in (("users", users, num_users), ("items", items, num_items)):
            if values.size and (values.min() < 0 or values.max() >= size):
                raise ValueError(f"{name} must be indices in 0..{size - 1}, got {values.min()}..{values.max()}")
        order = np.argsort(users, kind="stable")
        self.items = items[order]
        self.indptr = np.r_[0, np.cumsum(np.bincount(users, minlength=num_users))]
        self.num_items = num_items

    def counts(self, users: np.ndarray) -> np.ndarray:
        return self.indptr[users + 1] - self.indptr[users]

    def mask(self, users: np.ndarray) -> torch.Tensor:
        """(b, I) bool: True where users[row] has the item."""
        lengths = self.counts(users)
        rows = np.repeat(np.arange(len(users)), lengths)
        columns = np.concatenate([self.items[self.indptr[u] : self.indptr[u + 1]] for u in users]) if len(users) else []
        mask = torch.zeros(len(users), self.num_items, dtype=torch.bool)
        mask[torch.as_tensor(rows, dtype=torch.long), torch.as_tensor(columns, dtype=torch.long)] = True
        return mask


class _Totals:
    """Each evaluated user's value of each metric, and the union of the top-k lists."""

    def __init__(self, ks: Sequence[int], num_items: int) -> None:
        self.ks, self.num_items = tuple(ks), num_items
        self.values: dict[str, list[torch.Tensor]] = {}
        self.evaluated: list[np.ndarray] = []
        self.listed = {k: torch.zeros(num_items, dtype=torch.bool) for k in self.ks}

    def add(self, users: np.ndarray, target_ranks: torch.Tensor, targets: torch.Tensor, top: torch.Tensor,
            top_valid: torch.Tensor, rr_key: str) -> None:
        """users: (b,) who the rows are; target_ranks: (b, I) float rank of each target item, inf
        elsewhere and for a target with no rank; targets: (b, I) bool; top, top_valid: (b, K)
        top-k items and which of them are candidates."""
        count = targets.sum(dim=1).double()  # (b,)
        ranks = target_ranks.double()
        discount = torch.where(torch.isfinite(ranks), 1.0 / torch.log2(ranks + 1.0), torch.zeros_like(ranks))
        ideal = torch.cumsum(1.0 / torch.log2(torch.arange(2, max(self.ks) + 2, dtype=torch.float64)), dim=0)
        for k in self.ks:
            hit = ranks <= k
            self._add(f"recall_at_{k}", hit.sum(dim=1) / count)
            best = ideal[(count.clamp(max=k) - 1).long()]
            self._add(f"ndcg_at_{k}", (discount * hit).sum(dim=1) / best)
            self.listed[k][top[:, :k][top_valid[:, :k]]] = True
        self._add(rr_key, 1.0 / ranks.min(dim=1).values)
        self.evaluated.append(np.asarray(users, dtype=np.int64))

    def _add(self, key: str, per_user: torch.Tensor) -> None:
        self.values.setdefault(key, []).append(per_user)

    def result(self) -> Ranking:
        users = np.concatenate(self.evaluated) if self.evaluated else np.zeros(0, np.int64)
        per_user = {key: torch.cat(parts).numpy() for key, parts in self.values.items()}
        metrics = {key: float(values.sum()) / len(users) for key, values in per_user.items()}
        metrics.update({f"coverage_at_{k}": float(self.listed[k].sum()) / self.num_items for k in self.ks})
        return Ranking({**metrics, "users": float(len(users))}, users, per_user)


@dataclass(frozen=True)
class Ranking:
    """What ranking gives: the metrics ({"recall_at_k", "ndcg_at_k", "coverage_at_k", "mrr",
    "users"}), the evaluated users (n,) and each one's recall, NDCG and reciprocal rank
    (`per_user`: key -> (n,) float64, row r for users[r]): what an interval resamples
    (`cl_core.evaluation.intervals.mean_interval`); a metric is the mean of its column."""

    metrics: dict[str, float]
    users: np.ndarray
    per_user: dict[str, np.ndarray]


def _check(ks: Sequence[int], num_items: int) -> None:
    if not ks or min(ks) < 1:
        raise ValueError(f"ks must be cut-offs >= 1, got {tuple(ks)}")
    if num_items < 1:
        raise ValueError(f"num_items must be >= 1, got {num_items}")


def ranking_metrics(
    score_fn: ScoreFn,
    num_users: int,
    num_items: int,
    train: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    ks: Sequence[int] = DEFAULT_KS,
    batch_size: int = 1024,
) -> dict[str, float]:
    """The metrics of a scorer over the users with test items (`rank_users`'s `metrics`)."""
    return rank_users(score_fn, num_users, num_items, train, test, ks, batch_size).metrics


@torch.no_grad()
def rank_users(
    score_fn: ScoreFn,
    num_users: int,
    num_items: int,
    train: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    ks: Sequence[int] = DEFAULT_KS,
    batch_size: int = 1024,
) -> Ranking:
    """The metrics of a scorer over the users with test items, with each user's values.

    Args:
        score_fn: users (b,) int64 -> (b, num_items) scores, higher is better (a model's user
            vectors times its item vectors, a baseline's `scores`).
        train, test: (users, items) index pairs (N,) each: what is excluded, what is held out.
        ks: the cut-offs k.
        batch_size: users scored at once; memory is O(batch_size x num_items).

    Returns a `Ranking`: metrics {"recall_at_k", "ndcg_at_k", "coverage_at_k" for each k, "mrr",
    "users"}, and per user "recall_at_k", "ndcg_at_k", "mrr".
    """
    _check(ks, num_items)
    seen = UserItems(*train, num_users, num_items)
    held_out = UserItems(*test, num_users, num_items)
    users = np.unique(np.asarray(test[0], dtype=np.int64))
    totals = _Totals(ks, num_items)
    for start in range(0, len(users), batch_size):
        chunk = users[start : start + batch_size]
        scores = torch.as_tensor(score_fn(chunk)).detach().cpu().double()  # (b, I)
        if scores.shape != (len(chunk), num_items):
            raise ValueError(f"score_fn gave scores of shape {tuple(scores.shape)} for {len(chunk)} users, "
                             f"expected ({len(chunk)}, {num_items})")
        finite = torch.isfinite(scores).all(dim=1)
        if not finite.all():
            raise ValueError(f"score_fn gave a NaN or infinite score to user {int(chunk[int((~finite).nonzero()[0])])}")
        targets = held_out.mask(chunk)
        candidates = ~seen.mask(chunk) | targets  # (b, I)
        scores = scores.masked_fill(~candidates, float("-inf"))
        target_scores = torch.where(targets, scores, torch.full_like(scores, float("inf")))  # (b, I)
        # rank of target t = candidates scoring >= s_t: compare against the sorted candidate scores.
        ascending = torch.sort(scores, dim=1).values  # (b, I), excluded (-inf) first
        below = torch.searchsorted(ascending, target_scores, right=False)  # (b, I) items scoring < s_t
        ranks = torch.where(targets, (num_items - below).double(), torch.full_like(scores, float("inf")))
        top_scores, top = torch.topk(scores, min(max(ks), num_items), dim=1)
        totals.add(chunk, ranks, targets, top, torch.isfinite(top_scores), "mrr")
    return totals.result()


def ranking_metrics_from_top_k(
    top_k: np.ndarray | torch.Tensor,
    users: np.ndarray,
    num_users: int,
    num_items: int,
    test: tuple[np.ndarray, np.ndarray],
    ks: Sequence[int] = DEFAULT_KS,
) -> dict[str, float]:
    """The metrics of ranked lists: top_k (U, K) item indices, best first, the training items
    already left out, for `users` (U,). Every user with test items must have a list; cut-offs
    above K are refused. Returns the keys of `ranking_metrics`, with "mrr_at_K" for "mrr"."""
    _check(ks, num_items)
    top = torch.as_tensor(np.asarray(top_k), dtype=torch.long)
    users = np.asarray(users, dtype=np.int64)
    if top.dim() != 2 or top.shape[0] != len(users):
        raise ValueError(f"top_k must be ({len(users)}, K), got {tuple(top.shape)}")
    width = top.shape[1]
    if max(ks) > width:
        raise ValueError(f"cut-off {max(ks)} is longer than the lists ({width} items)")
    missing = np.setdiff1d(np.asarray(test[0], dtype=np.int64), users)
    if missing.size:
        raise ValueError(f"user {int(missing[0])} has test items but no top-k list")
    held_out = UserItems(*test, num_users, num_items)
    targets = held_out.mask(users)  # (U, I)
    positions = torch.full((len(users), num_items), float("inf"), dtype=torch.float64)
    positions.scatter_(1, top, torch.arange(1, width + 1, dtype=torch.float64).expand(len(users), width))
    has_targets = targets.any(dim=1)
    ranks = torch.where(targets, positions, torch.full_like(positions, float("inf")))
    totals = _Totals(ks, num_items)
    rows = has_targets.nonzero().flatten()
    totals.add(users[rows.numpy()], ranks[rows], targets[rows], top[rows], torch.ones_like(top[rows], dtype=torch.bool),
               f"mrr_at_{width}")
    return totals.result().metrics

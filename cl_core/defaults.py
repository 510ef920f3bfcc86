"""Defaults that both the run config and the library functions below it take, written once.

The config's fields (`data.max_member_bytes`, `data.val_fraction`, `export.snapshot_grace`,
`export.exact_search_max_rows`) and
the functions a user may call without a config (`read_shard`, `open_source`, `EmbeddingTable`)
read them from here. The module
imports nothing, so the config reads it without loading pyarrow or pandas."""

# The largest tar member read into memory: far above any image or label a shard should hold (an
# ImageNet JPEG is ~110 KB), far below what would strain a worker. A larger one is quarantined
# unread, with its name and size.
MAX_MEMBER_BYTES = 64 * 2**20

# How long a superseded snapshot stays readable for a reader that opened it: a scan, a notebook
# or a serving replica switching over finishes in minutes, and an hourly refresh then keeps at
# most keep+1 snapshots.
SNAPSHOT_GRACE_S = 3600.0

# The share of a source's train rows that becomes its val split when the source names none
# (CIFAR-10's train and test shards): 5,000 of CIFAR-10's 50,000, enough for a kNN top-1 interval
# of about +-1.3 points, while training keeps 90 % of its rows.
VAL_FRACTION = 0.1

# A group of a snapshot's rows (all of an image or text table; a recommender's users, its items)
# of at most this many rows is searched exactly, with no index file: exact search is never wrong
# and costs no build. Measured (benchmarks/ann_engines.py --exact-sizes, docs/search.md): at 20,000
# 128-d rows an exact query takes 0.45 ms on one core against the graph's 0.1 ms; the difference
# is a small part of what the service takes to answer (6.5 ms p50 at concurrency 1).
EXACT_SEARCH_MAX_ROWS = 20_000

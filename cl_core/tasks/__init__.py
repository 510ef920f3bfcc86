"""Training tasks: what one data-parallel worker trains for each modality (its shard, model,
views or tokenizer, objective and step), plus the sharding rule, the optimizer and the LR
schedule. No Ray here: `flows.ray_edge.train_worker` runs a task inside Ray Train, and a test can run one
directly."""

from __future__ import annotations

from cl_core.tasks.optimizer import build_optimizer, parameter_groups
from cl_core.tasks.schedule import warmup_cosine
from cl_core.tasks.sharding import shard_rows
from cl_core.tasks.worker_task import WorkerTask, build_task

__all__ = ["WorkerTask", "build_optimizer", "build_task", "parameter_groups", "shard_rows", "warmup_cosine"]

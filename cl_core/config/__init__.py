"""Typed configuration of a pipeline run (moved to `cl_core.config.pipeline`; re-exported here)."""

from cl_core.config.pipeline import *  # noqa: F403

"""`clpipe sweep`: many training runs of one config over a space file's ranges, on Ray Tune with
early stopping (flows/sweep_flow.py). The config and the space are both validated before anything
starts: a wrong key or bound exits 2 naming it."""

from __future__ import annotations

import argparse
from typing import Any

from cl_core.config import ConfigError, PipelineConfig
from cl_core.config.sweep_space import SweepSpace, load_space
from flows.cli.flow_command import FlowCommand
from flows.cli.overrides import config_from_flags
from flows.cli.summary import mlflow_ui_command
from flows.mlflow_edge.headline_metrics import higher_is_better
from flows.workspace import Workspace


def _space(args: argparse.Namespace, cfg: PipelineConfig) -> SweepSpace:
    return load_space(args.space, cfg, {"epochs": args.epochs, "trials": args.trials, "max_concurrent": args.max_concurrent})


def _config(args: argparse.Namespace, workspace: Workspace) -> PipelineConfig | None:
    """None for `--resume`: the sweep's own config and space apply."""
    if args.resume:
        given = [flag for flag, value in (("--space", args.space), ("--config", args.config), ("--trials", args.trials),
                                          ("--max-concurrent", args.max_concurrent), ("--epochs", args.epochs),
                                          ("--limit", args.limit)) if value is not None]
        if given:
            raise ConfigError(f"--resume continues a sweep with its own config and space; drop {', '.join(given)}")
        return None
    if args.space is None:
        raise ConfigError("sweep needs --space SPACE.yaml (or --resume SWEEP_RUN_ID)")
    cfg = config_from_flags(args, workspace)
    return _space(args, cfg).budgeted(cfg)  # a bad space fails here, before anything starts


def _check(args: argparse.Namespace, workspace: Workspace, cfg: PipelineConfig | None) -> None:
    from flows import preflight

    if cfg is not None:
        preflight.check_data_source(cfg.data)


def _sweep(args: argparse.Namespace, workspace: Workspace, cfg: PipelineConfig | None) -> dict[str, Any]:
    from flows.sweep_flow import sweep_flow

    if args.resume:
        summary = sweep_flow(None, None, str(workspace.root), args.ray_address, resume_run_id=args.resume)
    else:
        summary = sweep_flow(cfg, _space(args, cfg), str(workspace.root), args.ray_address,
                             str(args.config) if args.config else None, str(args.space))
    summary["mlflow_ui"] = mlflow_ui_command(workspace)
    return summary


def print_sweep_summary(summary: dict[str, Any], workspace: Workspace) -> None:
    metric, best = summary["metric"], summary["best"]
    keys = list(best["overrides"])
    lines = ["", f"clpipe sweep finished: run {summary['sweep_run_id']}",
             f"  trials         {len(summary['trials'])}: {summary['sweep.trials_finished']} finished, "
             f"{summary['sweep.trials_stopped_early']} stopped early, {summary['sweep.trials_failed']} failed; "
             f"{summary['sweep.epochs_trained']} of {summary['sweep.epochs_budget']} epochs trained",
             f"  {'trial':<14} {'epochs':>6} {metric:>20}  " + "  ".join(keys)]
    sign = -1 if higher_is_better(metric) else 1
    ranked = sorted(summary["trials"], key=lambda t: (t[metric] is None, sign * (t[metric] or 0.0)))
    for trial in ranked:
        value = "failed" if trial[metric] is None else f"{trial[metric]:.4f}"
        mark = " (stopped early)" if trial["stopped_early"] else ""
        lines.append(f"  {trial['trial_id']:<14} {trial['epochs']:>6} {value:>20}  "
                     + "  ".join(f"{trial[key]:.4g}" if isinstance(trial[key], float) else str(trial[key]) for key in keys)
                     + mark)
    lines += [f"  best           {best['trial_id']} ({metric} {best['value']:.4f}), run {best['run_id']}",
              f"  model          {summary['model_name']} v{summary['model_version']}  aliases "
              f"{summary['promotion']['aliases']}",
              f"  promotion      {summary['promotion']['reason']}",
              f"  compare        clpipe compare --sweep {summary['sweep_run_id']}",
              f"  mlflow ui      {summary['mlflow_ui']}"]
    if summary.get("log"):
        lines.append(f"  log            {summary['log']}")
    print("\n".join(lines))


SWEEP = FlowCommand(_config, _check, _sweep, human_summary=print_sweep_summary)

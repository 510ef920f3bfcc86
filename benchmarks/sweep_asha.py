"""ASHA against random search without early stopping, on digits with a fixed budget of epochs:
the best val kNN top-1 each finds and the epochs each spends (the issue's aim: the same best
metric within its interval for at most 0.6 of the epochs), and trials per hour on this machine.

    .venv/bin/python benchmarks/sweep_asha.py [--trials 8] [--epochs 12] [--space configs/spaces/digits.yaml]

Both sweeps run `clpipe sweep` on the same config (configs/digits.yaml), the same space file and
the same seed, so they sample the same trials in the same order; one uses the space's ASHA
scheduler, the other `scheduler: {name: none}` (every trial trains every epoch). One trial at a
time (the space's max_concurrent), each on the config's 2 Ray Train workers, one after the other
in fresh workspaces (the same digits version). Epochs spent are the epochs each trial's run
logged (a trial ASHA stops may finish another epoch before the stop reaches it). Prints, never
asserts.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import yaml

from _common import REPO, clpipe, table


def sweep(root: Path, name: str, space: dict, trials: int, epochs: int) -> tuple[dict, float]:
    space_file = root / f"{name}.yaml"
    space_file.write_text(yaml.safe_dump(space))
    return clpipe(root / name, "sweep", "--config", str(REPO / "configs" / "digits.yaml"), "--space", str(space_file),
                  "--trials", str(trials), "--epochs", str(epochs), "--json")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--space", type=Path, default=REPO / "configs" / "spaces" / "digits.yaml")
    args = parser.parse_args()
    asha_space = yaml.safe_load(args.space.read_text())
    random_space = {**asha_space, "scheduler": {"name": "none"}}
    with tempfile.TemporaryDirectory() as folder:
        results = {name: sweep(Path(folder), name, space, args.trials, args.epochs)
                   for name, space in (("random", random_space), ("asha", asha_space))}
    rows = []
    for name, (summary, wall) in results.items():
        best = summary["best"]
        low, high = best["interval"]
        rows.append((name, len(summary["trials"]), summary["sweep.trials_stopped_early"],
                     f"{summary['sweep.epochs_trained']} of {summary['sweep.epochs_budget']}",
                     f"{best['value']:.4f} [{low:.4f}, {high:.4f}]", f"{wall:.0f}",
                     f"{len(summary['trials']) * 3600 / wall:.0f}"))
        for trial in summary["trials"]:
            values = {key: trial[key] for key in best["overrides"]}
            print(f"{name} {trial['trial_id']}: {values}, {trial['epochs_trained']} epochs, {trial[summary['metric']]}")
    print(table(rows, ("search", "trials", "stopped early", "epochs trained", "best val kNN top-1 [95 % interval]",
                       "wall s", "trials/hour")))
    (random_summary, _), (asha_summary, _) = results["random"], results["asha"]
    same = [t["train.lr"] for t in random_summary["trials"]] == [t["train.lr"] for t in asha_summary["trials"]]
    low, high = random_summary["best"]["interval"]
    ratio = asha_summary["sweep.epochs_trained"] / random_summary["sweep.epochs_trained"]
    print(f"same trials sampled in both: {same}")
    print(f"ASHA's best {asha_summary['best']['value']:.4f} inside random search's interval [{low:.4f}, {high:.4f}]: "
          f"{low <= asha_summary['best']['value'] <= high}; epochs ASHA / random: {ratio:.2f} (aim <= 0.6)")


if __name__ == "__main__":
    main()

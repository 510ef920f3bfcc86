"""A sweep's space file: which config keys a sweep samples, from which ranges, and its budget.

    epochs: 12             # per trial, the scheduler's budget (default: the config's train.epochs)
    trials: 8              # how many configurations are sampled
    max_concurrent: 2      # trials training at once on the cluster
    seed: 0                # the sampler's seed: the same file samples the same trials
    scheduler:
      name: asha           # stop weak trials early at rungs; "none": every trial runs every epoch
      grace_epochs: 2      # no trial is stopped before this many epochs
      reduction_factor: 2  # keep the best 1/reduction_factor of the trials at each rung
    params:
      train.lr: {loguniform: [0.0005, 0.01]}
      loss.temperature: {choice: [0.1, 0.2, 0.5]}
      views.jitter_strength: {uniform: [0.2, 0.8]}
      model.proj_dim: {randint: [32, 129]}   # [low, high): high is excluded, as in Ray Tune

Everything is checked against the run's typed config before anything starts (`load_space`): a
key must name a field of a section a sweep may vary (model, views, loss, train, without the
fields that say how a run uses the cluster), and every choice and both bounds of a range must
validate as that field's value. A failure is a `ConfigError` naming the file and the key.
No Ray here: `flows.ray_edge.sweep` turns each `Distribution` into Ray Tune's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, Field, ValidationError, model_validator

from cl_core.config.base import ConfigError, _Section
from cl_core.config.loading import build_config, read_yaml_mapping
from cl_core.config.pipeline import PipelineConfig

DISTRIBUTIONS = ("choice", "uniform", "loguniform", "randint")
# The sections a sweep varies: how the model is built and trained. The others say what is
# measured (data, eval), where the model goes (registry) or how the table is kept (ingest, export).
SWEEPABLE_SECTIONS = ("model", "views", "loss", "train")
# Fields of those sections a sweep leaves alone, with why.
NOT_SWEPT = {
    "train.epochs": "it is the scheduler's budget: every trial trains up to the config's train.epochs",
    "train.workers": "it sizes each trial on the cluster; set it in the config",
    "train.cpus_per_worker": "it sizes each trial on the cluster; set it in the config",
    "train.gpu": "it sizes each trial on the cluster; set it in the config",
    "train.placement_strategy": "it places each trial on the cluster; set it in the config",
    "train.max_failures": "it is how a trial recovers, not what it learns; set it in the config",
    "train.num_to_keep": "it is how a trial keeps checkpoints, not what it learns; set it in the config",
}


class Distribution(_Section):
    """One key's range: `kind` one of DISTRIBUTIONS and its arguments (choice: the values;
    uniform, loguniform: [low, high]; randint: [low, high) of integers)."""

    kind: Literal[DISTRIBUTIONS]
    args: tuple[Any, ...]

    @classmethod
    def parse(cls, key: str, raw: Any) -> Distribution:
        if not isinstance(raw, dict) or len(raw) != 1:
            raise ValueError(f"{key}: give one of {', '.join(DISTRIBUTIONS)}, e.g. {{loguniform: [0.0001, 0.01]}}; "
                             f"got {raw!r}")
        (kind, args), = raw.items()
        if kind not in DISTRIBUTIONS:
            raise ValueError(f"{key}: unknown range {kind!r}; use one of {', '.join(DISTRIBUTIONS)}")
        if not isinstance(args, list) or not args:
            raise ValueError(f"{key}: {kind} takes a non-empty list, got {args!r}")
        if kind == "choice":
            return cls(kind=kind, args=tuple(args))
        if len(args) != 2:
            raise ValueError(f"{key}: {kind} takes [low, high], got {args!r}")
        low, high = args
        numbers = (int,) if kind == "randint" else (int, float)
        if not all(isinstance(bound, numbers) and not isinstance(bound, bool) for bound in args):
            what = "integers" if kind == "randint" else "numbers"
            raise ValueError(f"{key}: {kind} bounds must be {what}, got {args!r}")
        if not low < high:
            raise ValueError(f"{key}: {kind} needs low < high, got [{low}, {high}]")
        if kind == "loguniform" and low <= 0:
            raise ValueError(f"{key}: loguniform needs 0 < low, got {low}")
        return cls(kind=kind, args=(low, high))

    def values_to_check(self) -> tuple[Any, ...]:
        """The values that must each validate as the field's: every choice, both ends of a range
        (randint's high is excluded, so high - 1)."""
        if self.kind == "choice":
            return self.args
        low, high = self.args
        return (low, high - 1) if self.kind == "randint" else (low, high)

    def __str__(self) -> str:
        return f"{self.kind}({', '.join(str(arg) for arg in self.args)})"


class SchedulerSpec(_Section):
    name: Literal["asha", "none"] = "asha"
    grace_epochs: int = Field(1, ge=1)
    reduction_factor: float = Field(2.0, gt=1.0)


class SweepSpace(_Section):
    # Epochs per trial, the scheduler's budget; None: the config's train.epochs.
    epochs: int | None = Field(None, ge=1)
    trials: int = Field(8, ge=1)
    max_concurrent: int = Field(1, ge=1)
    seed: int = 0
    scheduler: SchedulerSpec = SchedulerSpec()
    params: dict[str, Distribution]

    @model_validator(mode="before")
    @classmethod
    def _parse_params(cls, raw: Any) -> Any:
        if not isinstance(raw, dict):
            return raw
        params = raw.get("params")
        if not isinstance(params, dict) or not params:
            raise ValueError("params: name at least one config key and its range, e.g. "
                             "{train.lr: {loguniform: [0.0005, 0.01]}}")
        return {**raw, "params": {key: Distribution.parse(key, value) for key, value in params.items()}}

    def as_file(self) -> dict[str, Any]:
        """The space as a space file holds it (what `SweepSpace.model_validate` reads back)."""
        dumped = self.model_dump(mode="json", exclude={"params"})
        return {**dumped, "params": {key: {d.kind: list(d.args)} for key, d in self.params.items()}}

    def budgeted(self, config: PipelineConfig) -> PipelineConfig:
        """`config` with the space's epochs per trial, when it sets them."""
        if self.epochs is None:
            return config
        return config.model_copy(update={"train": config.train.model_copy(update={"epochs": self.epochs})})


def _field(key: str) -> Any:
    """The pydantic field a dotted key names in `PipelineConfig`, or a ValueError saying why it
    cannot be swept."""
    if key in NOT_SWEPT:
        raise ValueError(f"{key} cannot be swept: {NOT_SWEPT[key]}")
    parts = key.split(".")
    if parts[0] not in SWEEPABLE_SECTIONS:
        known = ", ".join(PipelineConfig.model_fields)
        if parts[0] in PipelineConfig.model_fields:
            raise ValueError(f"{key} cannot be swept: a sweep varies {', '.join(SWEEPABLE_SECTIONS)}, "
                             f"not {parts[0]} (it says what is measured or where the results go)")
        raise ValueError(f"{key}: unknown section {parts[0]!r} (sections: {known})")
    model: type[BaseModel] = PipelineConfig
    field = None
    for depth, part in enumerate(parts):
        if model is None or part not in model.model_fields:
            where = ".".join(parts[:depth]) or "the config"
            fields = ", ".join(model.model_fields) if model is not None else "none: it is a value"
            raise ValueError(f"{key}: {where} has no field {part!r} (fields: {fields})")
        field = model.model_fields[part]
        annotation = field.annotation
        model = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    if model is not None:
        raise ValueError(f"{key} is a section; name one of its fields ({', '.join(model.model_fields)})")
    return field


def _is_integer_field(field: Any) -> bool:
    annotation = field.annotation
    options = get_args(annotation) or (annotation,)
    return int in options and float not in options


def _check_key(key: str, distribution: Distribution, base: dict[str, Any]) -> None:
    field = _field(key)
    if distribution.kind in ("uniform", "loguniform") and _is_integer_field(field):
        raise ValueError(f"{key} holds integers: use randint or choice, not {distribution.kind}")
    for value in distribution.values_to_check():
        try:
            build_config(base, {key: value}, origin=f"the config with {key}={value!r}")
        except ConfigError as error:
            reason = str(error).split("\n", 1)[-1].strip()
            raise ValueError(f"{key}: {value!r} of {distribution} is not a valid value: {reason}") from None


def validate_space(space: SweepSpace, config: PipelineConfig) -> None:
    """Raise ValueError naming the key when the space cannot be swept over `config`."""
    config = space.budgeted(config)
    base = config.model_dump(mode="json")
    for key, distribution in space.params.items():
        _check_key(key, distribution, base)
    epochs = config.train.epochs
    if space.scheduler.name == "asha" and space.scheduler.grace_epochs >= epochs:
        raise ValueError(f"scheduler.grace_epochs {space.scheduler.grace_epochs} leaves ASHA no epoch to stop a trial "
                         f"at: each trial trains {epochs} epochs (epochs, else the config's train.epochs); "
                         "raise epochs, lower grace_epochs or use scheduler.name none")


def read_space(path: str | Path) -> dict[str, Any]:
    return read_yaml_mapping(path, "space file", "params, epochs, trials, max_concurrent, seed, scheduler")


def build_space(raw: dict[str, Any], config: PipelineConfig, origin: str,
                overrides: dict[str, Any] | None = None) -> SweepSpace:
    """The validated space of `raw` (a space file's mapping) over `config`; `overrides` (the CLI's
    --epochs, --trials and --max-concurrent) replace the file's values when not None."""
    merged = {**raw, **{key: value for key, value in (overrides or {}).items() if value is not None}}
    try:
        space = SweepSpace.model_validate(merged)
        validate_space(space, config)
    except ValidationError as error:
        lines = [f"  {'.'.join(str(p) for p in item['loc']) or 'params'}: {item['msg'].removeprefix('Value error, ')}"
                 for item in error.errors()]
        raise ConfigError("\n".join([f"invalid sweep space ({origin}):", *lines])) from None
    except ValueError as error:
        raise ConfigError(f"invalid sweep space ({origin}): {error}") from None
    return space


def load_space(path: str | Path, config: PipelineConfig, overrides: dict[str, Any] | None = None) -> SweepSpace:
    """Read and validate a space file against `config`."""
    return build_space(read_space(path), config, str(path), overrides)


def describe(space: SweepSpace) -> dict[str, str]:
    """Each key's range as text, e.g. {"train.lr": "loguniform(0.0005, 0.01)"} (MLflow params)."""
    return {key: str(distribution) for key, distribution in space.params.items()}


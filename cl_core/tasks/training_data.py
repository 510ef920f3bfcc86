"""What a dataset version gives the training of a run config, per modality (each record's
"training_data" part, `cl_core.modalities`): (rows, what they are, why this data cannot train the
config or None). The train flow compares the rows with train.batch_size before Ray starts."""

from __future__ import annotations

from cl_core.config import PipelineConfig
from cl_core.datasets import DatasetVersion

TrainingData = tuple[int, str, str | None]


def image(dataset: DatasetVersion, config: PipelineConfig) -> TrainingData:
    """The train split's rows; a loss that reads labels needs every row labelled."""
    unlabelled = dataset.unlabeled_rows
    problem = None
    if config.loss.uses_labels and unlabelled:
        problem = (f"loss {config.loss.name} (mask_same_label={config.loss.mask_same_label}) needs labels, but dataset "
                   f"{dataset.name}@{dataset.version} has {unlabelled} unlabelled rows")
    return dataset.num_rows("train"), "train rows", problem


def text(dataset: DatasetVersion, config: PipelineConfig) -> TrainingData:
    """The training examples the config's loss makes of the version."""
    from cl_core.tasks.text import training_examples

    return len(training_examples(dataset, config)), f"training examples for loss {config.loss.name}", None


def interactions(dataset: DatasetVersion, config: PipelineConfig) -> TrainingData:
    """The interactions the two towers are fitted on: the train split (val chooses and gates)."""
    from cl_core.recommender.dataset import TRAIN_SPLITS

    return sum(dataset.num_rows(split) for split in TRAIN_SPLITS), f"{' and '.join(TRAIN_SPLITS)} interactions", None

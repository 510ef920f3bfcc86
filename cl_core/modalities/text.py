"""Text: a version of sentence pairs (with an optional score), a pretrained sentence encoder
fine-tuned on them, scored by STS correlation (or, without gold scores, pair retrieval)."""

from types import MappingProxyType

from cl_core.modalities.record import Modality, PrimaryMetric

TEXT = Modality(
    name="text",
    noun="text",
    primary=PrimaryMetric("sts_spearman", fallback="mrr_at_10"),  # STS Spearman; no gold scores: MRR@10
    input_column="text",
    evaluation="STS correlation (with a bootstrap interval) and pair retrieval on the val split (what the gate reads) "
               "and the test split (reported), next to the pretrained encoder",
    forms=("pairs", "sentences", "scored_pairs"),
    # The image-first defaults would wreck a pretrained sentence encoder: text gets the usual
    # fine-tuning settings (sentence-transformers') for every field a config leaves out.
    defaults=MappingProxyType({
        "loss": {"name": "mnrl", "temperature": 0.05},  # scale 20
        "train": {"epochs": 1, "batch_size": 32, "lr": 2e-5, "weight_decay": 0.01, "warmup_epochs": 0},
    }),
    trains="text fine-tunes model.text_encoder",
    # Whichever text objective fine-tuned the encoder, it is the dataset's text model.
    model_name_suffix="text",
    source_section="text",
    model_noun="text encoder",
    model_tag="encoder",
    architecture=lambda config: config.model.text_encoder,  # the pretrained encoder it fine-tunes
    query="text",
    parts=MappingProxyType({
        "schema": "cl_core.datasets.sources.text.records:TEXT_SCHEMA",
        "spec": "cl_core.models.spec:TextModelSpec",
        "task": "cl_core.tasks.text:TextTask",
        "rows": "cl_core.embeddings.text_rows",
        "training_data": "cl_core.tasks.training_data:text",
        "check_source": "cl_core.datasets.sources.source_checks:text",
        "ingest": "cl_core.datasets.sources.text.ingest:ingest_source",
        "protocol": "cl_core.evaluation.text_protocol",
    }),
)

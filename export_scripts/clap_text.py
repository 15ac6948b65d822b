"""LAION-CLAP's text tower for export: RoBERTa-base + the text projection, no ``transformers``, no ``laion_clap``.

A LAION-CLAP checkpoint holds the whole ``CLAP`` model; ``CLAP_Module.get_text_embedding`` tokenises captions with
roberta-base's tokenizer (77 ids, padded and truncated), runs ``text_branch`` (transformers' ``RobertaModel``, whose
``pooler_output`` is ``tanh(dense(h[:, 0]))``), ``text_projection`` (Linear 768->512, ReLU, Linear 512->512) and L2
normalises: 512 values per caption (``text_transform`` is used in training only). This module builds the same
network in plain torch from the checkpoint's ``text_branch.*`` and ``text_projection.*`` keys:

- positions as ``create_position_ids_from_input_ids`` numbers them: ``padding_idx`` + the running count of
  non-padding ids, ``padding_idx`` itself on padding (so they depend on the ids, not on the attention mask);
- the embedding sum in RoBERTa's order (word + token type 0, then + position), LayerNorm (eps 1e-5);
- 12 post-LayerNorm layers: self-attention through ``scaled_dot_product_attention`` with the additive mask
  transformers builds (``finfo.min`` on padding keys), exact (erf) GELU in the feed-forward.

The tokenizer files (``vocab.json``, ``merges.txt`` of roberta-base) travel beside the artifact; their sha256 is
sealed in the manifest's ``frontend`` and checked by the runtime's tokenizer (``audiofidelity/tokenizer.py``).

References: Liu et al. 2019 (RoBERTa); transformers 4.x ``models/roberta/modeling_roberta.py``; laion_clap
``clap_module/model.py`` (``CLAP.encode_text``, ``get_text_embedding``) and ``hook.py`` (``tokenizer``).
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .checkpoints import clap_state_dict, load_strict

WIDTH, LAYERS, HEADS, INTERMEDIATE, VOCAB, POSITIONS, EPS = 768, 12, 12, 3072, 50265, 514, 1e-5
"""roberta-base's configuration."""
PAD_ID, JOINT_DIM, MAX_LENGTH, MAX_TOKENS = 1, 512, 77, POSITIONS - 2
"""``MAX_LENGTH``: LAION-CLAP's caption length; the tokens axis is dynamic up to ``MAX_TOKENS`` (RoBERTa's positions
after the two reserved ones), audioldm_eval's CLAP score's 512."""
CITATION = ("Wu, Y., Chen, K., Zhang, T., Hui, Y., Berg-Kirkpatrick, T., Dubnov, S. Large-scale Contrastive "
            "Language-Audio Pretraining with Feature Fusion and Keyword-to-Caption Augmentation. ICASSP 2023; "
            "Liu, Y. et al. RoBERTa: A Robustly Optimized BERT Pretraining Approach. 2019.")
TEXT_PREFIXES = ("text_branch.", "text_projection.")
"""The checkpoint keys the text embedding reads (``text_branch.embeddings.position_ids`` excepted: a buffer)."""


class Embeddings(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(VOCAB, WIDTH, padding_idx=PAD_ID)
        self.position_embeddings = nn.Embedding(POSITIONS, WIDTH, padding_idx=PAD_ID)
        self.token_type_embeddings = nn.Embedding(1, WIDTH)
        self.LayerNorm = nn.LayerNorm(WIDTH, eps=EPS)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        real = input_ids.ne(PAD_ID).to(torch.int64)
        positions = torch.cumsum(real, dim=1) * real + PAD_ID
        x = self.word_embeddings(input_ids) + self.token_type_embeddings.weight[0]
        return self.LayerNorm(x + self.position_embeddings(positions))


class SelfAttention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.query, self.key, self.value = (nn.Linear(WIDTH, WIDTH) for _ in range(3))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        q, k, v = (f(x).view(b, t, HEADS, WIDTH // HEADS).transpose(1, 2) for f in (self.query, self.key, self.value))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=1.0 / math.sqrt(WIDTH // HEADS))
        return out.transpose(1, 2).reshape(b, t, WIDTH)


class DenseNorm(nn.Module):
    """``RobertaSelfOutput`` / ``RobertaOutput``: LayerNorm(dense(h) + residual)."""

    def __init__(self, width_in: int) -> None:
        super().__init__()
        self.dense = nn.Linear(width_in, WIDTH)
        self.LayerNorm = nn.LayerNorm(WIDTH, eps=EPS)

    def forward(self, h: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dense(h) + residual)


class Attention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.self = SelfAttention()
        self.output = DenseNorm(WIDTH)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.output(self.self(x, mask), x)


class Intermediate(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.dense = nn.Linear(WIDTH, INTERMEDIATE)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.dense(x))


class Layer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attention = Attention()
        self.intermediate = Intermediate()
        self.output = DenseNorm(INTERMEDIATE)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.attention(x, mask)
        return self.output(self.intermediate(x), x)


class Encoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.ModuleList(Layer() for _ in range(LAYERS))


class Pooler(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.dense = nn.Linear(WIDTH, WIDTH)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.dense(x[:, 0]))


class Roberta(nn.Module):
    """``RobertaModel`` to its ``pooler_output``."""

    def __init__(self) -> None:
        super().__init__()
        self.embeddings = Embeddings()
        self.encoder = Encoder()
        self.pooler = Pooler()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        x = self.embeddings(input_ids)
        # transformers' extended mask: 0 where attended, the dtype's lowest value on padding keys
        mask = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * torch.finfo(x.dtype).min
        for layer in self.encoder.layer:
            x = layer(x, mask)
        return self.pooler(x)


class ClapTextEmbedding(nn.Module):
    """``CLAP.get_text_embedding`` from token ids: RoBERTa's pooled output -> projection MLP -> L2 norm."""

    def __init__(self) -> None:
        super().__init__()
        self.text_branch = Roberta()
        self.text_projection = nn.Sequential(nn.Linear(WIDTH, JOINT_DIM), nn.ReLU(), nn.Linear(JOINT_DIM, JOINT_DIM))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.text_projection(self.text_branch(input_ids, attention_mask)), dim=-1)


def load_text_embedding(source: Path) -> ClapTextEmbedding:
    """A LAION-CLAP checkpoint's RoBERTa text tower and projection, with a strict key check."""
    state = clap_state_dict(source)
    if "text_branch.embeddings.word_embeddings.weight" not in state:
        raise SystemExit(f"{source}: holds no RoBERTa text tower (text_branch.*): not a whole LAION-CLAP checkpoint")
    unused = tuple(k for k in state if not k.startswith(TEXT_PREFIXES) or k.endswith(".position_ids"))
    return load_strict(ClapTextEmbedding(), state, source, "LAION-CLAP RoBERTa text tower", ignore=unused)


MEMORY = dict(axis=None, fixed_bytes=600_000_000, bytes_per_item=20_000_000)
"""Peak memory: the weights (500 MB) and, per caption, 77 tokens' activations (512 tokens: about 7 times more)."""


def build_text(name: str, source: Path, *, vocab: Path, merges: Path) -> dict:
    """Everything ``export.py`` needs to export one LAION-CLAP text artifact; ``vocab`` and ``merges`` are
    roberta-base's tokenizer files, copied beside the artifact (``files``)."""
    model = load_text_embedding(source)
    batch = torch.export.Dim("batch", min=1, max=1024)
    tokens = torch.export.Dim("tokens", min=2, max=MAX_TOKENS)
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(3, 2000, (2, MAX_LENGTH), generator=generator)
    ids[:, 0], ids[0, 9], ids[0, 10:] = 0, 2, PAD_ID  # one padded caption, one at full length
    ids[1, -1] = 2
    mask = ids.ne(PAD_ID).to(torch.int64)
    return dict(
        module=model,
        example_inputs=(ids, mask),
        dynamic_shapes={"input_ids": {0: batch, 1: tokens}, "attention_mask": {0: batch, 1: tokens}},
        frontend=dict(kind="roberta_bpe", max_length=MAX_LENGTH, max_tokens=MAX_TOKENS),
        files={"vocab": vocab, "merges": merges},
        inputs=[dict(name="input_ids", shape=["batch", "tokens"], dtype="int64", memory=MEMORY,
                     min={"tokens": 2}),
                dict(name="attention_mask", shape=["batch", "tokens"], dtype="int64")],
        outputs=[dict(name="text_embedding", shape=["batch", JOINT_DIM], dtype="float32", roles=["text_embedding"])],
        citation=CITATION,
    )

"""PAM for export: Microsoft CLAP 2023's audio tower (HTS-AT-tiny + projection) and PAM's two-prompt scoring, with
the prompts' text embeddings computed here once and stored as constants; no ``msclap`` package.

The published ``CLAP_weights_2023.pth`` (``{"model": state_dict}``, what PAM's ``load_clap`` reads) holds msclap's
whole ``CLAP``: ``audio_encoder.base.htsat.*`` (the HTS-AT of the original HTS-AT code, as LAION-CLAP's: this module
reuses ``clap_htsat.HtsatBody``, its ``latent_output`` being LAION's ``embedding``), ``audio_encoder.projection.*``
(``Projection``: ``LayerNorm(l1(x) + l2(gelu(l1(x))))``, no biases), ``caption_encoder.*`` (GPT-2 and its
projection) and ``logit_scale``. For one 7-s chunk's log-mel (965 frames), the graph computes the audio embedding,
divides it by its norm (PAM's ``compute_similarity``), multiplies it with the two prompts' text embeddings (divided
by their norms, times ``exp(logit_scale)``: constants), and returns the softmax's first column: the chunk's PAM.

The text side runs here only, as PAM runs it: GPT-2 (transformers' ``GPT2Model``, the ``export`` extra) with the
checkpoint's ``caption_encoder.base`` weights, the tokenizer built from GPT-2's ``vocab.json`` and ``merges.txt``
with ``'!'`` as its padding token, each prompt + ``' <|endoftext|>'`` padded to 77 ids, the hidden state at the
last id that is not 0 (``'!'``), the projection.

References: Deshmukh et al., "PAM: Prompting Audio-Language Models for Audio Quality Assessment", Interspeech 2024;
Elizalde et al., "Natural Language Supervision for General-Purpose Audio Representations", ICASSP 2024 (CLAP 2023);
github.com/soham97/PAM ``PAM/PAM.py``, ``dataset.py``; msclap 1.3.4 ``models/{clap,htsat,config}.py``.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .checkpoints import load_strict
from .clap_htsat import HtsatBody, TOWERS
from .cnn14 import check_frontend_buffers

FAMILY = "pam"
"""The model family (``audiofidelity/models/pam.py``) whose artifact this module builds."""
REQUIRES = {"transformers": "pip install transformers"}
"""What this export imports beyond torch (GPT-2 computes the prompts' embeddings), and how to get it (``build``
checks before it downloads)."""

PROMPTS = ("the sound is clear and clean.", "the sound is noisy and with artifacts.")
"""``PAM_PROMPTS`` of ``PAM/PAM.py``: the score is the softmax's weight on the first."""
SAMPLE_RATE, CHUNK_SECONDS, MEL_RATE = 44100, 7, 32000
CHUNK = SAMPLE_RATE * CHUNK_SECONDS
FRAMES, MEL_BINS, AUDIO_WIDTH, JOINT_DIM, TEXT_WIDTH, TEXT_LEN = 965, 64, 768, 1024, 768, 77
FRONTEND = dict(kind="pam_chunks", sample_rate=SAMPLE_RATE, chunk_samples=CHUNK, mel_sample_rate=MEL_RATE,
                n_fft=1024, hop_length=320, win_length=1024, window="hann", center=True, pad_mode="reflect",
                power=2.0, n_mels=MEL_BINS, fmin=50, fmax=14000, htk=False, mel_norm="slaney", amin=1e-10, ref=1.0,
                top_db=None)
"""PAM's ``SAMPLES`` (7 s at 44.1 kHz) and the spectrogram msclap's ``HTSATWrapper`` builds: it ignores the
arguments it is given (``fmax`` 8000 in PAM's ``config.yml``) and reads ``models/config.py`` (32 kHz, 50-14000 Hz)."""
AUDIO_PREFIX, PROJECTION_PREFIX = "audio_encoder.base.htsat.", "audio_encoder.projection."
FROZEN_FRONTEND_KEYS = ("spectrogram_extractor.stft.conv_real.weight", "spectrogram_extractor.stft.conv_imag.weight",
                        "logmel_extractor.melW")
CITATION = ("Deshmukh, S., Alharthi, D., Elizalde, B., Gamper, H., Al Ismail, M., Singh, R., Raj, B., Wang, H. PAM: "
            "Prompting Audio-Language Models for Audio Quality Assessment. Interspeech 2024; Elizalde, B., Deshmukh, "
            "S., Wang, H. Natural Language Supervision for General-Purpose Audio Representations. ICASSP 2024.")


class Projection(nn.Module):
    """msclap's ``Projection`` in eval mode: ``LayerNorm(l1(x) + l2(gelu(l1(x))))``."""

    def __init__(self, width_in: int, width_out: int) -> None:
        super().__init__()
        self.linear1 = nn.Linear(width_in, width_out, bias=False)
        self.linear2 = nn.Linear(width_out, width_out, bias=False)
        self.layer_norm = nn.LayerNorm(width_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        embed1 = self.linear1(x)
        return self.layer_norm(embed1 + self.linear2(F.gelu(embed1)))


class PamScore(nn.Module):
    """A 7-s chunk's log-mel (batch, 1, 965, 64) -> its PAM (batch,): the softmax weight of the first prompt."""

    def __init__(self) -> None:
        super().__init__()
        tower = TOWERS["HTSAT-tiny"]
        self.audio_branch = HtsatBody(tower["embed_dim"], tower["depths"])
        self.projection = Projection(AUDIO_WIDTH, JOINT_DIM)
        self.register_buffer("prompts", torch.zeros(len(PROMPTS), JOINT_DIM))
        """``exp(logit_scale) * text / |text|`` of the prompts (set at export)."""

    def forward(self, log_mel: torch.Tensor) -> torch.Tensor:
        audio = self.projection(self.audio_branch(log_mel))
        audio = audio / torch.norm(audio, dim=-1, keepdim=True)
        return F.softmax((self.prompts @ audio.T).T, dim=1)[:, 0]


def text_embeddings(state: dict[str, torch.Tensor], vocab: Path, merges: Path) -> torch.Tensor:
    """PAM's ``get_text_embeddings`` of ``PROMPTS`` with the checkpoint's GPT-2 and projection, (2, 1024)."""
    try:
        from transformers import GPT2Config, GPT2Model, GPT2Tokenizer
    except ImportError:
        raise SystemExit("the PAM export computes its prompts' embeddings with GPT-2: pip install transformers") \
            from None
    base = {k[len("caption_encoder.base."):]: v for k, v in state.items() if k.startswith("caption_encoder.base.")
            and not k.endswith((".attn.bias", ".attn.masked_bias"))}  # causal-mask buffers of older transformers
    model = GPT2Model(GPT2Config()).eval()
    buffers = {k for k, _ in model.named_buffers()}
    missing = sorted(set(model.state_dict()) - set(base) - buffers)
    unexpected = sorted(set(base) - set(model.state_dict()))
    if missing or unexpected:
        raise SystemExit(f"caption_encoder.base is not GPT-2 small: missing {missing[:5]}, unexpected {unexpected[:5]}")
    model.load_state_dict(base, strict=False)
    projection = Projection(TEXT_WIDTH, JOINT_DIM).eval()
    projection.load_state_dict({k[len("caption_encoder.projection."):]: v for k, v in state.items()
                                if k.startswith("caption_encoder.projection.")}, strict=True)
    with tempfile.TemporaryDirectory() as folder:
        shutil.copyfile(vocab, Path(folder) / "vocab.json")
        shutil.copyfile(merges, Path(folder) / "merges.txt")
        tokenizer = GPT2Tokenizer.from_pretrained(folder)  # what AutoTokenizer.from_pretrained("gpt2") builds
    tokenizer.add_special_tokens({"pad_token": "!"})
    rows = []
    with torch.no_grad():
        for prompt in PROMPTS:  # encode_plus's arguments (transformers 5 calls the tokenizer with them)
            tok = tokenizer(prompt + " <|endoftext|>", add_special_tokens=True, max_length=TEXT_LEN,
                            padding="max_length", return_tensors="pt")
            ids, mask = tok["input_ids"].reshape(1, -1), tok["attention_mask"].reshape(1, -1)
            hidden = model(input_ids=ids, attention_mask=mask)[0]
            last = torch.ne(ids, 0).sum(-1) - 1
            rows.append(projection(hidden[torch.arange(1), last]))
    return torch.cat(rows)


def load_pam(source: Path, vocab: Path, merges: Path) -> PamScore:
    """Build from ``CLAP_weights_2023.pth`` and GPT-2's tokenizer files, with a strict key check of the audio side."""
    checkpoint = torch.load(source, map_location="cpu", weights_only=True)
    state = checkpoint.get("model") if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict) or "logit_scale" not in state:
        raise SystemExit(f"{source}: expected msclap's CLAP_weights_2023.pth ({{'model': state_dict}} with "
                         f"logit_scale)")
    audio = {k[len(AUDIO_PREFIX):]: v for k, v in state.items() if k.startswith(AUDIO_PREFIX)}
    missing_frozen = [k for k in FROZEN_FRONTEND_KEYS if k not in audio]
    if missing_frozen:
        raise SystemExit(f"{source}: not msclap's HTS-AT CLAP; missing {missing_frozen}")
    check_frontend_buffers(audio, {**FRONTEND, "sample_rate": MEL_RATE}, source)
    mine = {"audio_branch." + k: v for k, v in audio.items()
            if k not in FROZEN_FRONTEND_KEYS and not k.startswith(("tscam_conv.", "head."))}
    mine.update({"projection." + k[len(PROJECTION_PREFIX):]: v for k, v in state.items()
                 if k.startswith(PROJECTION_PREFIX)})
    text = text_embeddings(state, vocab, merges)
    scale = state["logit_scale"].float().exp()
    mine["prompts"] = scale * (text / torch.norm(text, dim=-1, keepdim=True))
    return load_strict(PamScore(), mine, source, "msclap CLAP 2023 audio tower and projection")


MEMORY = dict(axis=None, fixed_bytes=200_000_000, bytes_per_item=150_000_000)
"""Peak activation memory per chunk (HTS-AT-tiny on a 1024 x 64 image), as LAION-CLAP's HTSAT-tiny."""


def build(name: str, source: Path, *, vocab: Path, merges: Path) -> dict:
    """Everything ``export.py`` needs to export the PAM artifact (``source``: ``CLAP_weights_2023.pth``; ``vocab``,
    ``merges``: GPT-2's tokenizer files, read here only)."""
    model = load_pam(source, vocab, merges)
    batch = torch.export.Dim("batch", min=1, max=1024)
    example = torch.randn(2, 1, FRAMES, MEL_BINS, generator=torch.Generator().manual_seed(0)) * 20 - 30
    return dict(
        module=model,
        example_inputs=(example,),
        dynamic_shapes={"log_mel": {0: batch}},
        frontend=dict(FRONTEND),
        inputs=[dict(name="log_mel", shape=["batch", 1, FRAMES, MEL_BINS], dtype="float32",
                     items_per_clip="variable", memory=MEMORY)],
        outputs=[dict(name="pam", shape=["batch"], dtype="float32", roles=["pam"])],
        read_files={"vocab": vocab, "merges": merges},
        citation=CITATION,
    )

"""Caption embeddings from a text-tower artifact (LAION-CLAP's RoBERTa + projection): tokenise, run, collect.

A text artifact's manifest names its tokenizer (``frontend.kind``: ``roberta_bpe``) and the tokenizer's files beside
it with their sha256 (``frontend.files``), sealed inside the ``.pt2`` like every other field. Captions run in passes
of exactly ``TEXT_BATCH`` items, a partial pass filled with the empty caption (whose rows are dropped), so a caption's
embedding never depends on which captions run beside it.

See Also
--------
laion_clap ``CLAP_Module.get_text_embedding`` : what ``TextTower.embed`` reproduces.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .artifacts import LoadedArtifact, plain_file_name
from .errors import ManifestError, literal
from .features import Progress
from .tokenizer import RobertaTokenizer

TEXT_BATCH = 8
"""Captions per pass: every pass has this shape, whatever the number of captions."""
TOKENIZERS = {"roberta_bpe": RobertaTokenizer}
"""Tokenizer kind a text manifest's ``frontend.kind`` names -> the class reading its files."""


class TextTower:
    """A text-tower artifact with its tokenizer, ready to embed captions.

    Parameters
    ----------
    artifact : LoadedArtifact
        An artifact whose manifest declares a ``text_embedding`` output and a ``frontend.kind`` of ``TOKENIZERS``.
    max_length : int, optional
        Tokens per caption (padded and truncated to it): the manifest's ``max_length`` (LAION-CLAP's 77) by default,
        at most its ``max_tokens`` (audioldm_eval's CLAP score: 512).

    Raises
    ------
    ManifestError
        If the artifact is not a text tower, its manifest lacks the tokenizer's files, or it cannot take
        ``max_length`` tokens.
    TokenizerFilesError
        If a tokenizer file is missing, altered (sha256) or malformed.
    """

    def __init__(self, artifact: LoadedArtifact, max_length: int | None = None) -> None:
        manifest = artifact.manifest
        frontend = manifest.frontend
        if "text_embedding" not in manifest.roles() or frontend.get("kind") not in TOKENIZERS:
            raise ManifestError(f"artifact {literal(repr(manifest.name))} is not a text tower (no text_embedding "
                                f"output with a tokenizer frontend)")
        files = frontend.get("files")
        if not isinstance(files, dict) or set(files) != {"vocab", "merges"}:
            raise ManifestError(f"artifact {literal(repr(manifest.name))}: its manifest names no tokenizer files "
                                f"(frontend.files.vocab and .merges); re-export it")
        paths = {key: plain_file_name(files[key].get("file"), artifact.path.parent, f"frontend.files.{key}.file")
                 for key in files}
        self.artifact = artifact
        self.max_length = int(frontend["max_length"]) if max_length is None else max_length
        longest = int(frontend.get("max_tokens", frontend["max_length"]))
        if not 2 <= self.max_length <= longest:
            raise ManifestError(f"artifact {literal(repr(manifest.name))} takes 2 to {longest} tokens per caption, "
                                f"not {self.max_length}" + ("; re-export it (a current export takes up to 512)"
                                                            if "max_tokens" not in frontend else ""))
        self.tokenizer = TOKENIZERS[frontend["kind"]].from_files(
            paths["vocab"], paths["merges"], vocab_sha256=files["vocab"]["sha256"],
            merges_sha256=files["merges"]["sha256"])

    @property
    def name(self) -> str:
        return self.artifact.manifest.name

    @property
    def dimension(self) -> int:
        return int(self.artifact.manifest.output("text_embedding").shape[-1])

    def embed(self, captions: Sequence[str], *, progress: bool = False) -> np.ndarray:
        """Each caption's embedding (L2-normalised by the tower).

        Parameters
        ----------
        captions : sequence of str, length n
        progress : bool
            Show a progress bar (tqdm) over the captions.

        Returns
        -------
        np.ndarray, shape (n, dimension), float32
        """
        import torch

        ids, mask = self.tokenizer.encode_batch(list(captions), max_length=self.max_length)
        n = len(ids)
        out = np.zeros((n, self.dimension), np.float32)
        if n == 0:
            return out
        filler_ids, filler_mask = self.tokenizer.encode_batch([""], max_length=self.max_length)
        program = self.artifact.program
        device = self.artifact.device
        with Progress(n, f"{self.name} captions", progress) as bar:
            for start in range(0, n, TEXT_BATCH):
                stop = min(start + TEXT_BATCH, n)
                fill = TEXT_BATCH - (stop - start)
                batch_ids = np.concatenate([ids[start:stop], np.repeat(filler_ids, fill, axis=0)])
                batch_mask = np.concatenate([mask[start:stop], np.repeat(filler_mask, fill, axis=0)])
                with torch.inference_mode():
                    rows = program(torch.from_numpy(batch_ids).to(device), torch.from_numpy(batch_mask).to(device))
                out[start:stop] = rows[: stop - start].float().cpu().numpy()
                bar.update(stop - start)
        return out

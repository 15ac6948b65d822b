"""Model families: a new model is one family module; the generic core names no model.

- A toy family (a tiny random network exported in the test) is registered through ``models.register`` alone and
  evaluated as a ``--backbone`` (FD, KL, IS, KID) and a ``--fad-model`` (FAD, KAD) from the command line, with no
  edit to generic code; its option is validated and applied as the family declares it.
- No generic module holds a string naming a registered model, backbone or family (docstrings aside).
- Each family's export module is found from the family's name (``FAMILY = "<name>"``), with no table.
"""
from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audiofidelity import cli, models, registry
from audiofidelity.models import (Adjustment, ArtifactEntry, FadModel, Frontend, ModelFamily, ModelOption,
                                  PackageModel)

RUNTIME = Path(__file__).resolve().parents[1] / "runtime" / "audiofidelity"
FAMILY_SPECIFIC = {"models", "sc09.py", "cli/sc09.py", "metrics/sc09.py"}
"""Where models may be named: the families themselves, and the SC09 benchmark's own command and metrics."""


# the toy family ---------------------------------------------------------------------------------------------------

FRAME = 16


def toy_frames(wave: np.ndarray, *, sample_rate: int, frame: int, scale: float = 1.0) -> np.ndarray:
    """One item of non-overlapping frames of ``frame`` samples: (1, frames, frame)."""
    usable = len(wave) // frame * frame
    return (np.asarray(wave[:usable], dtype=np.float32).reshape(1, -1, frame) * np.float32(scale))


TOY = ModelFamily(
    "toy",
    artifacts=(ArtifactEntry("toy-net", "classifier", "toy", (16000,), "toy", "toy.pt", "https://example.invalid/toy",
                             "MIT", model_rate=16000, dimension=8, frames="1 per clip", description="a test model"),),
    fad_models=(FadModel("toy-net", "toy-net", "embedding", "test"),),
    frontends=(Frontend("toy_frames", toy_frames, lambda n, **_: 16.0 * n),),
    options=(ModelOption("toy_gain", "backbone", "toy: scale the frames", parse=float,
                         check=lambda value: float(value) if float(value) > 0 else (_ for _ in ()).throw(
                             ValueError(f"toy_gain must be > 0, got {value}")),
                         adjust=lambda value, rate: Adjustment(frontend={"scale": value})),),
    package_models=(PackageModel("frechet_audio_distance", "toy", 16000, "toy-net"),),
)


def export_toy(out: Path) -> None:
    """A tiny random network (frames -> 8-d mean embedding -> 5 logits) exported as artifact ``toy-net``."""
    import torch

    from audiofidelity.exporters import export

    class Toy(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            generator = torch.Generator().manual_seed(0)
            self.embed = torch.nn.Parameter(torch.randn(FRAME, 8, generator=generator) / 4)
            self.head = torch.nn.Parameter(torch.randn(8, 5, generator=generator))

        def forward(self, frames: torch.Tensor) -> tuple:  # outputs in the manifest's order
            embedding = torch.tanh(frames @ self.embed).mean(dim=1)
            return embedding, embedding @ self.head

    module = Toy().eval()
    example = torch.randn(2, 40, FRAME)
    frames = torch.export.Dim("frames", min=1, max=1_000_000)
    batch = torch.export.Dim("batch", min=1, max=1024)
    program = torch.export.export(module, (example,), dynamic_shapes=({0: batch, 1: frames},))
    source = out / "toy.pt"
    out.mkdir(parents=True, exist_ok=True)
    source.write_bytes(b"toy weights are made in the test")
    spec = dict(frontend={"kind": "toy_frames", "sample_rate": 16000, "frame": FRAME},
                inputs=[dict(name="frames", shape=["batch", "frames", FRAME], dtype="float32", min={"frames": 1})],
                outputs=[dict(name="embedding", shape=["batch", 8], dtype="float32", roles=["embedding"]),
                         dict(name="logits", shape=["batch", 5], dtype="float32", roles=["logits"])],
                citation="a test")
    export.write_artifact("toy-net", program, spec, out, source=source)


@pytest.fixture()
def toy_models(tmp_path):
    models.register(TOY)
    try:
        export_toy(tmp_path / "models")
        yield tmp_path / "models"
    finally:
        models.unregister("toy")


def folders(root: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    for side, shift in (("gen", 0.0), ("ref", 0.3)):
        (root / side).mkdir(parents=True)
        for i in range(12):
            tone = np.sin(2 * np.pi * (200 + 30 * i) * np.arange(16000) / 16000) * (0.3 + shift)
            sf.write(root / side / f"c{i:02d}.wav", tone + 0.05 * rng.standard_normal(16000), 16000)
    return root / "gen", root / "ref"


def test_a_toy_family_is_evaluated_as_backbone_and_fad_model_through_the_family_interface_alone(toy_models, tmp_path,
                                                                                                capsys):
    gen, ref = folders(tmp_path / "audio")
    out = tmp_path / "report.json"
    args = ["eval", str(gen), str(ref), "--models-dir", str(toy_models), "--backbone", "toy", "--fad-model",
            "toy-net", "--metrics", "fd,fad,kl,isc,kid,kad", "--json", str(out), "--quiet", "--no-cache",
            "--workers", "0", "--save-features", str(tmp_path / "features.npz")]
    assert cli.main(args) == 0, capsys.readouterr().err
    report = json.loads(out.read_text())
    values = report["metrics"]
    assert all(isinstance(values[k], float) for k in ("frechet_distance", "frechet_audio_distance",
                                                      "kullback_leibler_divergence_softmax", "inception_score_mean",
                                                      "kernel_inception_distance_mean", "kernel_audio_distance"))
    assert report["provenance"]["fad_model"]["name"] == "toy-net"
    # FD is the textbook formula on the toy network's own embeddings (saved features)
    features = dict(np.load(tmp_path / "features.npz"))
    rows = {side: np.stack([v for k, v in features.items() if k.startswith(f"{side}/embedding/")]).astype(np.float64)
            for side in ("gen", "ref")}
    assert rows["gen"].shape == (12, 8)
    mu = {side: r.mean(axis=0) for side, r in rows.items()}
    cov = {side: np.cov(r, rowvar=False) for side, r in rows.items()}
    from scipy import linalg

    root = linalg.sqrtm(cov["gen"] @ cov["ref"]).real
    textbook = float(np.sum((mu["gen"] - mu["ref"]) ** 2) + np.trace(cov["gen"] + cov["ref"] - 2 * root))
    assert values["frechet_distance"] == pytest.approx(textbook, rel=1e-6)

    # the family's option: validated by its declaration, applied to the stage it names
    assert cli.main([*args, "--toy-gain", "2"]) == 0
    scaled = json.loads(out.read_text())["metrics"]["frechet_distance"]
    assert scaled != values["frechet_distance"]
    with pytest.raises(SystemExit) as refused:
        cli.main([*args, "--toy-gain", "-1"])
    assert refused.value.code == 2 and "toy_gain must be > 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["eval", str(gen), str(ref), "--toy-gain", "2"])  # the default backbone is not the toy's
    assert "--toy-gain needs --backbone toy" in capsys.readouterr().err


def test_a_registered_family_appears_in_every_listing(toy_models):
    from audiofidelity.compat.frechet_audio_distance import find_package_model
    from audiofidelity.metric_table import BACKBONE_METRICS

    assert "toy" in registry.backbones() and "toy-net" in registry.fad_models()
    assert BACKBONE_METRICS["toy"][:6] == ("fd", "fad", "kl", "kl_sigmoid", "isc", "kid")
    assert "fd_layers" not in BACKBONE_METRICS["toy"]  # it provides no layers
    assert find_package_model("toy", 16000).fad_model == "toy-net"
    assert "toy_gain" in models.model_options()
    with pytest.raises(ValueError, match="clashes"):
        models.register(TOY)


# the generic core names no model ----------------------------------------------------------------------------------

def _generic_modules() -> list[Path]:
    out = []
    for path in sorted(RUNTIME.rglob("*.py")):
        relative = path.relative_to(RUNTIME).as_posix()
        if relative.split("/")[0] in FAMILY_SPECIFIC or relative in FAMILY_SPECIFIC:
            continue
        out.append(path)
    return out


def _strings(tree: ast.AST) -> list[tuple[int, str]]:
    """Every string constant but docstrings, with its line."""
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docstrings.add(id(first.value))
        if isinstance(node, (ast.Assign, ast.AnnAssign)):  # attribute docstrings: a string right after
            pass
    for node in ast.walk(tree):
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):  # bare strings: documentation
            docstrings.add(id(node.value))
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings]


def test_no_generic_module_names_a_model():
    names = {a.name for a in models.builtin_entries()} | {m.name for m in models.all_fad_models()} \
        | {a.backbone for a in models.builtin_entries()} | {f.name for f in models.families()} \
        | {p.model_name for f in models.families() for p in f.package_models}
    pattern = re.compile(r"(?<![A-Za-z0-9_])(" + "|".join(sorted(map(re.escape, names), key=len, reverse=True))
                         + r")(?![A-Za-z0-9_])")
    hits = []
    for path in _generic_modules():
        for line, text in _strings(ast.parse(path.read_text())):
            found = pattern.search(text)
            if found:
                hits.append(f"{path.relative_to(RUNTIME)}:{line}: {found.group(1)!r} in {text[:60]!r}")
    assert not hits, "generic modules name models:\n" + "\n".join(hits)


def test_the_grep_finds_a_model_name_planted_in_generic_code():
    """The check above can fail: a literal model name in a generic-looking module is found."""
    tree = ast.parse('"""docs may say vggish."""\nDEFAULT = "vggish"\n')
    assert [text for _, text in _strings(tree)] == ["vggish"]


def test_each_family_has_its_export_module_found_by_name():
    from audiofidelity.exporters import export
    found = export.builders()
    assert set(found) == {f.name for f in models.families()}

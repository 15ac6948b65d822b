"""Reference class-probabilities files (stable-audio-metrics' ``*__reference_probabilities.pkl``): read back
exactly, and every hostile or malformed file refused before anything in it runs."""
from __future__ import annotations

import builtins
import collections
import os
import pickle
import pickletools

import numpy as np
import pytest

from audiofidelity import probabilities
from audiofidelity.errors import ReferenceProbabilitiesError
from audiofidelity.probabilities import read_reference_probabilities

torch = pytest.importorskip("torch")

CLASSES = 527  # PaSST's AudioSet labels


def _softmax(seed: int, classes: int = CLASSES):
    return torch.softmax(torch.randn(classes, generator=torch.Generator().manual_seed(seed)), 0)


def _dump(path, obj, protocol=None):
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=protocol)
    return path


def _globals(data: bytes) -> set[str]:
    """The globals a pickle names (GLOBAL, or STACK_GLOBAL after two strings)."""
    names, strings = set(), []
    for op, arg, _ in pickletools.genops(data):
        if op.name == "GLOBAL":
            names.add(arg.replace(" ", "."))
        elif op.name == "STACK_GLOBAL":
            names.add(".".join(strings[-2:]))
        if isinstance(arg, str):
            strings.append(arg)
    return names


def _refused(path, match, **kwargs) -> ReferenceProbabilitiesError:
    with pytest.raises(ReferenceProbabilitiesError, match=match) as info:
        read_reference_probabilities(path, **kwargs)
    assert isinstance(info.value, ValueError) and info.value.path == path
    assert info.value.render(str) == str(info.value)  # a template of its fields, as errors.py requires
    return info.value


# ---- what stable-audio-metrics writes reads back exactly ------------------------------------------------------

@pytest.mark.parametrize("protocol", [4, None, 2, 5], ids=["protocol4", "default", "protocol2", "protocol5"])
def test_a_file_written_as_stable_audio_metrics_writes_it_reads_back_exactly(tmp_path, protocol, monkeypatch):
    ref_p = {859: _softmax(0), "ytid_abc": _softmax(1), 12: _softmax(2)}  # passt_kld: ref_p[id] = softmax (527,)
    path = _dump(tmp_path / "song_describer__collectmean__reference_probabilities.pkl", ref_p, protocol)
    if protocol in (4, None):
        # the globals recorded in probabilities.py's docstring, and nothing else
        assert _globals(path.read_bytes()) == {"torch._utils._rebuild_tensor_v2", "torch.storage._load_from_bytes",
                                               "collections.OrderedDict"}
    # the storages are decoded without torch.load (not even its weights_only loader)
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load was called"))
    result = read_reference_probabilities(path, classes=CLASSES)
    assert result.ids == ("859", "ytid_abc", "12") and result.source == str(path)
    assert result.probabilities.dtype == np.float64 and result.probabilities.shape == (3, CLASSES)
    expected = np.stack([t.numpy() for t in ref_p.values()]).astype(np.float64)  # float32 -> float64 is exact
    assert np.array_equal(result.probabilities, expected)
    assert not result.probabilities.flags.writeable and result.classes == CLASSES and len(result) == 3


@pytest.mark.parametrize("convert", [
    lambda t: t.numpy(),
    lambda t: t.numpy().astype(">f8"),  # a big-endian array keeps its values
    lambda t: t.tolist(),
    lambda t: tuple(t.tolist()),
    lambda t: t.double(),
    lambda t: torch.stack([t, t]).t()[:, 1],  # a strided view of a larger storage
], ids=["ndarray", "big-endian", "list", "tuple", "float64-tensor", "strided-view"])
def test_ordered_dicts_arrays_lists_and_views_read_back_exactly(tmp_path, convert):
    vectors = {"b": _softmax(3), "a": _softmax(4)}
    path = _dump(tmp_path / "ref.pkl", collections.OrderedDict((k, convert(v)) for k, v in vectors.items()))
    result = read_reference_probabilities(path)
    assert result.ids == ("b", "a")  # the file's order, not sorted
    assert np.array_equal(result.probabilities, np.stack([v.numpy() for v in vectors.values()]).astype(np.float64))


def test_the_npz_form_reads_back_exactly(tmp_path):
    rows = np.stack([_softmax(5).numpy(), _softmax(6).numpy()])
    path = tmp_path / "ref.npz"
    np.savez(path, ids=np.array(["859", "ytid_abc"]), probabilities=rows)
    result = read_reference_probabilities(path, classes=CLASSES)
    assert result.ids == ("859", "ytid_abc") and np.array_equal(result.probabilities, rows.astype(np.float64))
    np.savez(path, ids=np.array([859, 860]), probabilities=rows)
    assert read_reference_probabilities(path).ids == ("859", "860")


# ---- hostile pickles are refused before they run --------------------------------------------------------------

class _RunsCommand:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class _Evaluates:
    def __reduce__(self):
        return (builtins.eval, ("__import__('os').getcwd()",))


class Innocent:
    """An ordinary class: unpickling it would import this module and run its code."""

    def __init__(self) -> None:
        self.probabilities = [0.5, 0.5]


def test_a_pickle_calling_os_system_is_refused_without_running(tmp_path):
    marker = tmp_path / "MARKER"
    path = _dump(tmp_path / "evil.pkl", {859: _RunsCommand(f"touch {marker}")}, 4)
    assert {"posix.system", "os.system", "nt.system"} & _globals(path.read_bytes())  # the payload is really there
    error = _refused(path, r"would call (posix|os|nt)\.system")
    assert error.name.endswith(".system")
    assert not marker.exists()


def test_a_payload_hidden_in_a_tensors_storage_bytes_is_refused_without_running(tmp_path):
    marker = tmp_path / "MARKER"
    inner = pickle.dumps(_RunsCommand(f"touch {marker}"), protocol=2)

    class _Storage:
        def __reduce__(self):
            return (torch.storage._load_from_bytes, (inner,))

    class _Tensor:
        def __reduce__(self):
            return (torch._utils._rebuild_tensor_v2, (_Storage(), 0, (2,), (1,), False, collections.OrderedDict()))

    path = _dump(tmp_path / "evil.pkl", {1: _Tensor()}, 4)
    _refused(path, r"would call (posix|os|nt)\.system")
    assert not marker.exists()


@pytest.mark.parametrize("payload, name", [
    (_Evaluates(), r"builtins\.eval"),
    (torch.nn.Linear(3, 2), r"torch\.nn\.modules\.linear\.Linear"),
    (Innocent(), r"\.Innocent"),
], ids=["builtins.eval", "torch.nn.Linear", "arbitrary-class"])
def test_other_globals_are_refused_by_name(tmp_path, payload, name):
    path = _dump(tmp_path / "ref.pkl", {859: payload}, 4)
    _refused(path, f"would call .*{name}")


def test_a_tensor_expanded_far_beyond_the_files_size_is_refused(tmp_path):
    # stride 0: 10^8 numbers from one stored element, a 100-fold allocation bomb for a file of ~1 kB
    path = _dump(tmp_path / "bomb.pkl", {1: torch.ones(1).expand(10**8)}, 4)
    _refused(path, "more numbers than the file has bytes")


# ---- malformed files are refused with what is wrong ----------------------------------------------------------

@pytest.mark.parametrize("value, kwargs, match, id_", [
    (lambda: _softmax(0, CLASSES - 1), {"classes": CLASSES}, "526 probabilities; classes=527", "2"),
    (lambda: torch.softmax(torch.randn(2, CLASSES), 1), {}, r"shape \(2, 527\)", "2"),
    (lambda: torch.full((CLASSES,), float("nan")), {}, "not all finite", "2"),
    (lambda: torch.randn(CLASSES), {}, "negative values .*logits", "2"),
    (lambda: torch.sigmoid(torch.randn(CLASSES)), {}, r"sum to .*, not 1 .*softmax", "2"),
    (lambda: [[0.5, 0.5]], {}, r"nested list \(2-D\)", "2"),
    (lambda: {"p": 1.0}, {}, "is a dict, not a vector", "2"),
], ids=["526-of-527", "2-D", "nan", "negative-logits", "sigmoid-scores", "nested-list", "dict-value"])
def test_bad_vectors_are_refused_naming_the_id(tmp_path, value, kwargs, match, id_):
    path = _dump(tmp_path / "ref.pkl", {1: _softmax(1), 2: value()})
    assert _refused(path, match, **kwargs).id == id_


def test_sums_within_the_tolerance_are_kept_and_others_refused(tmp_path):
    # float32 softmax sums miss 1 by ~1e-6; the 1e-3 tolerance keeps those and refuses a 0.2 % deficit
    close = (_softmax(1).double() * (1 + 5e-4)).numpy()
    assert np.array_equal(read_reference_probabilities(_dump(tmp_path / "ok.pkl", {1: close})).probabilities[0], close)
    path = _dump(tmp_path / "off.pkl", {1: (_softmax(1).double() * (1 - 2e-3)).numpy()})
    assert _refused(path, r"sum to 0\.99.*, not 1 \(within 0\.001\)").actual == pytest.approx(1 - 2e-3)


def test_vectors_of_different_lengths_are_refused(tmp_path):
    path = _dump(tmp_path / "ref.pkl", {"a": _softmax(1), "b": _softmax(2, 10)})
    _refused(path, "id b has 10 probabilities where id a has 527")


@pytest.mark.parametrize("content, match", [
    ([_softmax(1)], "holds a list, not a dict"),
    ({True: _softmax(1)}, "id of type bool"),
    ({5: _softmax(1), "5": _softmax(2)}, r"both 5 as strings \(5 and '5'\)"),
    ({}, "no ids"),
], ids=["list-top-level", "bool-key", "duplicate-after-str", "empty-dict"])
def test_bad_containers_are_refused(tmp_path, content, match):
    _refused(_dump(tmp_path / "ref.pkl", content), match)


def test_a_truncated_file_is_refused(tmp_path):
    data = pickle.dumps({1: _softmax(1), 2: _softmax(2)})
    path = tmp_path / "ref.pkl"
    path.write_bytes(data[: len(data) // 2])
    _refused(path, "not a readable pickle")


def test_a_text_file_is_refused(tmp_path):
    path = tmp_path / "ref.pkl"
    path.write_text("id,probabilities\n859,0.5 0.5\n")
    _refused(path, "not a readable pickle")


def test_a_file_over_the_size_limit_is_refused_before_it_is_read(tmp_path, monkeypatch):
    path = _dump(tmp_path / "ref.pkl", {1: _softmax(1)})
    monkeypatch.setattr(probabilities, "MAX_FILE_BYTES", path.stat().st_size - 1)
    error = _refused(path, "may have at most")
    assert error.actual == path.stat().st_size


def test_a_missing_file_and_a_bad_npz_are_refused(tmp_path):
    _refused(tmp_path / "absent.pkl", "does not exist")
    npz = tmp_path / "ref.npz"
    np.savez(npz, probabilities=np.full((1, 4), 0.25))
    _refused(npz, r"lacks the array\(s\) \['ids'\]")
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip archive")
    _refused(garbage, "not a readable .npz")


def test_classes_must_be_a_positive_int(tmp_path):
    path = _dump(tmp_path / "ref.pkl", {1: _softmax(1)})
    with pytest.raises(ValueError, match="classes must be a positive int"):
        read_reference_probabilities(path, classes=0)


# eval against a class-probabilities file ----------------------------------------------------------------------------

def _write_generated(folder, names, shift=0):
    import soundfile as sf

    folder.mkdir()
    rng = np.random.default_rng(shift)
    for i, name in enumerate(names):
        t = np.arange(16000) / 16000
        x = 0.3 * np.sin(2 * np.pi * (200 + 150 * i + 70 * shift) * t) + 0.05 * rng.standard_normal(len(t))
        sf.write(folder / name, x, 16000)


def test_eval_against_a_probabilities_file_pairs_ids_and_names_the_rest(models_dir, tmp_path):
    """KL of each generated file against its id's probabilities (audioldm_eval's definition with CNN14:
    ``F.kl_div((softmax(gen) + 1e-6).log(), ref, reduction="sum") / n``, written here in torch); a file without an id
    and an id without a file named; the metrics that need reference audio or features unavailable, saying why."""
    import torch.nn.functional as F

    from conftest import eval_cli

    _write_generated(tmp_path / "gen", ["859.wav", "990.wav", "extra.wav"])
    reference = {859: _softmax(1), 990: _softmax(2), 1234: _softmax(3)}
    path = _dump(tmp_path / "song_describer__collectmean__reference_probabilities.pkl", reference, protocol=4)
    out = tmp_path / "out"
    out.mkdir()
    report, features = eval_cli(tmp_path / "gen", path, out, "--models-dir", str(models_dir), "--sr", "16000",
                                "--metrics", "kl,kl_sigmoid,isc,fd,psnr", "--no-cache", "--workers", "0")
    logits = torch.stack([torch.from_numpy(features[f"gen/logits/{n}.wav"]).double() for n in (859, 990)])
    ref = torch.stack([reference[859], reference[990]]).double()
    expected = float(F.kl_div((logits.softmax(1) + 1e-6).log(), ref, reduction="sum")) / 2
    metrics, details = report["metrics"], report["details"]["kullback_leibler_divergence_softmax"]
    assert metrics["kullback_leibler_divergence_softmax"] == pytest.approx(expected, rel=1e-9)
    assert details["pairs"] == 2 and details["generated_without_id"] == ["extra.wav"]
    assert details["ids_without_file"] == ["1234"] and report["mode"] == "probabilities"
    assert report["files"]["reference"] == {"probabilities": str(path), "used": 3}
    unavailable = report["unavailable"]
    assert "no sigmoid KL" in unavailable["kullback_leibler_divergence_sigmoid"]
    assert "holds no embedding features" in unavailable["frechet_distance"]
    assert "no reference audio" in unavailable["psnr"]
    assert metrics["inception_score_mean"] is None or np.isfinite(metrics["inception_score_mean"])


def test_eval_refuses_a_hostile_probabilities_file_by_name_without_running_it(models_dir, tmp_path, capsys):
    from audiofidelity import cli

    _write_generated(tmp_path / "gen", ["1.wav"])
    marker = tmp_path / "MARKER"

    class Payload:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    path = _dump(tmp_path / "ref.pkl", {1: Payload()})
    status = cli.main(["eval", str(tmp_path / "gen"), str(path), "--models-dir", str(models_dir), "--sr", "16000",
                       "--metrics", "kl", "--no-cache", "--workers", "0", "--quiet"])
    err = capsys.readouterr().err
    assert status != 0 and not marker.exists() and "Traceback" not in err
    assert "would call posix.system" in err or "would call os.system" in err


def test_stats_writes_probabilities_that_give_the_folders_kl_and_refuse_other_settings(models_dir, tmp_path, capsys):
    """``stats REF --probabilities P.npz``, then ``eval GEN P.npz``: the KL of ``eval GEN REF`` (the same
    probabilities, as softmax of the same logits); a run with other settings (another channel) is refused by name."""
    from audiofidelity import cli

    from conftest import eval_cli

    _write_generated(tmp_path / "gen", ["a.wav", "b.wav", "c.wav"])
    _write_generated(tmp_path / "ref", ["a.wav", "b.wav", "c.wav"], shift=1)
    common = ["--models-dir", str(models_dir), "--sr", "16000", "--no-cache", "--workers", "0"]
    probabilities = tmp_path / "ref-probabilities.npz"
    assert cli.main(["stats", str(tmp_path / "ref"), "--out", str(tmp_path / "ref.npz"), "--probabilities",
                     str(probabilities), "--quiet", *common]) == 0
    capsys.readouterr()
    for name in ("folder", "file"):
        (tmp_path / name).mkdir()
    folder, _ = eval_cli(tmp_path / "gen", tmp_path / "ref", tmp_path / "folder", "--metrics", "kl", *common)
    file, _ = eval_cli(tmp_path / "gen", probabilities, tmp_path / "file", "--metrics", "kl", *common)
    key = "kullback_leibler_divergence_softmax"
    assert abs(folder["metrics"][key]) > 1e-5  # the sides differ
    assert file["metrics"][key] == pytest.approx(folder["metrics"][key], rel=1e-12)
    assert file["details"][key]["ids_without_file"] == [] and file["details"][key]["pairs"] == 3
    assert read_reference_probabilities(probabilities).made_with["backbone"] == "cnn14"
    status = cli.main(["eval", str(tmp_path / "gen"), str(probabilities), "--metrics", "kl", "--channel", "mean",
                       "--quiet", *common])
    err = capsys.readouterr().err
    assert status == 1 and "were made with other artifacts or settings (conditioning: file" in err
    assert "Traceback" not in err

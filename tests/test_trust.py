"""Trust under hostile conditions: no number from bytes other than the ones the report names.

One test per way a wrong number (or a traceback) used to come out: an edited manifest, a ``.pt2`` or an
audio file changed in place with its mtime put back, corrupt cache entries, cached rejection reasons, a
clip too long for memory, environment mistakes, unwritable outputs, missing models, and features that
depended on what the cache held.
"""
import json
import os
import re
import shutil

import numpy as np
import pytest
import soundfile as sf

from audiofidelity import artifacts, cli
from audiofidelity.cache import FeatureCache
from audiofidelity.errors import ChecksumMismatchError, ManifestError
from audiofidelity.evaluate import Evaluator, evaluate



def _linked_models(models_dir, tmp_path, names=("cnn14-16k", "vggish")):
    """A models folder whose ``.pt2`` files are hard links (no copy) and whose manifests are editable copies."""
    out = tmp_path / "models"
    out.mkdir()
    for name in names:
        os.link(models_dir / f"{name}.pt2", out / f"{name}.pt2")
        shutil.copy(models_dir / f"{name}.json", out / f"{name}.json")
    for extra in models_dir.glob("*.npz"):
        os.link(extra, out / extra.name)
    return out


def _edit_manifest(folder, name, edit):
    path = folder / f"{name}.json"
    manifest = json.loads(path.read_text())
    edit(manifest)
    path.write_text(json.dumps(manifest, indent=2))


def _folders(recordings_dir, tmp_path, count=4):
    gen, ref = tmp_path / "gen", tmp_path / "ref"
    gen.mkdir(), ref.mkdir()
    for source, target in (("unpaired", gen), ("reference", ref)):
        for path in sorted((recordings_dir / source).iterdir())[:count]:
            shutil.copy(path, target)
    return gen, ref


# 1. the manifest is part of the pin

@pytest.mark.parametrize("name, field, edit", [
    ("cnn14-16k", "frontend.fmax", lambda m: m["frontend"].update(fmax=7000)),
    ("cnn14-16k", "frontend.hop_length", lambda m: m["frontend"].update(hop_length=161)),
    ("vggish", "frontend.log_offset", lambda m: m["frontend"].update(log_offset=0.011)),
    ("vggish", "frontend.fft_length", lambda m: m["frontend"].update(fft_length=1024)),
    ("cnn14-16k", "outputs[0].roles[0]", lambda m: m["outputs"][0].update(roles=["logits"])),
])
def test_an_edited_manifest_field_is_refused_by_name(models_dir, tmp_path, recordings_dir, capsys, name, field, edit):
    folder = _linked_models(models_dir, tmp_path)
    _edit_manifest(folder, name, edit)
    with pytest.raises(ManifestError, match=re.escape(f"field '{field}'")):
        artifacts.resolve(name, folder)
    gen, ref = _folders(recordings_dir, tmp_path, 2)
    status = cli.main(["eval", str(gen), str(ref), "--models-dir", str(folder), "--metrics", "fd,fad", "--quiet",
                       "--workers", "0"])
    err = capsys.readouterr().err
    assert status == 1 and f"field '{field}'" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_manifest_paths_never_leave_the_models_folder(models_dir, tmp_path):
    folder = _linked_models(models_dir, tmp_path)
    elsewhere = tmp_path / "elsewhere.pt2"
    os.link(models_dir / "cnn14-16k.pt2", elsewhere)
    _edit_manifest(folder, "cnn14-16k", lambda m: m["artifact"].update(file="../elsewhere.pt2"))
    with pytest.raises(ManifestError, match="only a file name"):
        artifacts.resolve("cnn14-16k", folder)
    _edit_manifest(folder, "vggish", lambda m: m["postprocess"].update(file="../x.npz"))
    with pytest.raises(ManifestError, match="postprocess"):  # sealed too, and no path is ever followed
        artifacts.resolve("vggish", folder)


def test_a_pt2_without_a_sealed_manifest_is_refused(models_dir, tmp_path):
    import torch

    folder = tmp_path / "models"
    folder.mkdir()
    program = torch.export.export(torch.nn.Linear(2, 2), (torch.zeros(1, 2),))
    torch.export.save(program, folder / "cnn14-16k.pt2")
    shutil.copy(models_dir / "cnn14-16k.json", folder / "cnn14-16k.json")
    with pytest.raises(ManifestError, match="no embedded manifest"):
        artifacts.resolve("cnn14-16k", folder)


# 2. checked before every load

def test_a_pt2_changed_in_place_with_its_mtime_restored_is_refused(models_dir, tmp_path, monkeypatch):
    folder = tmp_path / "models"
    folder.mkdir()
    shutil.copy(models_dir / "cnn14-16k.pt2", folder)
    shutil.copy(models_dir / "cnn14-16k.json", folder)
    monkeypatch.setattr(artifacts, "_LOADED", {})
    artifacts.load("cnn14-16k", directory=folder)  # verified once
    target = folder / "cnn14-16k.pt2"
    stamp = target.stat()
    with open(target, "r+b") as f:  # flip one byte of the weights, as bit-rot or an in-place edit would
        f.seek(stamp.st_size // 2)
        byte = f.read(1)
        f.seek(stamp.st_size // 2)
        f.write(bytes([byte[0] ^ 0xFF]))
    os.utime(target, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))  # touch -r
    monkeypatch.setattr(artifacts, "_LOADED", {})  # a new process
    with pytest.raises(ChecksumMismatchError, match="sha256"):
        artifacts.load("cnn14-16k", directory=folder)


# 3. the feature cache cannot serve stale features

@pytest.mark.parity  # two evals; test_cache's racy-memo and rehash tests hold the mechanism in the fast tier
def test_audio_overwritten_in_place_with_its_mtime_kept_is_recomputed(models_dir, recordings_dir, tmp_path):
    gen, ref = _folders(recordings_dir, tmp_path)
    cache = FeatureCache(tmp_path / "cache")
    settings = dict(metrics=["fd", "fad", "psnr"], models_dir=models_dir, progress=False)
    before = evaluate(gen, ref, cache=cache, **settings).report["metrics"]
    target = gen / "other_00.wav"
    data, rate = sf.read(target, dtype="int16")
    stamp = target.stat()
    sf.write(target, np.ascontiguousarray(data[::-1]), rate, subtype="PCM_16")  # same size, other content
    os.utime(target, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    assert target.stat().st_size == stamp.st_size and target.stat().st_mtime_ns == stamp.st_mtime_ns
    cached = evaluate(gen, ref, cache=cache, **settings).report["metrics"]
    fresh = evaluate(gen, ref, cache=False, **settings).report["metrics"]
    assert cached == fresh and cached != before


# 4. a corrupt cache entry is a cache miss

DAMAGES = ("truncated", "empty", "random", "wrong_shapes", "wrong_outputs")


def _damage(entry, damage: str, rs: np.random.RandomState) -> None:
    raw = entry.read_bytes()
    if damage == "truncated":
        entry.write_bytes(raw[:len(raw) // 2])
    elif damage == "empty":
        entry.write_bytes(b"")
    elif damage == "random":
        entry.write_bytes(rs.bytes(len(raw)))
    else:
        with np.load(entry) as data:
            arrays = {k: data[k] for k in data.files}
        arrays = {k: v[..., :-1] for k, v in arrays.items()} if damage == "wrong_shapes" \
            else {"other": np.zeros(3, np.float32)}
        with open(entry, "wb") as f:
            np.savez(f, **arrays)


def test_a_corrupt_cache_entry_is_deleted_and_recomputed(models_dir, recordings_dir, tmp_path, decodes):
    gen, ref = _folders(recordings_dir, tmp_path, 2)
    cache = FeatureCache(tmp_path / "cache")
    settings = dict(metrics=["fd", "fad"], models_dir=models_dir, progress=False, cache=cache)
    first = evaluate(gen, ref, **settings).report["metrics"]
    entries = sorted(cache.features_dir.rglob("*.npz"))
    assert len(entries) == 8  # 4 files x 2 models; each kind of damage hits at least one entry
    rs = np.random.RandomState(0)
    for i, entry in enumerate(entries):
        _damage(entry, DAMAGES[i % len(DAMAGES)], rs)
    decodes.clear()
    again = evaluate(gen, ref, **settings).report["metrics"]
    assert again == first
    assert sorted(decodes) == sorted(os.listdir(gen) + os.listdir(ref))  # every entry was a miss
    decodes.clear()
    assert evaluate(gen, ref, **settings).report["metrics"] == first and decodes == []  # and was rewritten


# 5. cached rejection reasons name the right file

def test_a_cached_rejection_is_reported_under_each_files_own_name(models_dir, recordings_dir, tmp_path):
    gen, ref = _folders(recordings_dir, tmp_path, 3)
    broken = b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(20)
    (gen / "trunc.wav").write_bytes(broken)
    (ref / "other_trunc.wav").write_bytes(broken)  # same bytes, same cache key, another folder and name
    cache = FeatureCache(tmp_path / "cache")
    for _ in range(2):  # the second run reports both from the cache
        report = evaluate(gen, ref, metrics=["fd"], models_dir=models_dir, progress=False, cache=cache).report
        found = {(p["side"], p["file"]): p["reason"] for p in report["problems"]}
        assert set(found) == {("generated", "trunc.wav"), ("reference", "other_trunc.wav")}
        for reason in found.values():
            assert "cannot be decoded" in reason and str(tmp_path) not in reason and "trunc" not in reason


# 6. long clips do not take the machine down

def test_a_clip_too_long_for_the_memory_budget_is_refused_by_name_and_not_cached(models_dir, recordings_dir,
                                                                                 tmp_path, capsys):
    gen, ref = _folders(recordings_dir, tmp_path, 2)
    sf.write(gen / "long.wav", np.random.RandomState(1).standard_normal(16000 * 60).astype(np.float32) * 0.1, 16000)
    args = ["eval", str(gen), str(ref), "--models-dir", str(models_dir), "--metrics", "fd", "--workers", "0",
            "--json", str(tmp_path / "r.json")]
    # CNN14's pass is estimated at 64 MB + 48 KB per frame: 359 MB for a 60-s clip (6001 frames), 74 MB for 2 s
    assert cli.main([*args, "--max-memory", "250M"]) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    [problem] = report["problems"]
    assert problem["file"] == "long.wav" and "too long for memory" in problem["reason"]
    assert "250.0 MB budget" in problem["reason"] and "--max-memory" in problem["reason"]
    assert cli.main([*args, "--max-memory", "2G"]) == 0  # another budget: computed, not the cached refusal
    assert json.loads((tmp_path / "r.json").read_text())["problems"] == []


@pytest.mark.parity  # a MERT run (11 s); the CNN14 test above covers the guard in the fast tier
def test_mert_refusal_names_the_mert_chunk_that_fits(models_dir, recordings_dir, tmp_path):
    gen, ref = _folders(recordings_dir, tmp_path, 2)
    sf.write(gen / "long.wav", np.random.RandomState(1).standard_normal(16000 * 20).astype(np.float32) * 0.1, 16000)
    budget = 300_000_000
    with Evaluator(backbone="mert", metrics=["fd"], models_dir=models_dir, progress=False, cache=False,
                   max_memory=budget, batch_size=4) as evaluator:
        report = evaluator.evaluate(gen, ref).report
        memory = evaluator.stages[0].input.spec.memory
    [problem] = report["problems"]
    assert problem["file"] == "long.wav" and "too long for memory" in problem["reason"]
    seconds = int(problem["reason"].split("--mert-chunk ")[1].split()[0])
    # the advice is right: a batch of 4 windows that long fits the budget; 20 s did not fit even alone
    assert 1 <= seconds <= 10 and memory.pass_bytes(4, seconds * 24000) <= budget < memory.pass_bytes(1, 20 * 24000)
    with Evaluator(backbone="mert", metrics=["fd"], models_dir=models_dir, progress=False, cache=False,
                   max_memory=budget, batch_size=4, mert_chunk=seconds) as evaluator:
        assert evaluator.evaluate(gen, ref).report["problems"] == []  # following the advice works


# 7. clean errors for environment mistakes

def test_cuda_without_cuda_is_a_one_line_error(recordings_dir, models_dir, capsys, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    gen, ref = _folders(recordings_dir, tmp_path, 2)
    status = cli.main(["eval", str(gen), str(ref), "--models-dir", str(models_dir), "--device", "cuda", "--quiet"])
    err = capsys.readouterr().err
    assert status == 1 and "sees no CUDA device" in err and "--device cpu" in err and "Traceback" not in err


def test_an_artifact_without_a_needed_role_is_refused_with_the_export_command(models_dir, monkeypatch):
    real = artifacts.Manifest.roles
    monkeypatch.setattr(artifacts.Manifest, "roles",
                        lambda self: {r: o for r, o in real(self).items() if r != "logits"})
    with pytest.raises(ManifestError, match=r"role 'logits'.*audiofidelity models build cnn14-16k --source"):
        Evaluator(metrics=["isc"], models_dir=models_dir, progress=False)


def test_a_folder_where_every_file_is_bad_fails_with_a_summary(models_dir, recordings_dir, tmp_path, capsys):
    gen, ref = _folders(recordings_dir, tmp_path, 2)
    for f in gen.iterdir():
        f.unlink()
    (gen / "a.wav").write_bytes(b"")
    (gen / "b.wav").write_text("text")
    args = ["eval", str(gen), str(ref), "--models-dir", str(models_dir), "--metrics", "fd,kid", "--quiet",
            "--workers", "0"]
    status = cli.main(args)
    captured = capsys.readouterr()
    assert status == 1 and "no usable generated files (2 skipped, see problems)" in captured.err
    report = json.loads(captured.out)
    assert set(report["unavailable"].values()) == {"no usable generated files (2 skipped, see problems)"}
    assert cli.main([*args, "--per-file"]) == 0  # per-file output asked for: the report is the result


# 8. outputs fail early, never after the work

@pytest.mark.parametrize("option", ["--json", "--csv", "--save-features"])
def test_an_unwritable_output_fails_before_any_audio_is_decoded(models_dir, recordings_dir, tmp_path, capsys,
                                                                decodes, option):
    gen, ref = _folders(recordings_dir, tmp_path, 2)
    status = cli.main(["eval", str(gen), str(ref), "--models-dir", str(models_dir), "--metrics", "fd", "--quiet",
                       "--workers", "0", option, str(tmp_path / "missing" / "out.file")])
    err = capsys.readouterr().err
    assert status == 1 and option in err and "nothing was computed" in err and decodes == []
    assert cli.main(["eval", str(gen), str(ref), "--models-dir", str(models_dir), "--quiet", "--workers", "0",
                     option, str(tmp_path)]) == 1  # a folder is no file either


def test_stats_out_is_checked_before_the_work(models_dir, recordings_dir, tmp_path, capsys, decodes):
    gen, ref = _folders(recordings_dir, tmp_path, 2)
    status = cli.main(["stats", str(ref), "--out", str(tmp_path / "missing" / "ref.npz"),
                       "--models-dir", str(models_dir), "--quiet", "--workers", "0"])
    assert status == 1 and "--out" in capsys.readouterr().err and decodes == []


def test_json_file_output_prints_nothing_else_to_stdout(models_dir, recordings_dir, tmp_path, capsys):
    gen, ref = _folders(recordings_dir, tmp_path, 2)
    assert cli.main(["eval", str(gen), str(ref), "--models-dir", str(models_dir), "--metrics", "fd", "--quiet",
                     "--workers", "0", "--json", str(tmp_path / "r.json")]) == 0
    assert capsys.readouterr().out == ""
    assert json.loads((tmp_path / "r.json").read_text())["metrics"]["frechet_distance"] is not None


# 9. the no-models message tells the whole way out

def test_every_missing_artifact_is_named_at_once_with_its_origin_and_commands(recordings_dir, tmp_path, capsys):
    gen, ref = _folders(recordings_dir, tmp_path, 2)
    empty = tmp_path / "models"
    empty.mkdir()
    status = cli.main(["eval", str(gen), str(ref), "--models-dir", str(empty), "--quiet"])
    err = capsys.readouterr().err
    assert status == 1 and "2 model artifact(s) missing" in err and "cnn14-16k, vggish" in err
    for text in ("Zenodo record 3987831", "torchvggish GitHub release v0.1",
                 f"audiofidelity models build cnn14-16k vggish --models-dir {empty}", "(CC-BY-4.0)",
                 f"audiofidelity models build vggish --source vggish-10086976.pth --pca "
                 f"vggish_pca_params-970ea276.pth --models-dir {empty}"):
        assert text in err, text


# 10. same answer whatever the cache holds

@pytest.mark.parity  # the fast tier's sibling: test_runner's bit-stability test (VGGish, after cache hits of a subset)
def test_features_do_not_depend_on_what_the_cache_already_held(models_dir, recordings_dir, tmp_path):
    gen, ref = _folders(recordings_dir, tmp_path, 8)
    settings = dict(metrics=["fd", "fad"], models_dir=models_dir, progress=False)
    warm = FeatureCache(tmp_path / "warm")
    evaluate(gen, ref, cache=warm, **settings)  # 8 + 8 clips cached, computed alongside other clips
    after_warm = evaluate(gen, ref, limit=3, cache=warm, **settings).report["metrics"]
    fresh = evaluate(gen, ref, limit=3, cache=FeatureCache(tmp_path / "fresh"), **settings).report["metrics"]
    assert after_warm == fresh

"""Feature cache: a second run decodes nothing and matches bit for bit; a changed file is re-decoded alone."""
import json
import os
import shutil

import numpy as np
import pytest
import soundfile as sf

from audiofidelity import cli
from audiofidelity.cache import FeatureCache
from audiofidelity import features as pipeline
from audiofidelity.evaluate import evaluate



@pytest.fixture()
def folders(recordings_dir, tmp_path):
    gen, ref = tmp_path / "gen", tmp_path / "ref"
    gen.mkdir(), ref.mkdir()
    for name in sorted(os.listdir(recordings_dir / "reference"))[:3]:
        shutil.copy(recordings_dir / "reference" / name, ref / name)
    for name in sorted(os.listdir(recordings_dir / "unpaired"))[:3]:
        shutil.copy(recordings_dir / "unpaired" / name, gen / name)
    (gen / "broken.wav").write_bytes(b"RIFF not really")
    return gen, ref


def _run(folders, models_dir, cache):
    return evaluate(*folders, metrics=["fd", "fad", "kid"], models_dir=models_dir, progress=False, cache=cache)


def test_second_run_decodes_nothing_and_matches_bit_for_bit(folders, models_dir, tmp_path, decodes):
    cache = FeatureCache(tmp_path / "cache")
    first = _run(folders, models_dir, cache)
    listed = len(os.listdir(folders[0])) + len(os.listdir(folders[1]))
    assert len(decodes) == listed
    decodes.clear()
    second = _run(folders, models_dir, cache)
    assert decodes == []
    assert second.report["metrics"] == first.report["metrics"]
    assert second.report["problems"] == first.report["problems"]  # the broken file is reported from the cache
    for side in ("generated", "reference"):
        a, b = first.sides[side], second.sides[side]
        assert a.files == b.files
        for output in a.per_file:
            assert all(np.array_equal(x, y) for x, y in zip(a.per_file[output], b.per_file[output]))


@pytest.mark.parity  # 6 s; test_trust's in-place overwrite test keeps a changed file's recomputation fast
def test_a_changed_file_is_the_only_one_decoded_again(folders, models_dir, tmp_path, decodes, recordings_dir):
    cache = FeatureCache(tmp_path / "cache")
    _run(folders, models_dir, cache)
    gen = folders[0]
    target = sorted(p for p in gen.iterdir() if p.name != "broken.wav")[0]
    replacement = sorted((recordings_dir / "generated").iterdir())[0]
    shutil.copy(replacement, target)  # new bytes under the old name
    decodes.clear()
    _run(folders, models_dir, cache)
    assert decodes == [target.name]


def test_a_touched_but_unchanged_file_is_rehashed_not_decoded(folders, models_dir, tmp_path, decodes):
    cache = FeatureCache(tmp_path / "cache")
    first = _run(folders, models_dir, cache)
    target = sorted(folders[0].iterdir())[0]
    os.utime(target, ns=(target.stat().st_atime_ns, target.stat().st_mtime_ns + 10**9))
    decodes.clear()
    second = _run(folders, models_dir, cache)
    assert decodes == []  # the key is the content hash: same bytes, same features
    assert second.report["metrics"] == first.report["metrics"]


@pytest.mark.parity  # three evaluations; the cache key's content is also checked by test_trust in the fast tier
def test_other_settings_do_not_share_entries(folders, models_dir, tmp_path, decodes):
    from audiofidelity.audio import Conditioning

    cache = FeatureCache(tmp_path / "cache")
    _run(folders, models_dir, cache)
    decodes.clear()
    evaluate(*folders, metrics=["fd"], models_dir=models_dir, progress=False, cache=cache,
             conditioning=Conditioning(channel="mean"))
    assert len(decodes) == len(os.listdir(folders[0])) + len(os.listdir(folders[1]))


def test_no_cache_computes_everything_and_writes_nothing(folders, models_dir, tmp_path, decodes, monkeypatch):
    monkeypatch.setenv("AUDIOFIDELITY_CACHE", str(tmp_path / "envcache"))
    assert cli.main(["eval", *map(str, folders), "--metrics", "fd", "--models-dir", str(models_dir), "--quiet",
                     "--no-cache"]) == 0
    assert not (tmp_path / "envcache").exists()
    assert cli.main(["eval", *map(str, folders), "--metrics", "fd", "--models-dir", str(models_dir),
                     "--quiet"]) == 0
    assert (tmp_path / "envcache" / "features").is_dir()


def test_cache_info_and_clear(folders, models_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("AUDIOFIDELITY_CACHE", str(tmp_path / "envcache"))
    assert cli.main(["eval", *map(str, folders), "--metrics", "fd", "--models-dir", str(models_dir),
                     "--quiet"]) == 0
    capsys.readouterr()
    assert cli.main(["cache", "info"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["root"] == str(tmp_path / "envcache")
    assert info["feature_entries"] == len(os.listdir(folders[0])) + len(os.listdir(folders[1]))
    assert cli.main(["cache", "clear"]) == 0
    capsys.readouterr()
    assert cli.main(["cache", "info"]) == 0
    assert json.loads(capsys.readouterr().out)["feature_entries"] == 0


@pytest.mark.parity  # test_trust's corrupt-entry test covers truncation and four other damages in the fast tier
def test_a_corrupt_entry_is_recomputed(folders, models_dir, tmp_path):
    cache = FeatureCache(tmp_path / "cache")
    first = _run(folders, models_dir, cache)
    for entry in (tmp_path / "cache" / "features").rglob("*.npz"):
        entry.write_bytes(b"truncated")
    second = _run(folders, models_dir, cache)
    assert second.report["metrics"] == first.report["metrics"]


@pytest.fixture()
def program_loads(monkeypatch):
    """Artifacts whose program was read from disk during the test (a fresh process: nothing loaded yet)."""
    from audiofidelity import artifacts

    loads = []
    real = artifacts._load_program
    monkeypatch.setattr(artifacts, "_LOADED", {})
    monkeypatch.setattr(artifacts, "_load_program", lambda path, device: loads.append(path.name) or real(path, device))
    return loads


@pytest.fixture()
def paired_folders(recordings_dir, tmp_path):
    gen, ref = tmp_path / "pgen", tmp_path / "pref"
    gen.mkdir(), ref.mkdir()
    for name in sorted(os.listdir(recordings_dir / "generated"))[:6]:
        shutil.copy(recordings_dir / "generated" / name, gen)
        shutil.copy(recordings_dir / "reference" / name, ref)
    return gen, ref


def test_a_fully_cached_run_loads_no_program_and_starts_no_worker(paired_folders, models_dir, tmp_path,
                                                                  program_loads, decodes, monkeypatch):
    cache = FeatureCache(tmp_path / "cache")
    settings = dict(models_dir=models_dir, progress=False, cache=cache)  # every metric, FAD included
    first = evaluate(*paired_folders, **settings)
    assert sorted(program_loads) == ["cnn14-16k.pt2", "vggish.pt2"]
    program_loads.clear(), decodes.clear()
    monkeypatch.setattr(pipeline, "spawn_pool", lambda workers: pytest.fail("a worker pool was started"))
    monkeypatch.setattr(pipeline, "CHUNK_FILES", 2)  # so that 6 files would use workers
    second = evaluate(*paired_folders, workers=2, **settings)
    assert program_loads == [] and decodes == []
    assert second.report["metrics"] == first.report["metrics"]
    assert second.report["provenance"]["artifacts"] == first.report["provenance"]["artifacts"]


def test_cached_pair_metrics_equal_fresh_ones_and_an_edit_invalidates_only_its_pairs(
        paired_folders, models_dir, tmp_path, recordings_dir, monkeypatch):
    from audiofidelity import paired

    computed = []
    real = paired._one_pair
    monkeypatch.setattr(paired, "_one_pair", lambda g, r, name, **kw: computed.append(name) or real(g, r, name, **kw))
    cache = FeatureCache(tmp_path / "cache")
    settings = dict(metrics=["psnr", "ssim", "lsd"], per_file=True, progress=False)
    fresh = evaluate(*paired_folders, cache=False, **settings).report
    evaluate(*paired_folders, cache=cache, **settings)
    computed.clear()
    cached = evaluate(*paired_folders, cache=cache, **settings).report
    assert computed == [] and cached["per_file"] == fresh["per_file"] and cached["metrics"] == fresh["metrics"]
    gen = paired_folders[0]
    target = sorted(gen.iterdir())[1]
    data, rate = sf.read(target, dtype="float32")
    sf.write(target, data * 0.5, rate)  # new content under the same name
    after = evaluate(*paired_folders, cache=cache, **settings).report
    assert computed == [target.name]
    changed = [name for name in fresh["per_file"] if after["per_file"][name] != fresh["per_file"][name]]
    assert changed == [target.name]
    assert evaluate(*paired_folders, cache=False, **settings).report["per_file"] == after["per_file"]


@pytest.mark.parity  # two evaluations
def test_batching_across_clips_keeps_its_own_entries(folders, models_dir, tmp_path, decodes):
    cache = FeatureCache(tmp_path / "cache")
    _run(folders, models_dir, cache)
    decodes.clear()
    report = evaluate(*folders, metrics=["fd"], models_dir=models_dir, progress=False, cache=cache,
                      batch_across_clips=True).report
    assert len(decodes) == len(os.listdir(folders[0])) + len(os.listdir(folders[1]))  # no exact entry reused
    assert report["provenance"]["batch_across_clips"] is True


def test_a_file_changed_within_the_clocks_tick_of_its_hashing_is_hashed_again(tmp_path, monkeypatch):
    """The kernel stamps files from a coarse clock: a same-size rewrite right after hashing can keep every stamp
    (simulated here by putting mtime back; ctime then differs by well under a tick's worth of 2 s). A memo is
    only written for a file older than ``RACY_NS``, so the second content is hashed, not taken for the first."""
    import hashlib
    import time

    from audiofidelity import cache as cache_module

    target = tmp_path / "a.wav"
    target.write_bytes(b"A" * 64)
    store = FeatureCache(tmp_path / "cache")
    assert store.content_sha256(target) == hashlib.sha256(b"A" * 64).hexdigest()
    stamp = target.stat()
    target.write_bytes(b"B" * 64)
    os.utime(target, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    assert store.content_sha256(target) == hashlib.sha256(b"B" * 64).hexdigest()
    assert not list(store.hashes_dir.glob("*.json"))  # nothing vouched for a file this fresh
    later = time.time_ns() + 2 * cache_module.RACY_NS
    monkeypatch.setattr(time, "time_ns", lambda: later)  # the same file, long settled
    assert store.content_sha256(target) == hashlib.sha256(b"B" * 64).hexdigest()
    assert len(list(store.hashes_dir.glob("*.json"))) == 1

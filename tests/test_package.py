"""Package hygiene: light import, no heavy stacks, the documented entry points work."""
import subprocess
import sys

import pytest

from audiofidelity.evaluate import is_paired, list_folder


def test_import_loads_none_of_the_heavy_stacks_nor_the_exporters():
    code = ("import sys, audiofidelity, audiofidelity.cli;"
            "print(' '.join(sorted(sys.modules)))")
    modules = set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
                  .stdout.split())
    loaded = {m.split(".")[0] for m in modules}
    assert not loaded & {"transformers", "torchaudio", "torchlibrosa", "skimage", "sklearn"}
    assert "torch" not in loaded and "librosa" not in loaded  # loaded on first use only
    assert not any(m.startswith("audiofidelity.exporters") for m in modules)


def test_python_dash_m_and_version():
    done = subprocess.run([sys.executable, "-m", "audiofidelity", "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.startswith("audiofidelity ")


@pytest.mark.parametrize("gen,ref,paired", [
    (["a", "b"], ["a", "b"], True),
    ([f"{i}" for i in range(100)], [f"{i}" for i in range(99)], False),  # 99/100 is not > 99%
    ([f"{i}" for i in range(1000)], [f"{i}" for i in range(999)], True),  # 999/1000 is
    (["a", "b"], ["c", "d"], False),
])
def test_pairing_rule_is_audioldm_evals(gen, ref, paired):
    assert is_paired(gen, ref) is paired


def test_limit_keeps_the_first_sorted_names(tmp_path):
    for name in ["c.wav", "a.wav", "b.wav"]:
        (tmp_path / name).write_bytes(b"")
    assert list_folder(tmp_path, limit=2) == ["a.wav", "b.wav"]


def test_pyproject_packages_name_every_package_folder_and_the_exporters():
    from pathlib import Path

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    root = Path(__file__).resolve().parents[1]
    setup = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    runtime = root / "runtime"
    folders = {".".join(p.parent.relative_to(runtime).parts) for p in runtime.glob("audiofidelity/**/__init__.py")
               if not p.parent.is_symlink()}
    assert set(setup["packages"]) == folders | {"audiofidelity.exporters"}
    assert setup["package-dir"]["audiofidelity.exporters"] == "export_scripts"
    assert (root / "export_scripts" / "__init__.py").is_file()


@pytest.mark.parametrize("platform,env,expected", [
    ("linux", {}, "HOME/.cache/audiofidelity"),
    ("linux", {"XDG_CACHE_HOME": "/x"}, "/x/audiofidelity"),
    ("darwin", {}, "HOME/Library/Caches/audiofidelity"),
    ("win32", {"LOCALAPPDATA": "/appdata"}, "/appdata/audiofidelity"),
    ("darwin", {"AUDIOFIDELITY_CACHE": "/mine"}, "/mine"),
])
def test_the_cache_and_default_models_folder_follow_the_platforms_convention(monkeypatch, platform, env, expected):
    from pathlib import Path

    from audiofidelity import artifacts

    for name in ("AUDIOFIDELITY_CACHE", "XDG_CACHE_HOME", "LOCALAPPDATA", "AUDIOFIDELITY_MODELS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(sys, "platform", platform)
    monkeypatch.setenv("HOME", "/home/u")
    want = Path(expected.replace("HOME", "/home/u"))
    assert artifacts.cache_root() == want and artifacts.models_dir() == want / "models"
    monkeypatch.setenv("AUDIOFIDELITY_MODELS", "/m")
    assert artifacts.models_dir() == Path("/m")

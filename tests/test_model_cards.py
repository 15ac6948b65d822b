"""Model cards agree with the registry and the manifests; publish.py --dry-run stages what it would upload."""
import json
import re
import subprocess
import sys

import pytest

from audiofidelity import registry
from audiofidelity.artifacts import file_sha256
from conftest import ROOT

CARDS = ROOT / "model_cards"
PLACEHOLDERS = {"sha256", "source_sha256", "torch", "frontend"}


def front_matter(text: str) -> dict[str, str]:
    """The card's YAML metadata as flat key -> value strings (the cards use one line per key)."""
    block = re.match(r"---\n(.*?)\n---\n", text, re.S)
    assert block, "card has no YAML front matter"
    return dict(line.split(": ", 1) for line in block.group(1).splitlines())


@pytest.mark.parametrize("name", registry.names())
def test_card_metadata_matches_the_registry(name):
    text = (CARDS / f"{name}.md").read_text()
    meta, entry = front_matter(text), registry.registry_entry(name)
    assert meta["license"] == entry.license.lower()
    assert meta["artifact"] == name and meta["library_name"] == "audiofidelity"
    assert meta["source_checkpoint"] == entry.source_url
    assert set(re.findall(r"{{(\w+)}}", text)) == PLACEHOLDERS
    if entry.architecture == "mert":
        assert meta["base_model"] == "m-a-p/MERT-v1-95M" and "non-commercial" in text


@pytest.mark.parametrize("name", ["cnn14-16k", "vggish", "mert-v1-95m"])
def test_publish_dry_run_stages_files_card_and_pin_that_agree(name, models_dir, tmp_path):
    out = tmp_path / "upload"
    done = subprocess.run([sys.executable, str(ROOT / "export_scripts" / "publish.py"), name, "--repo-id",
                           f"audiofidelity/{name}", "--dir", str(models_dir), "--dry-run", str(out)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    pin = json.loads(done.stdout)["artifacts"][name]["hub"]
    manifest = json.loads((out / f"{name}.json").read_text())
    card = (out / "README.md").read_text()
    assert pin["sha256"] == manifest["artifact"]["sha256"] == file_sha256(out / f"{name}.pt2")
    assert pin["manifest_sha256"] == file_sha256(out / f"{name}.json")
    assert pin["repo_id"] == f"audiofidelity/{name}" and pin["revision"] is None
    assert "{{" not in card and manifest["artifact"]["sha256"] in card and manifest["exported_with"]["torch"] in card
    assert front_matter(card)["license"] == registry.registry_entry(name).license.lower() == manifest["license"].lower()
    expected = {f"{name}.pt2", f"{name}.json", "README.md"} | ({"vggish.pca.npz"} if name == "vggish" else set())
    assert {p.name for p in out.iterdir()} == expected

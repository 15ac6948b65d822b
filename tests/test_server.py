"""The evaluation service in-process (FastAPI's test client): every endpoint, error case and upload check."""
from __future__ import annotations

import io
import os
import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from audiofidelity import features  # noqa: E402
from audiofidelity.evaluate import METRICS  # noqa: E402
from audiofidelity.metric_table import api_names  # noqa: E402
from audiofidelity.server import worker  # noqa: E402
from audiofidelity.server.app import ServerConfig, create_app  # noqa: E402
from audiofidelity.server.jobstore import MAX_ATTEMPTS, JobStore  # noqa: E402
from audiofidelity.server.uploads import UploadError, UploadLimits, check_name  # noqa: E402
from audiofidelity.server.worker import RunSettings  # noqa: E402

NAMES = ["clip_00.wav", "clip_01.wav", "clip_02.wav"]


def wav_bytes(seconds: float = 1.0, rate: int = 16000, seed: int = 0) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, 0.3 * np.random.default_rng(seed).standard_normal(int(seconds * rate)), rate, format="WAV")
    return buffer.getvalue()


def upload(recordings_dir: Path, names=NAMES) -> list:
    """Multipart ``files`` for the generated and reference recordings ``names``."""
    return [(f"{side}_files", (n, (recordings_dir / side / n).read_bytes()))
            for side in ("generated", "reference") for n in names]


def make_client(tmp_path: Path, models_dir: Path | None = None, **config) -> TestClient:
    settings = RunSettings(models_dir=models_dir, cache=False)
    return TestClient(create_app(ServerConfig(data_dir=tmp_path / "data", run=settings, **config)))


def wait_finished(client: TestClient, job_id: str, seconds: float = 120) -> dict:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        job = client.get(f"/jobs/{job_id}").json()
        if job["status"] in ("completed", "failed"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish in {seconds} s: {job}")


def leftovers(tmp_path: Path) -> list[str]:
    """Files under the data dir other than the job database."""
    data = tmp_path / "data"
    return sorted(str(p.relative_to(data)) for p in data.rglob("*") if p.is_file() and "jobs.sqlite3" not in p.name)


def test_information_endpoints(tmp_path, models_dir):
    with make_client(tmp_path, models_dir) as client:
        root = client.get("/").json()
        assert {"/health", "/metrics", "/backbones", "/models", "/evaluate", "/jobs", "/docs"} <= set(root["endpoints"])
        health = client.get("/health").json()
        assert health["status"] == "healthy" and health["cuda_available"] in (True, False)
        assert health["memory"]["rss_bytes"] > 0 and health["models"]["loaded_models"] == []
        metrics = client.get("/metrics").json()
        assert len(metrics["available_metrics"]) == len(METRICS) and metrics["recommended"] == ["FAD", "ISc"]
        assert set(metrics["paired_only"]) == {"KL", "KL_Sigmoid", "PSNR", "SSIM", "LSD", "CHROMA_SIMILARITY"}
        assert client.get("/backbones").json()["sampling_rates"] == {"cnn14": [16000, 32000], "mert": [16000, 32000],
                                                                      "passt": [32000], "passt-20s": [32000],
                                                                      "passt-30s": [32000]}
        assert client.get("/backbones").json()["fad_models"]["mert-v1-95m-7"] == {
            "artifact": "mert-v1-95m", "toolkit": "fadtk", "layer": 7}
        models = {m["name"]: m for m in client.get("/models").json()["models"]}
        assert models["cnn14-16k"]["resolves"] == "local" and not models["cnn14-16k"]["loaded"]
        assert models["encodec-48k"]["channels"] == 2 and models["encodec-48k"]["serves"] == "--fad-model encodec-48k"
        docs = client.get("/docs").text  # names no other host: its assets come from the package
        assert "swagger-ui" in docs and not re.findall(r"(?:src|href)=[\"']?(?:https?:)?//", docs)
        assert client.get("/redoc").status_code == 404  # redoc's script fetches its logo from a CDN
        assert client.get("/docs-assets/swagger-ui-bundle.js").status_code == 200
        schema = client.get("/openapi.json").json()["paths"]["/evaluate"]["post"]["requestBody"]
        assert "generated_files" in schema["content"]["multipart/form-data"]["schema"]["properties"]


def test_a_metric_added_to_the_table_is_listed_and_accepted_by_its_api_name(tmp_path, recordings_dir, monkeypatch):
    from audiofidelity.metric_table import BACKBONE_METRICS, MetricSpec

    # one list of metrics: the server derives its names from the table (a second list raised KeyError here)
    monkeypatch.setitem(METRICS, "toy", MetricSpec(("toy_value",), lambda data: {"toy_value": 0.0}, needs=None,
                                                   description="a toy metric"))
    monkeypatch.setitem(METRICS, "toy_two", MetricSpec(("toy_two_value",), lambda data: {"toy_two_value": 1.0},
                                                       needs=None, description="another", api_name="ToyTwo"))
    with make_client(tmp_path, run_jobs=False) as client:
        answer = client.get("/metrics")
        assert answer.status_code == 200, answer.text
        metrics = answer.json()
        assert metrics["available_metrics"][-2:] == ["TOY", "ToyTwo"]  # no api_name: the name in upper case
        assert metrics["descriptions"]["TOY"] == "a toy metric (lower is better)"
        assert metrics["result_keys"]["ToyTwo"] == ["toy_two_value"]
        assert metrics["by_backbone"]["cnn14"][-2:] == ["TOY", "ToyTwo"]  # a metric needing no model: every backbone
        assert BACKBONE_METRICS["mert"][-2:] == ("toy", "toy_two")
        posted = client.post("/evaluate", files=upload(recordings_dir), data={"metrics": "FD,Toy,TOYTWO"})
        assert posted.status_code == 202, posted.json()
        assert client.get(f"/jobs/{posted.json()['job_id']}").json()["requested_metrics"] == ["fd", "toy", "toy_two"]


def test_a_route_runs_alone_with_its_dependencies_given(tmp_path):
    from fastapi import FastAPI
    from starlette.exceptions import HTTPException

    from audiofidelity.server import routes

    store = JobStore(tmp_path / "jobs.sqlite3")
    store.add("a" * 32, {"backbone": "cnn14", "sampling_rate": 16000, "metrics": ["fd"], "limit_num": None,
                         "uploads": {}}, "paired")
    assert routes.get_job("a" * 32, store=store)["status"] == "queued"  # a plain function, called with its store
    with pytest.raises(HTTPException, match="not found"):
        routes.get_job("b" * 32, store=store)
    app = FastAPI()  # the router alone, its store provider overridden: no data folder, no worker, no middleware
    app.include_router(routes.router)
    app.dependency_overrides[routes.get_store] = lambda: store
    listed = TestClient(app).get("/jobs", params={"status": "queued"}).json()
    assert [job["job_id"] for job in listed["jobs"]] == ["a" * 32] and listed["next_offset"] is None
    store.close()


def test_a_job_runs_to_its_report_and_loads_models_once(tmp_path, models_dir, recordings_dir, monkeypatch):
    from audiofidelity import artifacts

    loads = []
    real_load = artifacts._load_program
    monkeypatch.setattr(artifacts, "_LOADED", {})  # a fresh process
    monkeypatch.setenv("AUDIOFIDELITY_CACHE", str(tmp_path / "own-cache"))  # nothing cached: the models must run
    monkeypatch.setattr(artifacts, "_load_program", lambda path, device: loads.append(path.stem) or
                        real_load(path, device))
    with make_client(tmp_path, models_dir) as client:
        first = client.post("/evaluate", files=upload(recordings_dir), data={"metrics": "FD,psnr"})
        assert first.status_code == 202 and first.headers["location"] == f"/jobs/{first.json()['job_id']}"
        assert first.json()["evaluation_mode"] == "paired"
        job = wait_finished(client, first.json()["job_id"])
        assert job["status"] == "completed", job
        assert set(job["metrics"]) == {"frechet_distance", "psnr"} and job["requested_metrics"] == ["fd", "psnr"]
        assert job["files"]["pairs"] == 3 and job["provenance"]["artifacts"][0]["name"] == "cnn14-16k"
        assert client.get("/health").json()["models"]["loaded_models"] == ["cnn14-16k"]
        second = wait_finished(client, client.post("/evaluate", files=upload(recordings_dir, NAMES[:2]),
                                                   data={"metrics": "fd"}).json()["job_id"])
        assert second["status"] == "completed" and second["files"]["pairs"] == 2
        assert loads == ["cnn14-16k"]  # the second job reused the loaded model
    assert leftovers(tmp_path) == []  # uploads are removed once a job has finished


def test_a_job_that_cannot_run_fails_with_its_reason(tmp_path, recordings_dir):
    with make_client(tmp_path, tmp_path / "no-models") as client:
        job = wait_finished(client, client.post("/evaluate", files=upload(recordings_dir),
                                                data={"metrics": "fd"}).json()["job_id"])
    assert job["status"] == "failed" and "cnn14-16k" in job["error"] and job["metrics"] is None


def test_signal_metrics_need_no_model(tmp_path, recordings_dir):
    with make_client(tmp_path, tmp_path / "no-models") as client:
        job = wait_finished(client, client.post("/evaluate", files=upload(recordings_dir),
                                                data={"metrics": "PSNR,SSIM,LSD"}).json()["job_id"])
    assert job["status"] == "completed" and set(job["metrics"]) == {"psnr", "ssim", "lsd"}


def test_a_job_computes_fad_with_the_fad_model_it_names(tmp_path, models_dir, recordings_dir):
    with make_client(tmp_path, models_dir) as client:
        posted = client.post("/evaluate", files=upload(recordings_dir), data={"metrics": "FAD", "fad_model": "cnn14-16k"})
        job = wait_finished(client, posted.json()["job_id"])
    assert job["status"] == "completed" and job["fad_model"] == "cnn14-16k", job
    assert job["provenance"]["fad_model"]["name"] == "cnn14-16k" and job["metrics"]["frechet_audio_distance"] > 0


@pytest.mark.parametrize("fields, message", [
    ({"backbone": "vggish"},
     "Invalid backbone 'vggish'. Available: ['cnn14', 'mert', 'passt', 'passt-20s', 'passt-30s']"),
    ({"sampling_rate": "44100"}, "Invalid sampling_rate 44100 for cnn14. Available: [16000, 32000]"),
    ({"sampling_rate": "fast"}, "sampling_rate must be an integer"),
    ({"metrics": "FAD,CLAP"}, "Invalid metrics: ['clap']"),
    ({"metrics": "fd_layers"}, "not available with backbone 'cnn14'"),
    ({"limit_num": "0"}, "limit_num must be >= 1"),
    ({"fad_model": "clap"}, "Invalid fad_model 'clap'. Available: ['vggish', 'cnn14-8k'"),
])
def test_invalid_settings_are_refused_with_a_readable_error(tmp_path, recordings_dir, fields, message):
    with make_client(tmp_path, run_jobs=False) as client:
        answer = client.post("/evaluate", files=upload(recordings_dir), data=fields)
    assert answer.status_code == 400 and message in answer.json()["error"]
    assert leftovers(tmp_path) == []


def test_missing_sides_are_refused(tmp_path, recordings_dir):
    with make_client(tmp_path, run_jobs=False) as client:
        only_generated = [f for f in upload(recordings_dir) if f[0] == "generated_files"]
        answer = client.post("/evaluate", files=only_generated)
        free = ", ".join(api_names()[m] for m, spec in METRICS.items() if spec.reference_free)
        assert answer.status_code == 400 and answer.json()["error"] == (f"No reference files provided (only "
                                                                        f"reference-free metrics, {free}, run "
                                                                        f"without them)")
        answer = client.post("/evaluate", files=only_generated, data={"reference_files": "not a file"})
        assert answer.status_code == 400 and "reference_files must be file uploads" in answer.json()["error"]


@pytest.mark.parametrize("name, content, status, message", [
    ("../escape.wav", None, 400, "is a path"),
    ("sub/dir.wav", None, 400, "is a path"),
    ("..\\escape.wav", None, 400, "is a path"),
    ("..", None, 400, "is a path"),
    (".hidden.wav", None, 400, "starts with a dot"),
    ("empty.wav", b"", 400, "empty file (0 bytes)"),
    ("notes.wav", b"these are not audio bytes", 415, "not audio"),
    ("fake.wav", b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk", 415, "cannot be decoded"),
    ("big.wav", wav_bytes(seconds=2.0), 413, "larger than the 40000 bytes allowed per file"),
])
def test_bad_uploads_are_refused_and_leave_nothing_behind(tmp_path, name, content, status, message):
    files = [("generated_files", ("a.wav", wav_bytes(0.5))), ("reference_files", ("a.wav", wav_bytes(0.5))),
             ("generated_files", (name, wav_bytes(0.5) if content is None else content))]
    with make_client(tmp_path, run_jobs=False, limits=UploadLimits(max_file_bytes=40_000)) as client:
        answer = client.post("/evaluate", files=files)
        assert answer.status_code == status and message in answer.json()["error"], answer.json()
        assert client.get("/jobs").json()["total"] == 0
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("name", ["bell\x07.wav", "tab\t.wav", "nul\x00.wav", "x" * 201 + ".wav", ""])
def test_control_characters_and_overlong_names_are_refused(name):
    # not through HTTP: clients percent-encode control characters in multipart file names
    with pytest.raises(UploadError):
        check_name(name)
    assert check_name("Grüße (take 2).wav") == "Grüße (take 2).wav"


def test_duplicate_names_on_one_side_are_refused(tmp_path, recordings_dir):
    files = upload(recordings_dir) + [("reference_files", ("clip_00.wav", wav_bytes()))]
    with make_client(tmp_path, run_jobs=False) as client:
        answer = client.post("/evaluate", files=files)
    assert answer.status_code == 400 and "uploaded twice" in answer.json()["error"]
    assert leftovers(tmp_path) == []


def test_request_limits_on_size_and_file_count(tmp_path, recordings_dir):
    limits = UploadLimits(max_request_bytes=300_000, max_files=4)
    with make_client(tmp_path, run_jobs=False, limits=limits) as client:
        answer = client.post("/evaluate", files=upload(recordings_dir))  # 6 files, about 1 MB
        assert answer.status_code == 413 and "over the limit of 300000 bytes" in answer.json()["error"]
        small = [(f"{side}_files", (f"{i}.wav", wav_bytes(0.2, seed=i))) for side in ("generated", "reference")
                 for i in range(3)]
        answer = client.post("/evaluate", files=small)
        assert answer.status_code == 400 and "Too many files" in answer.json()["error"]
        assert client.post("/evaluate", files=small[1:5]).status_code == 202
    assert [p.split("/")[-1] for p in leftovers(tmp_path)] == ["1.wav", "2.wav", "0.wav", "1.wav", "request.json"]


def test_both_sides_keep_their_own_file_of_the_same_name(tmp_path):
    generated, reference = wav_bytes(seed=1), wav_bytes(seed=2)
    with make_client(tmp_path, run_jobs=False) as client:
        job_id = client.post("/evaluate", files=[("generated_files[]", ("a.wav", generated)),  # both spellings
                                                 ("reference_files", ("a.wav", reference))]).json()["job_id"]
    folder = tmp_path / "data" / "jobs" / job_id
    assert (folder / "generated" / "a.wav").read_bytes() == generated
    assert (folder / "reference" / "a.wav").read_bytes() == reference


def test_a_token_guards_every_endpoint_but_the_root_and_health(tmp_path, recordings_dir):
    auth = {"Authorization": "Bearer s3cret"}
    with make_client(tmp_path, run_jobs=False, token="s3cret") as client:
        assert client.post("/evaluate", files=upload(recordings_dir)).status_code == 401
        wrong = client.post("/evaluate", files=upload(recordings_dir), headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and wrong.json()["error"] == "missing or wrong bearer token"
        good = client.post("/evaluate", files=upload(recordings_dir), headers=auth)
        assert good.status_code == 202
        job_id = good.json()["job_id"]
        private = ["/metrics", "/backbones", "/models", "/jobs", f"/jobs/{job_id}", "/docs", "/openapi.json"]
        for path in private:
            refused = client.get(path)
            assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer", path
            assert job_id not in refused.text and "a.wav" not in refused.text
            assert client.get(path, headers=auth).status_code == 200, path
        for path in ("/", "/health", "/ui/app.js", "/docs-assets/swagger-ui-bundle.js"):  # static files: no data
            assert client.get(path).status_code == 200, path
        page = client.get("/", headers={"Accept": "text/html"})
        assert page.headers["content-type"].startswith("text/html") and job_id not in page.text
        assert client.get("/ui/../jobs").status_code == 401  # no way around the token through the static mounts
        assert client.get("/docs-assets/..%2Fjobs").status_code in (401, 404)
        assert client.delete(f"/jobs/{job_id}").status_code == 401
        assert client.delete(f"/jobs/{job_id}", headers=auth).status_code == 200


def test_no_response_names_a_server_side_path(tmp_path, models_dir, recordings_dir):
    with make_client(tmp_path, models_dir) as client:
        job_id = client.post("/evaluate", files=upload(recordings_dir), data={"metrics": "FD,psnr"}).json()["job_id"]
        job = wait_finished(client, job_id)
        assert job["status"] == "completed"
        bad = client.post("/evaluate", files=[("generated_files", ("x.wav", b"RIFF" + b"\0" * 60)),
                                              ("reference_files", ("x.wav", b"RIFF" + b"\0" * 60))])
        assert bad.status_code == 415 and "generated/x.wav" in bad.json()["error"]
        bodies = [bad.text] + [client.get(path).text for path in ("/", "/health", "/metrics", "/backbones", "/models",
                                                                   "/jobs", f"/jobs/{job_id}")]
    for body in bodies:
        assert str(tmp_path) not in body and str(models_dir) not in body
    assert job["files"]["generated"]["folder"] == "generated"  # job-relative names only


def test_delete_and_pagination(tmp_path, recordings_dir):
    with make_client(tmp_path, run_jobs=False) as client:
        ids = [client.post("/evaluate", files=upload(recordings_dir, NAMES[:1])).json()["job_id"] for _ in range(3)]
        page = client.get("/jobs", params={"limit": 2}).json()
        assert page["total"] == 3 and [j["job_id"] for j in page["jobs"]] == ids[::-1][:2] and page["next_offset"] == 2
        last = client.get("/jobs", params={"limit": 2, "offset": 2}).json()
        assert [j["job_id"] for j in last["jobs"]] == ids[:1] and last["next_offset"] is None
        assert client.get("/jobs", params={"status": "queued"}).json()["total"] == 3
        assert client.get("/jobs", params={"status": "done"}).status_code == 400
        bad_page = client.get("/jobs", params={"limit": 0})
        assert bad_page.status_code == 400 and "limit" in bad_page.json()["error"]
        for value in ("99999999999999999999999", "-1", "ten"):  # out of range or not a number: one status, no 500
            answer = client.get("/jobs", params={"offset": value})
            assert answer.status_code == 400 and "offset" in answer.json()["error"], value

        assert client.delete(f"/jobs/{ids[1]}").json() == {"job_id": ids[1], "deleted": True}
        assert client.get(f"/jobs/{ids[1]}").status_code == 404
        assert not (tmp_path / "data" / "jobs" / ids[1]).exists()
        assert client.delete("/jobs/nosuchjob").status_code == 404


def test_a_running_job_shows_its_progress_phase_by_phase(tmp_path, models_dir, recordings_dir, monkeypatch):
    monkeypatch.setattr(features, "CHUNK_FILES", 1)  # a record per file
    with make_client(tmp_path, models_dir, run_jobs=False) as client:
        job_id = client.post("/evaluate", files=upload(recordings_dir)).json()["job_id"]
        store, runner = client.app.state.store, client.app.state.runner
        seen = []
        record = store.set_progress

        def record_and_read(job, progress):  # the real store, read back through the API as a client would
            kept = record(job, progress)
            seen.append(client.get(f"/jobs/{job_id}").json()["progress"])
            return kept

        monkeypatch.setattr(store, "set_progress", record_and_read)
        monkeypatch.setattr(worker, "PROGRESS_INTERVAL", 0.0)
        assert runner.run_next()
        done = client.get(f"/jobs/{job_id}").json()
    files = [(s["phase"], s["done"], s["total"]) for s in seen if s["unit"] == "files"]
    assert files == [(side, k, 3) for side in ("generated", "reference") for k in range(4)]
    assert [(s["phase"], s["done"]) for s in seen if s["unit"] == "pairs"] == [("pairs", k) for k in range(4)]
    assert seen[-1] == {"phase": "metrics", "done": 0, "total": 1, "unit": "steps"}
    assert done["status"] == "completed" and done["progress"] is None and not done["cancel_requested"]


def test_deleting_a_running_job_stops_it_at_the_next_chunk_and_removes_it(tmp_path, models_dir, recordings_dir,
                                                                         monkeypatch):
    monkeypatch.setattr(features, "CHUNK_FILES", 1)
    with make_client(tmp_path, models_dir, run_jobs=False) as client:
        job_id = client.post("/evaluate", files=upload(recordings_dir)).json()["job_id"]
        store, runner = client.app.state.store, client.app.state.runner
        running = store.claim_next()  # the worker's claim, then a DELETE while it runs
        answer = client.delete(f"/jobs/{job_id}")
        assert answer.status_code == 202 and answer.json() == {"job_id": job_id, "deleted": False,
                                                               "status": "cancelling"}
        view = client.get(f"/jobs/{job_id}").json()
        assert view["status"] == "running" and view["cancel_requested"]
        assert (tmp_path / "data" / "jobs" / job_id).is_dir()  # still in use until the worker stops
        runner.run(running)
        assert client.get(f"/jobs/{job_id}").status_code == 404
        assert leftovers(tmp_path) == [] and client.get("/health").json()["jobs"]["running"] == 0


def test_a_job_deleted_as_it_finishes_is_removed_not_completed(tmp_path):
    store = JobStore(tmp_path / "jobs.sqlite3")
    store.add("a", {"backbone": "cnn14"}, "paired")
    store.claim_next()
    assert store.set_progress("a", {"phase": "generated", "done": 1, "total": 2})
    assert store.delete("a") == "cancelling" and not store.set_progress("a", {"phase": "generated", "done": 2})
    assert store.complete("a", {"metrics": {}}) is False and store.get("a") is None
    store.add("b", {"backbone": "cnn14"}, "paired")
    store.claim_next()
    store.delete("b")
    store.close()
    store = JobStore(tmp_path / "jobs.sqlite3")  # stopped while cancelling: gone at the restart, not retried
    assert store.recover() == [] and store.get("b") is None


def test_a_store_written_before_progress_existed_opens_and_gains_the_columns(tmp_path):
    path = tmp_path / "jobs.sqlite3"
    with sqlite3.connect(path) as db:  # the schema of the previous release
        db.executescript("""CREATE TABLE jobs (id TEXT PRIMARY KEY, status TEXT NOT NULL, created_at TEXT NOT NULL,
            started_at TEXT, finished_at TEXT, attempts INTEGER NOT NULL DEFAULT 0, request TEXT NOT NULL,
            evaluation_mode TEXT, report TEXT, error TEXT, notes TEXT NOT NULL DEFAULT '[]');
            INSERT INTO jobs (id, status, created_at, request) VALUES ('old', 'queued', '2026-01-01', '{}');""")
    db.close()
    store = JobStore(path)
    job = store.claim_next()
    assert job.id == "old" and job.progress is None and not job.cancel_requested
    assert store.set_progress("old", {"phase": "generated", "done": 0, "total": 1})
    assert store.get("old").progress == {"phase": "generated", "done": 0, "total": 1}


def test_no_cors_unless_configured(tmp_path):
    preflight = {"Origin": "https://example.org", "Access-Control-Request-Method": "POST"}
    with make_client(tmp_path, run_jobs=False) as client:
        assert "access-control-allow-origin" not in client.options("/evaluate", headers=preflight).headers
    with make_client(tmp_path, run_jobs=False, cors_origins=("https://example.org",)) as client:
        allowed = client.options("/evaluate", headers=preflight).headers
        assert allowed["access-control-allow-origin"] == "https://example.org"


def test_job_store_requeues_then_fails_jobs_cut_off_by_a_stop(tmp_path):
    store = JobStore(tmp_path / "jobs.sqlite3")
    store.add("first", {"backbone": "cnn14"}, "paired")
    store.add("second", {"backbone": "cnn14"}, "paired")
    assert store.claim_next().id == "first"  # oldest first
    store.close()
    for attempt in range(1, MAX_ATTEMPTS + 1):
        store = JobStore(tmp_path / "jobs.sqlite3")  # a restart
        (job,) = store.recover()
        if attempt < MAX_ATTEMPTS:
            assert job.status == "queued" and "queued again" in job.notes[-1]
            assert store.claim_next().id == "first" and store.get("first").attempts == attempt + 1
        else:
            assert job.status == "failed" and "not retried" in job.error and len(job.notes) == MAX_ATTEMPTS
        store.close()
    store = JobStore(tmp_path / "jobs.sqlite3")
    assert store.recover() == [] and store.get("second").status == "queued"
    assert store.counts() == {"queued": 1, "running": 0, "completed": 0, "failed": 1}


@pytest.mark.parametrize("damage", ["garbage", pytest.param("zero bytes", marks=pytest.mark.parity),
                                    pytest.param("truncated", marks=pytest.mark.parity)])
def test_a_damaged_job_store_is_refused_by_name_and_recover_starts_afresh(tmp_path, damage):
    from audiofidelity.errors import ServerStateError
    from audiofidelity.server.app import recover_store

    path = tmp_path / "jobs.sqlite3"
    if damage == "garbage":
        path.write_bytes(b"this is not a database" * 200)
    elif damage == "zero bytes":
        path.write_bytes(b"")
    else:
        store = JobStore(path)
        for i in range(200):
            store.add(f"job-{i}", {"backbone": "cnn14", "padding": "x" * 500}, "paired")
        store.close()
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
    before = path.read_bytes()
    with pytest.raises(ServerStateError, match="is damaged .*--recover"):
        JobStore(path)
    assert path.read_bytes() == before  # nothing changed
    done = subprocess.run([sys.executable, "-m", "audiofidelity", "serve", "--data-dir", str(tmp_path), "--port", "1"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "is damaged" in done.stderr and "Traceback" not in done.stderr
    assert "moved to jobs.sqlite3.damaged-" in recover_store(tmp_path)
    assert JobStore(path).counts()["queued"] == 0  # a sound, empty store
    assert [p.name for p in tmp_path.glob("jobs.sqlite3.damaged-*")] and recover_store(tmp_path) is None


def test_recover_queues_again_the_jobs_whose_uploads_remain_and_says_what_was_lost(tmp_path, models_dir,
                                                                                   recordings_dir):
    from audiofidelity.server.app import recover_store

    with make_client(tmp_path, models_dir, run_jobs=False) as client:
        waiting = client.post("/evaluate", files=upload(recordings_dir), data={"metrics": "FD,PSNR"}).json()
        first = client.get(f"/jobs/{waiting['job_id']}").json()
    data = tmp_path / "data"
    (data / "jobs" / ("f" * 32)).mkdir()  # an upload folder that holds no request: cannot be rebuilt
    (data / "jobs.sqlite3").write_bytes(b"garbage" * 500)
    done = recover_store(data)
    assert "moved to jobs.sqlite3.damaged-" in done and "1 unfinished job(s) were rebuilt" in done
    assert waiting["job_id"] in done and "1 upload folder(s) without a readable request are discarded" in done
    with make_client(tmp_path, models_dir) as client:  # the rebuilt job runs as first asked
        job = wait_finished(client, waiting["job_id"])
        assert not (data / "jobs" / ("f" * 32)).exists()  # start-up discarded the unreadable folder
    assert job["status"] == "completed" and set(job["metrics"]) == {"frechet_distance", "psnr"}
    assert job["created_at"] == first["created_at"] and job["uploads"] == first["uploads"]
    assert "rebuilt from its upload folder" in job["notes"][0]


def test_a_second_server_on_one_data_folder_is_refused_naming_the_first(tmp_path):
    from audiofidelity.errors import ServerStateError
    from audiofidelity.server.app import lock_data_dir

    held = lock_data_dir(tmp_path)
    try:
        done = subprocess.run([sys.executable, "-m", "audiofidelity", "serve", "--data-dir", str(tmp_path),
                               "--port", "1"], capture_output=True, text=True, timeout=60)
        assert done.returncode == 1 and "Traceback" not in done.stderr
        assert f"in use by another audiofidelity server (pid {os.getpid()})" in done.stderr
        with pytest.raises(ServerStateError, match="in use"):
            lock_data_dir(tmp_path)
    finally:
        held.close()
    lock_data_dir(tmp_path).close()  # free again once the holder let go


def test_the_runtime_never_imports_the_server_stack():
    code = ("import sys, audiofidelity, audiofidelity.cli as c; c.build_parser(); "
            "print(sorted(m for m in ('fastapi', 'uvicorn', 'starlette', 'multipart') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_serve_without_the_extra_says_how_to_install_it(tmp_path):
    code = ("import sys; sys.modules['fastapi'] = None; from audiofidelity.cli import main; "
            f"sys.exit(main(['serve', '--data-dir', {str(tmp_path)!r}]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 1 and "pip install 'audiofidelity[server]'" in done.stderr
    assert "fastapi is missing" in done.stderr


def test_serve_refuses_an_empty_token_file(tmp_path, capsys):
    from audiofidelity import cli

    (tmp_path / "token").write_text("\n")
    assert cli.main(["serve", "--data-dir", str(tmp_path), "--token-file", str(tmp_path / "token")]) == 2
    assert "is empty" in capsys.readouterr().err


def test_the_server_refuses_to_start_without_its_default_models_unless_lazy(tmp_path, monkeypatch):
    from audiofidelity.server.app import missing_artifacts

    monkeypatch.delenv("AUDIOFIDELITY_MODELS", raising=False)
    empty = tmp_path / "models"
    empty.mkdir()
    assert missing_artifacts(empty) == ["cnn14-16k", "vggish"]
    done = subprocess.run([sys.executable, "-m", "audiofidelity", "serve", "--data-dir", str(tmp_path / "data"),
                           "--models-dir", str(empty), "--port", "1"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "missing: cnn14-16k, vggish" in done.stderr and "audiofidelity models build cnn14-16k vggish" in done.stderr
    assert "--lazy-models" in done.stderr


@pytest.mark.parity  # a server process started and stopped
def test_lazy_models_starts_the_server_without_them(tmp_path, monkeypatch):
    import socket

    import httpx

    monkeypatch.delenv("AUDIOFIDELITY_MODELS", raising=False)
    empty = tmp_path / "models"
    empty.mkdir()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    lazy = subprocess.Popen([sys.executable, "-m", "audiofidelity", "serve", "--data-dir", str(tmp_path / "data"),
                             "--models-dir", str(empty), "--port", str(port), "--lazy-models"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert lazy.poll() is None and time.monotonic() < deadline
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
    finally:
        lazy.terminate()
        lazy.wait(10)


def test_a_job_failed_by_interruption_drops_its_uploads_at_that_start(tmp_path):
    data = tmp_path / "data"
    store = JobStore(data / "jobs.sqlite3")
    store.add("cut", {"backbone": "cnn14"}, "paired")
    store.add("waiting", {"backbone": "cnn14"}, "paired")
    for _ in range(MAX_ATTEMPTS):  # claimed, then cut off by a stop, as often as a job is retried
        assert store.claim_next().id == "cut"
        if _ < MAX_ATTEMPTS - 1:
            store.recover()
    store.close()
    for job in ("cut", "waiting"):
        (data / "jobs" / job / "generated").mkdir(parents=True)
        (data / "jobs" / job / "generated" / "a.wav").write_bytes(b"RIFF")
    with make_client(tmp_path, run_jobs=False):
        pass  # a start: recovery, then tidying
    store = JobStore(data / "jobs.sqlite3")
    assert store.get("cut").status == "failed" and store.get("waiting").status == "queued"
    store.close()
    assert not (data / "jobs" / "cut").exists()  # failed at this start: its uploads are gone now
    assert (data / "jobs" / "waiting" / "generated" / "a.wav").exists()  # a queued job keeps them


@pytest.mark.parametrize("fields, captions, status, message", [
    ({"metrics": "CLAP_SCORE", "fad_model": "clap-music"}, None, 400, "needs the captions the files were generated "
                                                                      "from: a captions upload"),
    ({"metrics": "FAD"}, ("c.json", b'{"clip_00": "a dog"}'), 400, "add it to metrics (CLAP_SCORE)"),
    ({"metrics": "clap_score"}, ("c.json", b'{"clip_00": "a dog"}'), 400, "needs a CLAP fad_model"),
    ({"metrics": "clap_score", "fad_model": "clap-music"}, ("c.csv", b"id,caption\nx,\xff\n"), 422,
     "captions file captions/c.csv is not UTF-8"),
    ({"metrics": "clap_score", "fad_model": "clap-music"}, ("c.txt", b"just words"), 422, "neither a JSON object"),
    ({"metrics": "clap_score", "fad_model": "clap-music"}, ("../c.json", b"{}"), 400, "is a path"),
])
def test_captions_uploads_are_checked_and_refused_by_name(tmp_path, recordings_dir, fields, captions, status,
                                                          message):
    files = upload(recordings_dir) + ([("captions", captions)] if captions else [])
    with make_client(tmp_path, run_jobs=False) as client:
        answer = client.post("/evaluate", files=files, data=fields)
        assert answer.status_code == status and message in answer.json()["error"], answer.json()
        assert str(tmp_path) not in answer.text and client.get("/jobs").json()["total"] == 0
    assert leftovers(tmp_path) == []


def test_a_captions_upload_is_stored_with_the_job(tmp_path, recordings_dir):
    caption_file = ("caps.csv", "file,caption\nclip_00.wav,a dog barks\nclip_01,Café 鳥 🎵\nclip_01,other\n".encode())
    with make_client(tmp_path, run_jobs=False) as client:
        answer = client.post("/evaluate", files=upload(recordings_dir) + [("captions", caption_file)],
                             data={"metrics": "CLAP_SCORE,FAD", "fad_model": "clap-630k-audioset"})
        assert answer.status_code == 202, answer.json()
        job = client.get(f"/jobs/{answer.json()['job_id']}").json()
    assert job["captions"] == {"name": "caps.csv", "bytes": len(caption_file[1]), "captions": 1, "problems": 1}
    assert job["requested_metrics"] == ["clap_score", "fad"]


def test_opt_in_metrics_run_through_the_service(tmp_path, models_dir, recordings_dir):
    """The worker's evaluator holds the opt-in metrics a job asks for (it held audioldm_eval's only)."""
    with make_client(tmp_path, models_dir) as client:
        posted = client.post("/evaluate", files=upload(recordings_dir), data={"metrics": "FAD,KAD,CHROMA_SIMILARITY"})
        job = wait_finished(client, posted.json()["job_id"])
    assert job["status"] == "completed", job
    assert job["metrics"]["kernel_audio_distance"] is not None and "frechet_audio_distance" in job["metrics"]
    assert job["metrics"]["chroma_similarity"] is not None

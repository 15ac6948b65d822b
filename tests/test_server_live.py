"""The evaluation service as users run it: ``audiofidelity serve`` under uvicorn on loopback.

Submit -> poll -> the CLI's numbers; a kill mid-job and a restart; 20 concurrent submissions; a
stalled upload cut off by the request timeout; progress and cancelling; the API docs and the page for
people in headless Chromium with every other host unreachable.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

from browser import Browser, find_chromium, png_pixels  # noqa: E402
from conftest import eval_cli  # noqa: E402


class LiveServer:
    """One ``audiofidelity serve`` process on a free loopback port; restartable on the same data dir."""

    def __init__(self, data_dir: Path, models_dir: Path, log: Path, *extra_args: str,
                 address_space: int | None = None) -> None:
        self.data_dir, self.models_dir, self.log, self.extra_args = data_dir, models_dir, log, extra_args
        self.address_space = address_space
        """``RLIMIT_AS`` in bytes for the server process (``prlimit --as``), or None."""
        self.process: subprocess.Popen | None = None
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        command = [sys.executable, "-m", "audiofidelity", "serve", "--port", str(self.port), "--data-dir",
                   str(self.data_dir), "--models-dir", str(self.models_dir), "--workers", "0",
                   "--request-timeout", "2", *self.extra_args]
        limit = self.address_space

        def apply_limit() -> None:
            if limit is not None:
                import resource

                resource.setrlimit(resource.RLIMIT_AS, (limit, resource.RLIM_INFINITY))

        self.process = subprocess.Popen(command, stdout=self.log.open("a"), stderr=subprocess.STDOUT,
                                        preexec_fn=apply_limit)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.2)
        raise AssertionError(f"server did not start: {self.log.read_text()}")

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(20)

    def submit(self, folders: Path, names: list[str], **fields) -> dict:
        files = [(f"{side}_files", (n, (folders / side / n).read_bytes()))
                 for side in ("generated", "reference") for n in names]
        answer = httpx.post(f"{self.url}/evaluate", files=files, data=fields, timeout=60)
        assert answer.status_code == 202, answer.text
        return answer.json()

    def job(self, job_id: str) -> dict:
        return httpx.get(f"{self.url}/jobs/{job_id}", timeout=10).json()

    def wait(self, job_id: str, statuses=("completed", "failed"), seconds: float = 180) -> dict:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            job = self.job(job_id)
            if job["status"] in statuses:
                return job
            time.sleep(0.1)
        raise AssertionError(f"job {job_id} not {statuses} after {seconds} s: {job}")


@pytest.fixture()
def server(tmp_path, models_dir):
    live = LiveServer(tmp_path / "data", models_dir, tmp_path / "server.log")
    live.start()
    yield live
    live.stop()


@pytest.fixture()
def folders(recordings_dir, tmp_path):
    """The recordings plus one silent clip on each side (reported as a problem, as by the CLI)."""
    root = tmp_path / "folders"
    for side in ("generated", "reference"):
        shutil.copytree(recordings_dir / side, root / side)
        sf.write(root / side / "silent.wav", np.zeros(32000), 16000)
    return root


def test_submit_poll_result_equals_the_cli(server, folders, models_dir, tmp_path):
    names = sorted(os.listdir(folders / "generated"))
    job = server.wait(server.submit(folders, names)["job_id"])
    assert job["status"] == "completed", job
    out = tmp_path / "cli"
    out.mkdir()
    report, _ = eval_cli(folders / "generated", folders / "reference", out, "--models-dir", str(models_dir),
                         "--workers", "0")
    assert job["metrics"] == report["metrics"] and job["unavailable"] == report["unavailable"]
    assert job["problems"] == report["problems"] and {p["file"] for p in job["problems"]} == {"silent.wav"}
    assert job["evaluation_mode"] == report["mode"] == "paired"
    assert {k: v for k, v in job["files"]["generated"].items() if k != "folder"} == \
        {k: v for k, v in report["files"]["generated"].items() if k != "folder"}


@pytest.mark.parity  # 16 s: a server process killed and restarted; CI's parity tier
def test_a_job_cut_off_by_a_kill_is_queued_again_and_finished_jobs_survive(fresh_cache, server, folders):
    # fresh_cache first: the server starts with an empty cache, so the long job is still running when killed
    names = sorted(os.listdir(folders / "generated"))
    finished = server.wait(server.submit(folders, names[:2], metrics="FD")["job_id"])
    assert finished["status"] == "completed"
    long_job = server.submit(folders, names[:10])["job_id"]  # long enough to be caught running (empty cache)
    server.wait(long_job, statuses=("running",))
    server.kill()
    server.start()
    after = server.job(long_job)
    assert after["status"] in ("queued", "running") and "the server stopped during attempt 1" in after["notes"][0]
    assert server.job(finished["job_id"]) == finished
    done = server.wait(long_job)
    assert done["status"] == "completed" and done["attempts"] == 2 and done["files"]["pairs"] == 10


@pytest.mark.parity  # a load test; the other live tests cover the same routes
def test_twenty_concurrent_submissions_all_complete(server, folders):
    names = sorted(os.listdir(folders / "generated"))
    pairs = [[names[i], names[i + 1]] for i in range(20)]
    with ThreadPoolExecutor(20) as pool:
        submitted = list(pool.map(lambda p: server.submit(folders, p, metrics="FD,PSNR"), pairs))
    assert len({s["job_id"] for s in submitted}) == 20
    jobs = [server.wait(s["job_id"]) for s in submitted]
    assert [j["status"] for j in jobs] == ["completed"] * 20, [j["error"] for j in jobs]
    listing = httpx.get(f"{server.url}/jobs", params={"status": "completed", "limit": 100}).json()
    assert listing["total"] == 20
    assert not any((server.data_dir / "jobs").iterdir())  # every job's uploads were removed


@pytest.mark.parity  # 7 s of waiting for the upload timeout
def test_a_stalled_upload_times_out_and_leaves_nothing(server):
    head = (b"POST /evaluate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=b\r\n"
            b"Content-Length: 100000\r\n\r\n--b\r\nContent-Disposition: form-data; name=\"generated_files\"; "
            b"filename=\"a.wav\"\r\n\r\nRIFF")
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as conn:
        conn.sendall(head)
        started = time.monotonic()
        answer = conn.recv(4096)
        waited = time.monotonic() - started
        while chunk := conn.recv(4096):  # the rest of the response, until the server closes
            answer += chunk
    answer = answer.decode()
    assert answer.startswith("HTTP/1.1 408") and "upload timed out" in answer and 1.5 < waited < 20
    assert not any((server.data_dir / "incoming").glob("*/*/*"))
    assert httpx.get(f"{server.url}/jobs").json()["total"] == 0


@pytest.mark.parity  # 10 s of waiting for the header deadline
def test_a_client_that_stops_mid_header_is_dropped_within_the_deadline(server):
    from audiofidelity.server.connections import HEADER_SECONDS

    with socket.create_connection(("127.0.0.1", server.port), timeout=HEADER_SECONDS + 20) as conn:
        conn.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # the blank line never comes
        started = time.monotonic()
        assert conn.recv(4096) == b""  # closed without an answer
        waited = time.monotonic() - started
    assert HEADER_SECONDS - 1 < waited < HEADER_SECONDS + 3
    assert httpx.get(f"{server.url}/health").status_code == 200  # the server itself carries on


@pytest.mark.parity  # ~10 s: a job long enough to be deleted mid-run
def test_a_running_job_reports_progress_and_a_delete_stops_it_and_removes_its_files(fresh_cache, server, tmp_path):
    noise = np.random.default_rng(7)
    names = [f"clip_{k:02d}.wav" for k in range(48)]  # three chunks of 16 per side, distinct (nothing cached)
    for side in ("generated", "reference"):
        (tmp_path / "long" / side).mkdir(parents=True)
        for name in names:
            sf.write(tmp_path / "long" / side / name, 0.1 * noise.standard_normal(4 * 16000), 16000)
    job_id = server.submit(tmp_path / "long", names, metrics="FD")["job_id"]
    deadline = time.monotonic() + 120
    while not ((job := server.job(job_id))["progress"] or {}).get("done"):  # a chunk done, the job not
        assert job["status"] in ("queued", "running") and time.monotonic() < deadline, job
        time.sleep(0.1)
    assert job["progress"]["phase"] == "generated" and job["progress"]["total"] == 48
    assert job["progress"]["unit"] == "files" and 0 < job["progress"]["done"] < 48
    answer = httpx.delete(f"{server.url}/jobs/{job_id}", timeout=10)
    assert answer.status_code == 202 and answer.json()["status"] == "cancelling"
    while (gone := httpx.get(f"{server.url}/jobs/{job_id}", timeout=10)).status_code == 200:
        assert gone.json()["cancel_requested"] and time.monotonic() < deadline
        time.sleep(0.1)
    assert gone.status_code == 404 and not (server.data_dir / "jobs" / job_id).exists()
    follow_up = server.wait(server.submit(tmp_path / "long", names[:2], metrics="FD")["job_id"])
    assert follow_up["status"] == "completed"  # the worker carries on with the next job


@pytest.fixture()
def browser(tmp_path):
    executable = find_chromium()
    if executable is None:
        pytest.skip("no Chromium on PATH (Debian: apt-get install chromium)")
    opened = Browser(executable, tmp_path / "chromium-profile")
    yield opened
    opened.close()


def submit_from_the_page(browser: Browser, fad_model: str, metrics: str, *, seconds: float) -> tuple[str, dict]:
    """Choose the FAD embedding and metrics, press Evaluate, wait for the job: its id and the metrics table shown."""
    browser.evaluate(f"document.getElementById('fad_model').value = '{fad_model}'")
    browser.evaluate(f"document.getElementById('metrics').value = '{metrics}'")
    browser.evaluate("document.getElementById('submit').click()")
    status = browser.wait_for("(() => { const s = document.getElementById('job-status').textContent;"
                              " return /^(completed|failed)/.test(s) && s; })()", seconds=seconds)
    assert status == "completed", status
    job_id = browser.evaluate("document.getElementById('job-id').textContent")
    return job_id, dict(browser.evaluate("[...document.querySelectorAll('#job-metrics tr')]"
                                         ".map(r => [r.cells[0].textContent, r.cells[1].textContent])"))


def only_the_server_was_asked(browser: Browser, server: LiveServer) -> None:
    asked = browser.requested_urls()
    elsewhere = [u for u in asked if not u.startswith((server.url, "data:", "blob:"))]
    assert asked and not elsewhere, elsewhere


def colour_share(png: bytes, rgb: tuple[int, int, int]) -> float:
    """Share of the screenshot's pixels within 12 levels of ``rgb``."""
    width, height, rows = png_pixels(png)
    channels = len(rows[0]) // width
    near = sum(all(abs(row[x + c] - rgb[c]) <= 12 for c in range(3))
               for row in rows for x in range(0, len(row), channels))
    return near / (width * height)


@pytest.mark.parity  # a browser start and a page: ~8 s
def test_the_api_docs_render_with_every_other_host_unreachable(server, browser, tmp_path):
    browser.open(f"{server.url}/docs")
    paths = browser.wait_for("(() => { const p = [...document.querySelectorAll('.opblock-summary-path')]"
                             ".map(e => e.textContent); return p.length >= 9 && p; })()")
    assert {"/evaluate", "/jobs", "/jobs/{job_id}", "/health", "/models"} <= set(paths)
    shot = browser.screenshot()
    (tmp_path / "docs.png").write_bytes(shot)
    # swagger-ui's own stylesheet drew the operations: its GET blue and POST green bars are on screen
    assert colour_share(shot, (97, 175, 254)) > 0.002 and colour_share(shot, (73, 204, 144)) > 0.0005
    only_the_server_was_asked(browser, server)


@pytest.mark.parity  # a browser, a token-protected server and one evaluation: ~20 s
def test_the_page_submits_two_sets_shows_the_jobs_metrics_and_deletes_it(models_dir, recordings_dir, browser, tmp_path):
    (tmp_path / "token").write_text("s3cret\n")
    live = LiveServer(tmp_path / "data", models_dir, tmp_path / "server.log", "--token-file", str(tmp_path / "token"))
    live.start()
    try:
        hostile = "<img src=x onerror=alert(1)>.wav"  # a silent file, reported by name: as text, not as markup
        chosen = {}
        for side in ("generated", "reference"):
            (tmp_path / "pick" / side).mkdir(parents=True)
            names = sorted(os.listdir(recordings_dir / side))[:3]
            for name in names:
                shutil.copy(recordings_dir / side / name, tmp_path / "pick" / side / name)
            sf.write(tmp_path / "pick" / side / hostile, np.zeros(32000), 16000)
            chosen[side] = sorted((tmp_path / "pick" / side).iterdir())
        browser.open(f"{live.url}/")
        assert browser.evaluate("document.title") == "audiofidelity evaluation service"
        browser.evaluate("(() => { const t = document.getElementById('token'); t.value = 's3cret';"
                         " t.dispatchEvent(new Event('change')); })()")
        browser.set_files("#generated", chosen["generated"])
        browser.set_files("#reference", chosen["reference"])
        offered = browser.wait_for("(() => { const o = [...document.querySelectorAll('#fad_model option')]"
                                   ".map(e => e.textContent); return o.length > 1 && o; })()")  # read with the token
        assert {"vggish", "cnn14-16k", "encodec-24k"} <= set(offered)
        job_id, shown = submit_from_the_page(browser, "cnn14-16k", "FD,FAD,PSNR", seconds=120)
        job = httpx.get(f"{live.url}/jobs/{job_id}", headers={"Authorization": "Bearer s3cret"}, timeout=10).json()
        assert set(shown) == set(job["metrics"]) and {"frechet_distance", "frechet_audio_distance"} <= set(shown)
        assert job["fad_model"] == "cnn14-16k"  # the page sent the embedding chosen in it
        for key, value in job["metrics"].items():
            assert (shown[key].startswith("null") if value is None else float(shown[key]) == value), key
        problems = browser.evaluate("document.getElementById('job-problems').textContent")
        assert hostile in problems and browser.evaluate("document.querySelectorAll('#job-problems img').length") == 0
        assert browser.wait_for(f"[...document.querySelectorAll('#jobs tr')].some(r => r.dataset.job === "
                                f"'{job_id}' && r.cells[1].textContent === 'completed')")
        (tmp_path / "page.png").write_bytes(browser.screenshot())
        browser.evaluate("document.getElementById('delete').click()")
        browser.wait_for(f"document.getElementById('job').hidden && ![...document.querySelectorAll('#jobs tr')]"
                         f".some(r => r.dataset.job === '{job_id}')")
        assert httpx.get(f"{live.url}/jobs/{job_id}", headers={"Authorization": "Bearer s3cret"}).status_code == 404
        only_the_server_was_asked(browser, live)
    finally:
        live.stop()


@pytest.mark.parity  # a browser and one MERT evaluation: ~25 s
def test_the_page_shows_a_finished_jobs_pictures(server, recordings_dir, browser, tmp_path):
    pytest.importorskip("matplotlib")
    browser.open(f"{server.url}/")
    for side in ("generated", "reference"):
        browser.set_files(f"#{side}", sorted((recordings_dir / side).iterdir())[:4])
    browser.evaluate("document.getElementById('backbone').value = 'mert'")
    job_id, shown = submit_from_the_page(browser, "vggish", "FD_layers", seconds=300)
    drawn = browser.wait_for("(() => { const i = [...document.querySelectorAll('#job-plots img')];"
                             " return i.length && i.every(e => e.complete && e.naturalWidth > 0)"
                             " && i.map(e => [e.alt, e.naturalWidth]); })()", seconds=60)
    assert [name for name, _ in drawn] == ["mert_layers"] and drawn[0][1] > 300
    plots = httpx.get(f"{server.url}/jobs/{job_id}/plots", timeout=30).json()["plots"]
    assert [p["name"] for p in plots] == ["mert_layers"] and "frechet_distance_mert_layers" in shown
    browser.evaluate("document.querySelector('#job-plots img').scrollIntoView()")
    shot = browser.screenshot()
    (tmp_path / "pictures.png").write_bytes(shot)
    assert colour_share(shot, (31, 119, 180)) > 0.0004  # the line and markers of the picture (matplotlib blue)
    only_the_server_was_asked(browser, server)


@pytest.mark.parity  # a token-protected server and two jobs: ~10 s
def test_with_a_token_every_route_is_private_no_body_names_a_server_path_and_only_the_owner_reads_the_data(
        models_dir, folders, tmp_path):
    (tmp_path / "token").write_text("s3cret\n")
    live = LiveServer(tmp_path / "data", models_dir, tmp_path / "server.log", "--token-file", str(tmp_path / "token"))
    live.start()
    auth = {"Authorization": "Bearer s3cret"}
    try:
        names = sorted(os.listdir(folders / "generated"))[:3]
        files = [(f"{side}_files", (n, (folders / side / n).read_bytes())) for side in ("generated", "reference")
                 for n in names]
        assert httpx.post(f"{live.url}/evaluate", files=files, timeout=60).status_code == 401
        job_id = httpx.post(f"{live.url}/evaluate", files=files, headers=auth, timeout=60).json()["job_id"]
        bad = httpx.post(f"{live.url}/evaluate", headers=auth, timeout=60,
                         files=[("generated_files", ("x.wav", b"RIFF" + b"\0" * 60)),
                                ("reference_files", ("x.wav", b"RIFF" + b"\0" * 60))])
        assert bad.status_code == 415
        deadline = time.monotonic() + 120
        while httpx.get(f"{live.url}/jobs/{job_id}", headers=auth, timeout=10).json()["status"] != "completed":
            assert time.monotonic() < deadline
            time.sleep(0.2)
        routes = httpx.get(f"{live.url}/openapi.json", headers=auth, timeout=10).json()["paths"]
        bodies = [bad.text]
        for route, methods in routes.items():
            if "get" not in methods:
                continue
            url = live.url + route.replace("{job_id}", job_id)
            anonymous = httpx.get(url, timeout=10)
            assert anonymous.status_code == (200 if route in ("/", "/health") else 401), route
            bodies += [anonymous.text, httpx.get(url, headers=auth, timeout=10).text]
        for path in ("/docs", "/openapi.json"):
            assert httpx.get(live.url + path, timeout=10).status_code == 401, path
        assert httpx.delete(f"{live.url}/jobs/{job_id}", timeout=10).status_code == 401
        for body in bodies:
            assert str(tmp_path) not in body and str(models_dir) not in body and str(Path.home()) not in body
        for path in [live.data_dir, *live.data_dir.rglob("*")]:  # written by the server for its user only
            assert path.stat().st_mode & 0o077 == 0, (path, oct(path.stat().st_mode))
    finally:
        live.stop()


@pytest.mark.parity  # a second server process and one job: ~10 s
def test_an_upload_whose_header_would_exhaust_memory_is_refused_by_name_under_an_address_space_limit(models_dir,
                                                                                                     tmp_path):
    """A 32 KB WAV declaring 44101 Hz would make resampling build a 2.8 GB kernel: under ``prlimit --as 6G`` the
    server refuses it with its estimate, completes the job on the other files, and keeps serving."""
    from test_hostile_input import good_folder, wav_with_rate

    folders = tmp_path / "folders"
    good_folder(folders / "generated", 3)
    good_folder(folders / "reference", 3)
    wav_with_rate(folders / "generated" / "coprime.wav", 44101)
    live = LiveServer(tmp_path / "data", models_dir, tmp_path / "server.log", address_space=6 * 2**30)
    live.start()
    try:
        files = [(f"{side}_files", (n, (folders / side / n).read_bytes()))
                 for side in ("generated", "reference") for n in sorted(os.listdir(folders / side))]
        answer = httpx.post(f"{live.url}/evaluate", files=files, data={"metrics": "FD"}, timeout=60)
        assert answer.status_code == 202, answer.text
        job = live.wait(answer.json()["job_id"])
        assert job["status"] == "completed", job
        reasons = {p["file"]: p["reason"] for p in job["problems"]}
        assert "over the memory budget" in reasons["coprime.wav"]
        assert httpx.get(f"{live.url}/health", timeout=5).status_code == 200
    finally:
        live.stop()
    assert "Traceback" not in (tmp_path / "server.log").read_text()


@pytest.mark.parity  # a browser, the CLAP artifacts and one CLAP score job: ~20 s
def test_the_page_sends_a_captions_file_and_shows_the_clap_score(all_models_dir, browser, tmp_path):
    """The captions field: a CLAP_SCORE job submitted from the page completes with the score the API reports."""
    live = LiveServer(tmp_path / "data", all_models_dir, tmp_path / "server.log")
    live.start()
    try:
        rng = np.random.default_rng(5)
        for side in ("generated", "reference"):
            (tmp_path / side).mkdir()
            for i in range(2):
                sf.write(tmp_path / side / f"clip_{i}.wav", 0.2 * rng.standard_normal(48000), 48000)
        (tmp_path / "captions.csv").write_text("file,caption\nclip_0,a dog barks\nclip_1,rain on a tin roof\n")
        browser.open(f"{live.url}/")
        browser.set_files("#generated", sorted((tmp_path / "generated").iterdir()))
        browser.set_files("#reference", sorted((tmp_path / "reference").iterdir()))
        browser.set_files("#captions", [tmp_path / "captions.csv"])
        browser.wait_for("[...document.querySelectorAll('#fad_model option')].length > 1")
        job_id, shown = submit_from_the_page(browser, "clap-630k-audioset", "CLAP_SCORE", seconds=300)
        job = httpx.get(f"{live.url}/jobs/{job_id}", timeout=10).json()
        assert job["captions"]["name"] == "captions.csv" and job["files"]["captions"]["generated_with_caption"] == 2
        assert float(shown["clap_score"]) == job["metrics"]["clap_score"]
        (tmp_path / "page.png").write_bytes(browser.screenshot())
        only_the_server_was_asked(browser, live)
    finally:
        live.stop()

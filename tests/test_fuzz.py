"""Fuzz tier: generated audio files, file names and arrays thrown at ``eval``, the ``Embedder`` and the upload endpoint.

Property: nothing raises past the public surface (a refusal is an ``InvalidAudioError``/``ValueError`` naming the
problem, or an entry under ``problems``), every report is valid JSON with every listed file accounted for, and no
example hangs past its deadline or needs more than the memory budget. The default tier runs a short
derandomised run (fixed examples, the same every run); the parity tier runs many more.
"""
from __future__ import annotations

import io
import json
import os
import struct
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from audiofidelity import cli  # noqa: E402

FAST, LONG = 12, 150
"""Examples per property in the default tier and in the parity tier."""
BUDGET = "256M"
"""``--max-memory`` of the fuzzed runs: small enough that long or hostile headers meet it."""
DEADLINE = timedelta(seconds=60)


def tiered_settings(examples: int):
    return settings(max_examples=examples, deadline=DEADLINE, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                           HealthCheck.data_too_large])


SUBTYPES = {"WAV": ["PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"], "FLAC": ["PCM_16", "PCM_24"]}
RATES = st.one_of(st.sampled_from([8000, 16000, 22050, 44100, 48000]), st.integers(1, 2**31 - 1))


@st.composite
def audio_files(draw) -> bytes:
    """A WAV or FLAC file: any rate in its header, 1-4 channels, 0-1.5 s, NaN/inf/extreme values placed anywhere
    (float subtypes), optionally truncated or replaced by garbage."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=2048))
    fmt = draw(st.sampled_from(sorted(SUBTYPES)))
    subtype = draw(st.sampled_from(SUBTYPES[fmt]))
    channels = draw(st.integers(1, 4))
    frames = draw(st.integers(0, 24000))
    seed = draw(st.integers(0, 2**16))
    scale = draw(st.sampled_from([1.0, 0.0, 1e-6, 0.99, 1.5, 3e4, 1e30]))
    x = np.random.default_rng(seed).uniform(-1, 1, (frames, channels)) * scale
    if subtype in ("FLOAT", "DOUBLE") and frames:
        for _ in range(draw(st.integers(0, 3))):
            value = draw(st.sampled_from([np.nan, np.inf, -np.inf, 1e38, -1e300]))
            x[draw(st.integers(0, frames - 1)), draw(st.integers(0, channels - 1))] = value
    else:
        x = np.clip(x, -1, 1)
    buffer = io.BytesIO()
    sf.write(buffer, x.astype(np.float64), 16000, format=fmt, subtype=subtype)
    data = bytearray(buffer.getvalue())
    if fmt == "WAV" and draw(st.booleans()):  # any rate in the header, the body unchanged
        rate = draw(RATES)
        data[24:28] = struct.pack("<I", rate)
        data[28:32] = struct.pack("<I", (rate * channels * 2) & 0xFFFFFFFF)
    if draw(st.integers(0, 4)) == 0:
        data = data[:draw(st.integers(0, len(data)))]
    return bytes(data)


NAME_BYTES = st.binary(min_size=1, max_size=40).map(lambda b: b.replace(b"/", b"_").replace(b"\0", b"_"))
NAMES = st.one_of(st.sampled_from([b"CON", b"nul.wav", b"files", b"info", b"-x.wav", b" .wav", b"a\nb.wav",
                                   b"\xff\xfe.wav", "é ü 中 🎵.wav".encode()]),
                  NAME_BYTES).filter(lambda b: b not in (b".", b".."))


@pytest.fixture(scope="module")
def base_folders(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fuzz")
    for side in ("gen", "ref"):
        (root / side).mkdir()
        for i in range(2):
            t = np.arange(16000) / 16000
            sf.write(root / side / f"good{i}.wav", 0.3 * np.sin(2 * np.pi * (300 + 40 * i) * t), 16000)
    return root


def _fuzz_eval(base: Path, models_dir: Path, name: bytes, body: bytes, tmp: Path) -> None:
    gen = tmp / "gen"
    if gen.exists():
        for entry in os.listdir(os.fsencode(gen)):
            os.unlink(os.path.join(os.fsencode(gen), entry))
    else:
        gen.mkdir()
    for good in os.listdir(base / "gen"):
        (gen / good).write_bytes((base / "gen" / good).read_bytes())
    target = os.path.join(os.fsencode(gen), name)
    if os.path.exists(target):
        return  # the name of a good file: nothing new to try
    with open(target, "wb") as f:
        f.write(body)
    out = tmp / "report.json"
    start = time.monotonic()
    status = cli.main(["eval", str(gen), str(base / "ref"), "--models-dir", str(models_dir), "--metrics",
                       "fd,fad,psnr", "--json", str(out), "--quiet", "--workers", "0", "--max-memory", BUDGET])
    assert time.monotonic() - start < DEADLINE.total_seconds()
    assert status == 0
    report = json.loads(out.read_text(encoding="utf-8"), parse_constant=lambda c: pytest.fail(f"bare {c}"))
    files = report["files"]["generated"]
    assert files["listed"] == 3 and files["used"] + files["skipped"] == 3, files
    for problem in report["problems"]:
        assert problem["reason"] and problem["file"].encode("utf-8")


def _fuzz_embedder(embedder, audio: np.ndarray, rate: int) -> None:
    try:
        rows = embedder.embed(audio, rate)
    except ValueError as exc:  # InvalidAudioError included: a refusal that names the problem
        assert str(exc)
        return
    assert np.all(np.isfinite(rows))


ARRAYS = st.tuples(
    st.sampled_from(["float16", "float32", "float64", "int16"]),
    st.sampled_from([(0,), (1,), (800,), (16000,), (2, 16000), (1, 2, 4000), (3, 1, 1, 10)]),
    st.sampled_from([None, np.nan, np.inf, 0.0, 3e4]),
    RATES,
)


def _array(dtype: str, shape: tuple, poison, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).uniform(-0.5, 0.5, shape)
    if poison is not None and x.size:
        x.flat[x.size // 2] = poison
    return x.astype(dtype)


TIERS = [pytest.param(FAST, id="fast"), pytest.param(LONG, id="long", marks=pytest.mark.parity)]


@pytest.mark.parametrize("examples", TIERS)
def test_eval_survives_any_file_under_any_name(examples, base_folders, models_dir, tmp_path):
    @tiered_settings(examples)
    @given(name=NAMES, body=audio_files())
    def check(name, body):
        _fuzz_eval(base_folders, models_dir, name, body, tmp_path)

    check()


@pytest.mark.parametrize("examples", TIERS)
def test_the_embedder_refuses_by_name_or_returns_finite_rows(examples, models_dir):
    from audiofidelity.embedder import Embedder

    embedder = Embedder("cnn14-16k", models_dir=models_dir, cache=False, max_memory=256 * 2**20)

    @tiered_settings(examples)
    @given(spec=ARRAYS)
    def check(spec):
        dtype, shape, poison, rate = spec
        _fuzz_embedder(embedder, _array(dtype, shape, poison), rate)

    check()


@pytest.mark.parametrize("examples", TIERS)
def test_the_upload_endpoint_answers_every_file_and_name_without_a_server_error(examples, models_dir, tmp_path):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from audiofidelity.server.app import ServerConfig, create_app
    from audiofidelity.server.worker import RunSettings

    client = TestClient(create_app(ServerConfig(data_dir=tmp_path / "data", run=RunSettings(
        models_dir=models_dir, cache=False, max_memory=256 * 2**20))))
    good = io.BytesIO()
    sf.write(good, 0.3 * np.sin(np.arange(16000) / 10), 16000, format="WAV")
    jobs = []

    @tiered_settings(examples)
    @given(name=NAMES, body=audio_files())
    def check(name, body):
        shown = name.decode("utf-8", "backslashreplace")
        files = [("generated_files", (shown, body)), ("generated_files", ("good.wav", good.getvalue())),
                 ("reference_files", ("good.wav", good.getvalue()))]
        answer = client.post("/evaluate", files=files, data={"metrics": "FD"})
        assert answer.status_code < 500, answer.text
        json.loads(answer.text, parse_constant=lambda c: pytest.fail(f"bare {c}"))
        if answer.status_code == 202:
            jobs.append(answer.json()["job_id"])

    with client:
        check()
        deadline = time.monotonic() + 300
        for job_id in jobs:
            while True:
                answer = client.get(f"/jobs/{job_id}")
                job = json.loads(answer.text, parse_constant=lambda c: pytest.fail(f"bare {c}"))
                if job["status"] in ("completed", "failed"):
                    break
                assert time.monotonic() < deadline, job
                time.sleep(0.1)
            assert job["status"] == "completed" or job.get("error"), job


NUMERIC_OPTIONS = {  # option -> (attribute, accepted-value predicate)
    "--min-duration": ("min_duration", lambda v: 0 <= v < float("inf")),
    "--limit": ("limit", lambda v: isinstance(v, int) and v >= 1),
    "--batch-size": ("batch_size", lambda v: isinstance(v, int) and v >= 1),
    "--workers": ("workers", lambda v: isinstance(v, int) and v >= 0),
    "--lsd-offset": ("lsd_offset", lambda v: isinstance(v, int) and v >= 0),
    "--bootstrap": ("bootstrap", lambda v: isinstance(v, int) and v >= 0),
    "--mert-chunk": ("mert_chunk", lambda v: 0 < v < float("inf")),
    "--max-memory": ("max_memory", lambda v: isinstance(v, int) and v > 0),
    "--kad-bandwidth": ("kad_bandwidth", lambda v: v in ("reference", "generated") or 0 < v < float("inf")),
    "--sr": ("sr", lambda v: isinstance(v, int)),
}
OPTION_TEXT = st.one_of(st.sampled_from(["nan", "inf", "-inf", "-1", "0", "1e309", "1e-320", "0x10", " 5", "5 ", "",
                                         "4G", "1.5GiB", "-0", "1_000", "reference", "generated", "１２"]),
                        st.integers(-10**12, 10**12).map(str), st.floats(allow_nan=True).map(repr),
                        st.text(max_size=12))


@pytest.mark.parametrize("examples", TIERS)
def test_every_numeric_option_is_refused_with_exit_2_or_parsed_to_a_sane_value(examples, capsys):
    from audiofidelity.cli import build_parser

    parser = build_parser()

    @tiered_settings(examples * 10)
    @given(option=st.sampled_from(sorted(NUMERIC_OPTIONS)), text=OPTION_TEXT)
    def check(option, text):
        attribute, sane = NUMERIC_OPTIONS[option]
        try:
            args = parser.parse_args(["eval", "gen", "ref", f"{option}={text}"])
        except SystemExit as refused:
            assert refused.code == 2
            assert option in capsys.readouterr().err
            return
        assert sane(getattr(args, attribute)), (option, text, getattr(args, attribute))

    check()

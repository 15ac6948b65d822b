#!/usr/bin/env python3
"""Run the original hear21passt and save what it computes, for the project's side to compare (no project import).

hear21passt needs torchaudio (and timm, for a download helper it never calls offline), and no torchaudio wheel
matches the runtime's torch; so this script runs in the original's own virtualenv, as a subprocess, and talks
through files:

    python3 -m venv /tmp/passt-venv
    /tmp/passt-venv/bin/pip install torch==2.11.0 torchaudio==2.11.0 numpy librosa==0.10.2.post1 pyloudnorm==0.1.1
    /tmp/passt-venv/bin/pip install --no-deps hear21passt==0.0.26 timm julius==0.2.7

    PYTHON passt_original.py mel IN.npz OUT.npz        # AugmentMelSTFT (get_basic_model's settings), eval mode
    PYTHON passt_original.py keys OUT.json [ARCH]      # get_basic_model(mode="logits").net's state dict shapes
    PYTHON passt_original.py net CKPT IN.npz OUT.npz [ARCH]  # that net (patchout off, eval) on CKPT: logits, features
    PYTHON passt_original.py wave CKPT IN.npz OUT.npz  # the mel, then the net, as PasstBasicWrapper.forward
    PYTHON passt_original.py toolkits CKPT GEN REF OUT.json  # each toolkit's feeding and metrics (below)
    PYTHON passt_original.py audiocraft CKPT ARCH GEN REF OUT.json  # audiocraft's KL with that network's window

``ARCH``: ``passt_s_swa_p16_128_ap476`` (the default), ``passt_20sec`` or ``passt_30sec`` (``base20sec``,
``base30sec``: ``input_tdim`` 2000 and 3000).

``IN.npz``: ``mel``: arrays ``clip<i>`` of waveforms (n,) float32 -> ``OUT.npz`` ``clip<i>`` (128, frames);
``net``: arrays ``mel<i>`` of (batch, 1, 128, frames) float32 -> ``logits<i>``, ``features<i>``. The network is
built with ``pretrained=False`` (``get_basic_model`` would download the release file) and otherwise as
``get_basic_model`` builds it (``get_model(arch="passt_s_swa_p16_128_ap476")``'s defaults: strides 10, 998 frames);
the checkpoint is the release file's format, a plain state dict of that net, loaded strictly. ``wave``: arrays
``wave<i>`` of (batch, n) float32 -> ``logits<i>``, ``features<i>`` (the wrapper's ``mode="all"`` concatenation,
split). ``toolkits``: the wav files of two folders (paired by name) fed and scored as each toolkit's own code does,
transcribed here with the upstream revision read: audioldm_eval's ``passt_replace_panns`` branch (a2fde54),
stable-audio-metrics' ``passt_kld.py`` (fd55536; it needs librosa and pyloudnorm in this virtualenv; "collect"
mean and max), audiocraft's ``metrics/kld.py`` (896ec7c; julius) and av-benchmark (050a5cd; without and with its
``--audio_length 8``). Files are read with soundfile (torchaudio 2.9+ reads through torchcodec; for WAV the samples
are the same); per file, the logits and features each toolkit's model call returns; per toolkit, its metrics.
"""
from __future__ import annotations

import contextlib
import io
import json
import sys

import numpy as np
import torch

ARCH = "passt_s_swa_p16_128_ap476"
INPUT_TDIM = {ARCH: 998, "passt_20sec": 2000, "passt_30sec": 3000}
"""``get_basic_model``'s ``input_tdim`` per network (``base.py``: the default; ``base20sec.py``, ``base30sec.py``)."""
MAX_DURATION = {ARCH: 10, "passt_20sec": 20, "passt_30sec": 30}
"""audiocraft's ``max_duration`` for each (``pretrained_length`` None, 20, 30), in seconds."""


def quiet(fn, *args, **kwargs):
    """hear21passt prints its model and every shape on the first run; keep stdout for nothing."""
    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*args, **kwargs)


def mel_module():
    from hear21passt.models.preprocess import AugmentMelSTFT

    return quiet(AugmentMelSTFT, n_mels=128, sr=32000, win_length=800, hopsize=320, n_fft=1024, freqm=48, timem=192,
                 htk=False, fmin=0.0, fmax=None, norm=1, fmin_aug_range=10, fmax_aug_range=2000).eval()


def net_module(arch=ARCH):
    from hear21passt.models.passt import get_model

    return quiet(get_model, arch=arch, pretrained=False, input_tdim=INPUT_TDIM[arch]).eval()


def read(path):
    """``torchaudio.load``'s (channels, n) float32 tensor and rate, through soundfile."""
    import soundfile as sf

    data, rate = sf.read(path, dtype="float32", always_2d=True)
    return torch.from_numpy(np.ascontiguousarray(data.T)), rate


def cut_or_pad(wave, n=320000):
    """audioldm_eval's passt branch and av-benchmark's extract.py: exactly 10 s at 32 kHz, one window."""
    return wave[..., :n] if wave.size(-1) >= n else torch.nn.functional.pad(wave, (0, n - wave.size(-1)))


def audioldm_eval_input(path):
    """``WaveDataset.read_from_file`` (32 kHz) then ``get_featuresdict``'s cut or pad."""
    import torchaudio

    audio, rate = read(path)
    audio = audio[0:1, ...]
    audio = audio - audio.mean()
    if rate != 32000:
        audio = torchaudio.functional.resample(audio, orig_freq=rate, new_freq=32000)
    if audio.size(-1) < 32000:  # pad_short_audio(audio, min_samples=32000)
        audio = torch.nn.functional.pad(audio, (0, 32000 - audio.size(-1)))
    return cut_or_pad(audio)


def av_benchmark_input(path, audio_length=None):
    """``AudioDataset.__getitem__`` (sr 32000; ``audio_length``: its ``--audio_length`` cut, None: none) then
    ``extract.py``'s cut or pad."""
    import torchaudio

    waveform, rate = read(path)
    waveform = waveform.mean(dim=0)
    waveform = waveform - waveform.mean()
    if rate != 32000:
        waveform = torchaudio.transforms.Resample(rate, 32000)(waveform)
    if audio_length is not None:
        waveform = waveform[:int(32000 * audio_length)]
    return cut_or_pad(waveform.unsqueeze(0))


def audiocraft_probabilities(model, path, max_duration=10):
    """``PasstKLDivergenceMetric._process_audio`` and ``_get_model_preds`` (``max_duration``: the model's window,
    10 s by default, 20 s or 30 s with ``pretrained_length``): ``convert_audio`` (julius's ``resample_frac``, then the
    channel mean), ``torch.split`` into segments of the window, those of more than 4800 samples fed unpadded, one
    softmax row each."""
    import julius

    wav, rate = read(path)
    wav = julius.resample_frac(wav[None], int(rate), 32000).mean(dim=-2, keepdim=True)[0]  # convert_audio
    segments = [s[None] for s in torch.split(wav, int(max_duration * 32000), dim=-1) if s.size(-1) > 4800]
    return [torch.softmax(quiet(model, s.mean(dim=1)), dim=-1).mean(dim=0) for s in segments]


def sam_logits(model, path, window_size=10, overlap=5):
    """stable-audio-metrics' ``return_probabilities`` up to the logits of each window (stacked: its "collect"
    is the caller's)."""
    import librosa
    import pyloudnorm as pyln

    audio, _ = librosa.load(path, sr=32000, mono=True)
    audio = pyln.normalize.peak(audio, -1.0)
    step_size = int((window_size - overlap) * 32000)
    logits = []
    for i in range(0, max(step_size, len(audio) - step_size), step_size):
        window = audio[i:i + int(window_size * 32000)]
        if len(window) < int(window_size * 32000):
            if len(window) > int(window_size * 32000 * 0.15):
                tmp = np.zeros(int(window_size * 32000))
                tmp[:len(window)] = window
                window = tmp
        logits.append(torch.squeeze(quiet(model, torch.from_numpy(window.astype(np.float32)).unsqueeze(0))))
    return torch.stack(logits)


def inception_score(logits, splits=10, seed=2020):
    """av-benchmark's (and audioldm_eval's) ``compute_isc`` on logits."""
    rng = np.random.RandomState(seed)
    features = logits[rng.permutation(len(logits)), :].double()
    p, log_p, scores = features.softmax(dim=1), features.log_softmax(dim=1), []
    n = len(features)
    for i in range(splits):
        chunk = slice(i * n // splits, (i + 1) * n // splits)
        p_chunk, log_p_chunk = p[chunk], log_p[chunk]
        q_chunk = p_chunk.mean(dim=0, keepdim=True)
        scores.append((p_chunk * (log_p_chunk - q_chunk.log())).sum(dim=1).mean().exp().item())
    return float(np.mean(scores)), float(np.std(scores))


def frechet(a, b, eps=1e-6):
    """av-benchmark's ``compute_fd`` (pytorch-fid's formula)."""
    from scipy import linalg

    mu1, mu2 = np.mean(a, axis=0), np.mean(b, axis=0)
    sigma1, sigma2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    diff = mu1 - mu2
    covmean, _ = linalg.sqrtm(sigma1.dot(sigma2), disp=False)
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def toolkits(checkpoint, generated, reference):
    """Each toolkit's metrics on the pairs of ``generated`` and ``reference`` (wav files of the same names)."""
    import os

    from hear21passt.wrapper import PasstBasicWrapper

    net = net_module()
    net.load_state_dict(torch.load(checkpoint, map_location="cpu", weights_only=True), strict=True)
    model = PasstBasicWrapper(mel=mel_module(), net=net, mode="all").eval()
    F = torch.nn.functional
    names = sorted(n for n in os.listdir(reference)
                   if n.endswith(".wav") and os.path.exists(os.path.join(generated, n)))
    out, results = {}, {}
    with torch.no_grad():
        for toolkit, make in (("audioldm_eval", audioldm_eval_input), ("av-benchmark", av_benchmark_input),
                              ("av-benchmark-8s", lambda path: av_benchmark_input(path, 8.0))):
            rows = {}
            for side, folder in (("gen", generated), ("ref", reference)):
                both = torch.cat([quiet(model, make(os.path.join(folder, n))) for n in names])
                rows[side] = both[:, :527], both[:, 527:]
            (gen, gen_features), (ref, ref_features) = rows["gen"], rows["ref"]
            kl = {}
            for precision, cast in (("", lambda t: t), ("64", lambda t: t.double())):  # as run, and in float64
                g, r = cast(gen), cast(ref)
                for mode, prob, log in (("softmax", lambda t: t.softmax(dim=1), lambda t: F.log_softmax(t, dim=1)),
                                        ("sigmoid", torch.sigmoid, F.logsigmoid)):
                    if toolkit == "audioldm_eval":  # calculate_kl: KL(ref || gen), 1e-6 on gen
                        value = F.kl_div((prob(g) + 1e-6).log(), prob(r), reduction="sum")
                    else:  # av_bench/metrics/kl.py: KL(gt || gen) from the logs, no epsilon
                        value = F.kl_div(log(g), log(r), reduction="sum", log_target=True)
                    kl[f"kl{precision}_{mode}"] = float(value) / len(g)
            mean, std = inception_score(gen)
            results[toolkit] = {**kl, "is_mean": mean, "is_std": std,
                                "fd": frechet(gen_features.double().numpy(), ref_features.double().numpy())}
            out[toolkit] = {"gen_logits": gen.tolist(), "gen_features": gen_features.tolist(),
                            "ref_logits": ref.tolist(), "ref_features": ref_features.tolist()}
        model.mode = "logits"
        windows, skipped = {}, []
        for side, folder in (("gen", generated), ("ref", reference)):
            for n in names:
                try:
                    windows[side, n] = sam_logits(model, os.path.join(folder, n))
                except Exception as e:  # passt_kld skips the id on any error, as here (and says so on stdout)
                    skipped.append([side, n, type(e).__name__])
        kept = [n for n in names if ("gen", n) in windows and ("ref", n) in windows]
        for toolkit, collect in (("stable-audio-metrics", lambda t: torch.mean(t, dim=0)),
                                 ("stable-audio-metrics-max", lambda t: torch.max(t, dim=0)[0])):
            probabilities = {key: F.softmax(collect(logits), dim=0) for key, logits in windows.items()}
            kl = {}
            for precision, cast in (("", lambda t: t), ("64", lambda t: t.double())):
                kl["kl" + precision + "_softmax"] = sum(
                    float(F.kl_div((cast(probabilities["ref", n]) + 1e-6).log(), cast(probabilities["gen", n]),
                                   reduction="sum", log_target=False)) for n in kept) / len(kept)
            results[toolkit] = {**kl, "skipped": skipped, "ids": kept}
        results["audiocraft"] = audiocraft_metrics(model, generated, reference, names)
    return {"names": names, "metrics": results, "rows": out}


def audiocraft_metrics(model, generated, reference, names, max_duration=10):
    """``PasstKLDivergenceMetric.update`` and ``compute`` over the pairs (float32 sums, as it keeps them, and in
    float64): a pair whose files split into different numbers of segments is left out (audiocraft asserts equal
    shapes: it only ever compares clips of one length)."""
    import os

    def kl_divergence(pred_probs, target_probs, epsilon=1e-6):
        return torch.nn.functional.kl_div((pred_probs + epsilon).log(), target_probs, reduction="none").sum(-1)

    rows = {"gen": [], "ref": []}
    left_out = []
    for n in names:
        gen = audiocraft_probabilities(model, os.path.join(generated, n), max_duration)
        ref = audiocraft_probabilities(model, os.path.join(reference, n), max_duration)
        if len(gen) != len(ref) or not gen:
            left_out.append([n, len(gen), len(ref)])
            continue
        rows["gen"] += gen
        rows["ref"] += ref
    preds, targets = torch.stack(rows["gen"]), torch.stack(rows["ref"])
    out = {"left_out": left_out, "segments": len(preds)}
    for precision, cast in (("", lambda t: t), ("64", lambda t: t.double())):
        p, t = cast(preds), cast(targets)
        kld_pq = float(torch.sum(kl_divergence(p, t))) / len(p)
        kld_qp = float(torch.sum(kl_divergence(t, p))) / len(p)
        out.update({f"kld{precision}": kld_pq, f"kld_qp{precision}": kld_qp, f"kld_both{precision}": kld_pq + kld_qp})
    return out


def main(argv: list[str]) -> int:
    command = argv[0]
    torch.set_num_threads(1)
    if command == "mel":
        data, out, mel = np.load(argv[1]), {}, mel_module()
        with torch.no_grad():
            for key in data.files:
                out[key] = quiet(mel, torch.from_numpy(data[key].astype(np.float32))[None])[0].numpy()
        np.savez(argv[2], **out)
    elif command == "keys":
        state = net_module(*argv[2:3]).state_dict()
        with open(argv[1], "w") as f:
            json.dump({k: [list(v.shape), str(v.dtype).replace("torch.", "")] for k, v in state.items()}, f)
    elif command in ("net", "wave"):
        net = net_module(*argv[4:5])
        net.load_state_dict(torch.load(argv[1], map_location="cpu", weights_only=True), strict=True)
        mel = mel_module() if command == "wave" else None
        data, out = np.load(argv[2]), {}
        with torch.no_grad():
            for key in data.files:
                x = torch.from_numpy(data[key])
                if mel is not None:
                    x = quiet(mel, x).unsqueeze(1)  # PasstBasicWrapper.forward: specs.unsqueeze(1)
                logits, features = quiet(net, x)
                suffix = key[len(command if command == "wave" else "mel"):]
                out["logits" + suffix], out["features" + suffix] = logits.numpy(), features.numpy()
        np.savez(argv[3], **out)
    elif command == "toolkits":
        with open(argv[4], "w") as f:
            json.dump(toolkits(argv[1], argv[2], argv[3]), f)
    elif command == "audiocraft":
        import os

        from hear21passt.wrapper import PasstBasicWrapper

        arch = argv[2]
        net = net_module(arch)
        net.load_state_dict(torch.load(argv[1], map_location="cpu", weights_only=True), strict=True)
        model = PasstBasicWrapper(mel=mel_module(), net=net, mode="logits").eval()
        names = sorted(n for n in os.listdir(argv[4])
                       if n.endswith(".wav") and os.path.exists(os.path.join(argv[3], n)))
        with torch.no_grad(), open(argv[5], "w") as f:
            json.dump({"names": names, "metrics": audiocraft_metrics(model, argv[3], argv[4], names,
                                                                     MAX_DURATION[arch])}, f)
    else:
        raise SystemExit(f"unknown command {command!r}: mel, keys, net, wave, toolkits or audiocraft")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

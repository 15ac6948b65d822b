#!/usr/bin/env python3
"""Run the original OpenL3 (openl3 0.4.2 on kapre 0.3.7 and TensorFlow) and save what it computes, for the project's
side to compare (no project import).

openl3 needs TensorFlow (Keras 2) and kapre, which the runtime has no use for; so this script runs in the original's
own virtualenv, as a subprocess, and talks through files. Built as ``.ci/run`` builds it (Python 3.11):

    python3 -m venv /tmp/openl3-venv
    /tmp/openl3-venv/bin/pip install tensorflow-cpu==2.15.1 numpy==1.26.4 scipy==1.10.1 soxr==0.3.7 \\
        librosa==0.10.2.post1 pyloudnorm==0.1.1 resampy==0.2.2 soundfile scikit-learn h5py tqdm setuptools wheel
    # both from their sdists; openl3 0.4.2's setup.py downloads its weights from GitHub whenever it runs (metadata
    # included): fetch with that download stubbed out (STUB: a sitecustomize.py replacing urllib.request.urlretrieve
    # by one writing an empty gzip file), then install a copy holding empty placeholder weight files
    PYTHONPATH=STUB /tmp/openl3-venv/bin/pip download --no-deps --no-binary :all: --no-build-isolation \\
        kapre==0.3.7 openl3==0.4.2 -d SDIST
    cd SDIST && tar xzf openl3-0.4.2.tar.gz
    touch openl3-0.4.2/openl3/openl3_{audio,image}_{linear,mel128,mel256}_{music,env}.h5
    /tmp/openl3-venv/bin/pip install --no-deps --no-build-isolation kapre-0.3.7.tar.gz ./openl3-0.4.2

kapre 0.3.7 must come from its sdist (January 2022): the index's ``kapre-0.3.7-py3-none-any.whl`` (uploaded in
2025) holds kapre 0.4.0's rewrite and asks for TensorFlow 2.16+ and numpy 2. stable-audio-metrics' requirements pin
tensorflow 2.13.1, kapre 0.3.7, numpy 1.23.5, scipy 1.10.1, soxr 0.3.7, resampy 0.2.2, pyloudnorm 0.1.1, librosa
0.10.1 (and ran on GPUs). The TensorFlow pinned here is 2.15.1; 2.13.1 (numpy 1.24.3) installs on Python 3.11 as well
and gives the same network outputs for the same mel, but its float32 FFT has a higher round-off floor: mel bands
whose level lies near or under the decibel floor (-80 on openl3's scale, 10 log10 of a magnitude ratio of 1e-8; e.g.
the bands above 22.05 kHz of audio resampled from 44.1 kHz) differ between the two by up to about 16 dB.

    PYTHON openl3_original.py keys OUT.json                   # openl3's mel256 network: layers and weight shapes
    PYTHON openl3_original.py mel IN.npz OUT.npz              # its kapre frontend (frames -> decibel mel)
    PYTHON openl3_original.py frames IN.npz OUT.npz [HOP]     # openl3's own resampling and framing of a clip
    PYTHON openl3_original.py net WEIGHTS IN.npz OUT.npz      # the 512-d network with and without its frontend
    PYTHON openl3_original.py fd WEIGHTS CONTENT_TYPE RATE GEN REF OUT.npz [BATCH [HOP]]  # stable-audio-metrics

``WEIGHTS``: a weights file as openl3 ships them (``openl3_audio_mel256_{music,env}.h5``, a Keras 2
``save_weights`` HDF5 file), loaded with ``openl3.models.load_audio_embedding_model_from_path(WEIGHTS, "mel256", 512)``
(Keras 2 loads such a file by topology: the layers with weights in order, each layer's weights in order; the names
in the file are not read).

``keys``: ``openl3.models._construct_mel256_audio_network(include_frontend=True)``, built first thing in this process
(so Keras names its layers ``conv2d``, ``conv2d_1``, ...): for every layer of ``model.layers`` in order,
``[layer name, class name, [[weight name, shape], ...]]`` (weightless layers with an empty list).

``mel``: ``IN.npz`` arrays ``frames<i>`` (n, 48000) float32 (1-s windows at 48 kHz) -> ``OUT.npz`` ``mel<i>``
(n, 256, 199) float32: the output of the ``melspectrogram`` layer of that model (kapre's ``STFT``, ``Magnitude``,
``ApplyFilterbank``, then openl3's ``kapre_v0_1_4_magnitude_to_decibel`` ``Lambda`` and the ``Permute`` that openl3's
``__fix_kapre_spec`` appends), its last (channel) axis of 1 dropped. What that computes (checked against a float64
numpy transcription to 1.2e-4 dB): ``tf.signal.stft`` of 2048 points with a periodic Hann window, hop 242, no
centring, the end zero-padded to 199 frames (frame t reads samples 242 t to 242 t + 2047); the magnitude (not its
square); librosa's Slaney mel filterbank (sr 48000, 0 Hz to 24 kHz, ``norm="slaney"``) cast to float32;
``10 * log10(max(mel, 1e-10))`` (ten, on a magnitude), minus its maximum over the whole window (bands and frames),
floored at -80. A silent window is therefore all 0, not -80.

``frames``: ``IN.npz`` arrays ``audio<i>`` (n,) or (n, channels) and ``rate<i>`` (a scalar) -> ``frames<i>``
(windows, 48000) float32: ``openl3.preprocess_audio(audio, rate, hop_size=HOP)`` (HOP 0.5 by default: the channel
mean, resampy's ``kaiser_best`` to 48 kHz unless already there, half a window of zeros in front, zeros at the end to
a whole number of hops, 1-s windows every hop), as ``get_audio_embedding`` feeds the kapre model; also
``dtype<i>``, the dtype name of what it returns (the model's input casts it to float32).

``net``: ``IN.npz`` arrays ``frames<i>`` (n, 48000) float32 (or (n, 1, 48000)) -> ``embedding<i>`` (n, 512): the model
``load_audio_embedding_model_from_path(WEIGHTS, "mel256", 512, frontend="kapre")`` (the network, its
``MaxPooling2D((32, 24), padding="same")`` and ``Flatten``), ``model.predict`` on (n, 1, 48000) with
``get_audio_embedding``'s default batch size 32; arrays ``mel<i>`` (n, 256, 199) float32 ->
``embedding_from_mel<i>`` (n, 512): the same call with ``frontend="librosa"``, which is openl3's own model without
its frontend (``_construct_mel256_audio_network(include_frontend=False)``: input (256, 199, 1), the same weights
loaded from the same file), fed the mel with a channel axis added.

``fd``: stable-audio-metrics' ``src/openl3_fd.py`` (revision fd55536) transcribed: ``extract_embeddings`` (the
batched path, ``batching=BATCH``, 4 by default as its stored reference statistics were made) and
``extract_embeddings_nobatching``, each with channels 1 and 2, on the ``*.wav`` files of folders ``GEN`` and ``REF``,
resampled to ``RATE`` by soxr, hop ``HOP`` (0.5 by default, as its examples), then ``calculate_embd_statistics`` and
``calculate_frechet_distance`` (gen as "eval"). Changes: the model comes from ``WEIGHTS`` (``CONTENT_TYPE`` only
picks the file upstream, and is checked and recorded here) and is built once, not once per call (inference is
stateless); the file list is sorted (``glob`` order is arbitrary; the distance does not depend on it); the files'
embeddings are also kept one by one; its prints go to stderr. Files are read as it reads them (``librosa.load``:
``sr=None, mono=False`` in the batched path, ``sr=None`` and so a mono mixdown in the unbatched one, whose
``channels == 2`` therefore always duplicates the mono embedding; ``pyloudnorm``'s peak normalisation to -1 dB).
``OUT.npz``: ``files_gen``, ``files_ref`` (the sorted file names), ``<path>_ch<c>_<side>_<i>`` (windows, 512 * c)
float32 for ``path`` in ``batched``, ``unbatched``, ``c`` in 1, 2, ``side`` in ``gen``, ``ref`` and ``i`` the file's
index (their concatenation in file order is exactly the embeddings list the distance is computed on),
``fd_<path>_ch<c>`` (float64; NaN where their ``calculate_frechet_distance`` raised, with the message in
``fd_error_<path>_ch<c>``), and ``content_type``, ``rate``, ``hop``, ``batch_size``.

TensorFlow runs on the CPU here (tensorflow-cpu); its oneDNN kernels are on by default (``TF_ENABLE_ONEDNN_OPTS=0``
in the environment turns them off), which may change float32 results slightly.
"""
from __future__ import annotations

import contextlib
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up banner (no effect on what it computes)

import numpy as np  # noqa: E402

INPUT_REPR = "mel256"
EMBEDDING_SIZE = 512
SAMPLES = 48000
"""openl3's window: 1 s at 48 kHz (``TARGET_SR``)."""
MEL_SHAPE = (256, 199)
"""The mel the network reads: 256 bands, ceil(48000 / 242) frames (kapre's ``pad_end=True``)."""
CONTENT_TYPES = ("music", "env")


def openl3_model(weights, frontend="kapre"):
    """openl3's 512-d mel256 model on ``weights``; ``frontend="librosa"`` builds it without the kapre frontend."""
    if not os.path.isfile(weights):
        raise SystemExit(f"no weights file {weights!r}")
    import openl3

    return openl3.models.load_audio_embedding_model_from_path(weights, INPUT_REPR, EMBEDDING_SIZE, frontend=frontend)


def numbered(data, prefix):
    """The keys ``<prefix><suffix>`` of an npz file, with their suffixes, in the file's order."""
    keys = [k for k in data.files if k.startswith(prefix)]
    if not keys:
        raise SystemExit(f"no arrays named {prefix}<i> in the input (it has {data.files})")
    return [(k, k[len(prefix):]) for k in keys]


def as_frames(array, key):
    """(n, 48000) (or already (n, 1, 48000)) windows -> (n, 1, 48000) float32, the kapre model's channels-first
    input."""
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 2 or array.shape[1] != SAMPLES:
        raise SystemExit(f"{key}: expected (n, {SAMPLES}) or (n, 1, {SAMPLES}) windows, got {array.shape}")
    return np.ascontiguousarray(array, dtype=np.float32)[:, None, :]


def keys():
    import openl3

    model = openl3.models._construct_mel256_audio_network(include_frontend=True)
    return [[layer.name, layer.__class__.__name__, [[w.name, [int(d) for d in w.shape]] for w in layer.weights]]
            for layer in model.layers]


def frontend_model():
    """The ``melspectrogram`` layer of openl3's mel256 model, the kapre ``Sequential`` it builds (with its own
    input, (n, 1, 48000)) and ends with its decibel ``Lambda`` and ``Permute``: output (n, 256, 199, 1). (The
    model's first layer after its input; it has no weights.)"""
    import openl3

    model = openl3.models._construct_mel256_audio_network(include_frontend=True)
    spec = model.get_layer("melspectrogram")
    names = [layer.__class__.__name__ for layer in spec.layers]
    if model.layers[1] is not spec or names[-2:] != ["Lambda", "Permute"] or spec.weights:
        raise SystemExit(f"unexpected frontend layers {names}")
    return spec


def mel(data):
    spec, out = frontend_model(), {}
    for key, suffix in numbered(data, "frames"):
        x = as_frames(data[key], key)
        y = spec.predict(x, verbose=0)
        if y.shape[1:] != MEL_SHAPE + (1,):
            raise SystemExit(f"{key}: the frontend gave {y.shape}")
        out["mel" + suffix] = y[..., 0].astype(np.float32)
    return out


def frames(data, hop):
    import openl3

    out = {}
    for key, suffix in numbered(data, "audio"):
        if "rate" + suffix not in data.files:
            raise SystemExit(f"{key} has no rate{suffix}")
        rate = data["rate" + suffix].item()
        x = openl3.preprocess_audio(data[key], rate, hop_size=hop, center=True)  # (windows, 1, 48000)
        out["frames" + suffix] = np.ascontiguousarray(x[:, 0, :], dtype=np.float32)
        out["dtype" + suffix] = np.array(str(x.dtype))
    return out


def net(weights, data):
    out = {}
    frame_keys = [k for k in data.files if k.startswith("frames")]
    mel_keys = [k for k in data.files if k.startswith("mel")]
    if not frame_keys and not mel_keys:
        raise SystemExit(f"no arrays named frames<i> or mel<i> in the input (it has {data.files})")
    if frame_keys:
        model = openl3_model(weights, "kapre")
        for key in frame_keys:
            out["embedding" + key[len("frames"):]] = model.predict(as_frames(data[key], key), verbose=0, batch_size=32)
    if mel_keys:
        model = openl3_model(weights, "librosa")  # openl3's own model without the kapre frontend
        if tuple(model.input_shape[1:]) != MEL_SHAPE + (1,):
            raise SystemExit(f"the frontend-less model reads {model.input_shape}")
        for key in mel_keys:
            x = np.asarray(data[key])
            if x.ndim != 3 or x.shape[1:] != MEL_SHAPE:
                raise SystemExit(f"{key}: expected (n, 256, 199) mels, got {x.shape}")
            x = np.ascontiguousarray(x, dtype=np.float32)[..., None]
            out["embedding_from_mel" + key[len("mel"):]] = model.predict(x, verbose=0, batch_size=32)
    return out


# --- stable-audio-metrics' src/openl3_fd.py (fd55536), transcribed; changes marked "here:" ------------------------

def calculate_embd_statistics(embd_lst):
    if isinstance(embd_lst, list):
        embd_lst = np.array(embd_lst)
    mu = np.mean(embd_lst, axis=0)
    sigma = np.cov(embd_lst, rowvar=False)
    return mu, sigma


def calculate_frechet_distance(mu1, sigma1, mu2, sigma2, eps=1e-6):
    from scipy import linalg

    mu1 = np.atleast_1d(mu1)
    mu2 = np.atleast_1d(mu2)

    sigma1 = np.atleast_2d(sigma1)
    sigma2 = np.atleast_2d(sigma2)

    assert mu1.shape == mu2.shape, \
        'Training and test mean vectors have different lengths'
    assert sigma1.shape == sigma2.shape, \
        'Training and test covariances have different dimensions'

    diff = mu1 - mu2

    # product might be almost singular
    covmean, _ = linalg.sqrtm(sigma1.dot(sigma2), disp=False)
    if not np.isfinite(covmean).all():
        msg = ('fid calculation produces singular product; '
               'adding %s to diagonal of cov estimates') % eps
        print(msg)
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))

    # numerical error might give slight imaginary component
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            m = np.max(np.abs(covmean.imag))
            raise ValueError('Imaginary component {}'.format(m))
        covmean = covmean.real

    tr_covmean = np.trace(covmean)

    return (diff.dot(diff) + np.trace(sigma1)
            + np.trace(sigma2) - 2 * tr_covmean)


def extract_embeddings(directory_path, channels, samplingrate, content_type, openl3_hop_size, batch_size=16,
                       load_model=None, per_file=None):
    import glob

    import librosa
    import openl3
    import pyloudnorm as pyln
    import soxr
    from tqdm import tqdm

    wav_files = sorted(glob.glob(directory_path))  # here: sorted
    if len(wav_files) == 0:
        raise ValueError('No files with this extension in this path!')
    model = load_model(content_type)  # here: WEIGHTS, not the package's file

    first = True
    for i in tqdm(range(0, len(wav_files), batch_size)):
        batch_files = wav_files[i:i+batch_size]
        batch_audio_l = []
        batch_audio_r = []
        batch_sr = []

        for file in batch_files:
            audio, sr = librosa.load(file, sr=None, mono=False)
            audio = audio.T
            audio = pyln.normalize.peak(audio, -1.0)
            if audio.shape[0] < sr:
                print('Audio shorter than 1 sec, openl3 will zero-pad it:', file, audio.shape, sr)

            # resample to the desired evaluation bandwidth
            audio = soxr.resample(audio, sr, samplingrate)  # mono/stereo <- mono/stereo, input sr, output sr

            # mono embeddings are stored in batch_audio_l (R channel not used)
            if channels == 1:
                batch_audio_l.append(audio)

            elif channels == 2:
                if audio.ndim == 1:
                    # if mono, "fake" stereo by copying mono channel to L and R
                    batch_audio_l.append(audio)
                    batch_audio_r.append(audio)
                elif audio.ndim == 2:
                    # if it's stereo separate channels for openl3
                    batch_audio_l.append(audio[:, 0])
                    batch_audio_r.append(audio[:, 1])

            batch_sr.append(samplingrate)

        # extracting mono embeddings (dim=512) or the L channel for stereo embeddings
        emb, _ = openl3.get_audio_embedding(batch_audio_l, batch_sr, model=model, verbose=False,
                                            hop_size=openl3_hop_size, batch_size=batch_size)

        # format mono embedding
        if channels == 1:
            per_file.extend(emb)  # here: kept per file
            emb = np.concatenate(emb, axis=0)

        # extracting stereo embeddings (dim=1024), since we concatenate L (dim=512) and R (dim=512) embeddings
        elif channels == 2:
            # extract the missing R channel
            emb_r, _ = openl3.get_audio_embedding(batch_audio_r, batch_sr, model=model, verbose=False,
                                                  hop_size=openl3_hop_size, batch_size=batch_size)
            emb = [np.concatenate([l, r], axis=1) for l, r in zip(emb, emb_r)]  # noqa: E741
            per_file.extend(emb)  # here: kept per file
            emb = np.concatenate(emb, axis=0)

        # concatenate embeddings
        if first:
            embeddings = emb
            first = False
        else:
            embeddings = np.concatenate([embeddings, emb], axis=0)

    # return as a list of embeddings: [np.array[], ...]
    return [e for e in embeddings], wav_files  # here: and the files


def extract_embeddings_nobatching(directory_path, channels, samplingrate, content_type, openl3_hop_size,
                                  load_model=None, per_file=None):
    import glob

    import librosa
    import openl3
    import pyloudnorm as pyln
    import soxr
    from tqdm import tqdm

    wav_files = sorted(glob.glob(directory_path))  # here: sorted
    if len(wav_files) == 0:
        raise ValueError('No files with this extension in this path!')
    model = load_model(content_type)  # here: WEIGHTS, not the package's file

    first = True
    for file in tqdm(wav_files):
        audio, sr = librosa.load(file, sr=None)
        audio = pyln.normalize.peak(audio, -1.0)
        if audio.shape[0] < sr:
            print('Audio shorter than 1 sec, openl3 will zero-pad it:', file, audio.shape, sr)

        # resample to the desired evaluation bandwidth
        audio = soxr.resample(audio, sr, samplingrate)  # mono/stereo <- mono/stereo, input sr, output sr

        # extracting stereo embeddings (dim=1024), since we concatenate L (dim=512) and R (dim=512) embeddings
        if channels == 2:
            if audio.ndim == 1:
                audio_l3, sr_l3 = audio, samplingrate
            elif audio.ndim == 2:
                # if it's stereo separate channels for openl3
                audio_l3 = [audio[:, 0], audio[:, 1]]
                sr_l3 = [samplingrate, samplingrate]
            emb, _ = openl3.get_audio_embedding(audio_l3, sr_l3, model=model, verbose=False, hop_size=openl3_hop_size)
            if audio.ndim == 1:
                # if mono audio, "fake" stereo by concatenating mono embedding as L and R embeddings
                emb = np.concatenate([emb, emb], axis=1)
            elif audio.ndim == 2:
                emb = np.concatenate(emb, axis=1)

        # or extracting mono embeddings (dim=512)
        elif channels == 1:
            emb, _ = openl3.get_audio_embedding(audio, samplingrate, model=model, verbose=False,
                                                hop_size=openl3_hop_size)

        per_file.append(emb)  # here: kept per file

        # concatenate embeddings
        if first:
            embeddings = emb
            first = False
        else:
            embeddings = np.concatenate([embeddings, emb], axis=0)

    # return as a list of embeddings: [np.array[], ...]
    return [e for e in embeddings], wav_files  # here: and the files

# --- end of the transcription ---------------------------------------------------------------------------------------


def fd(weights, content_type, rate, generated, reference, batch_size=4, hop=0.5):
    """Both of stable-audio-metrics' paths, both channel counts, both folders; per-file embeddings and distances."""
    if content_type not in CONTENT_TYPES:
        raise SystemExit(f"content type {content_type!r}: music or env")
    for folder in (generated, reference):
        if not os.path.isdir(folder):
            raise SystemExit(f"no folder {folder!r}")
    models = {}

    def load_model(kind):
        if kind not in models:
            models[kind] = openl3_model(weights)
        return models[kind]

    out = {"content_type": np.array(content_type), "rate": np.array(rate), "hop": np.array(hop),
           "batch_size": np.array(batch_size)}
    for path in ("batched", "unbatched"):
        for channels in (1, 2):
            stats = {}
            for side, folder in (("gen", generated), ("ref", reference)):
                pattern, per_file = os.path.join(folder, "*.wav"), []
                if path == "batched":
                    embeddings, files = extract_embeddings(pattern, channels, rate, content_type, hop,
                                                           batch_size=batch_size, load_model=load_model,
                                                           per_file=per_file)
                else:
                    embeddings, files = extract_embeddings_nobatching(pattern, channels, rate, content_type, hop,
                                                                      load_model=load_model, per_file=per_file)
                if len(per_file) != len(files) or not np.array_equal(np.concatenate(per_file), np.array(embeddings)):
                    raise SystemExit(f"{path}, {channels} channel(s), {side}: the per-file embeddings do not make up "
                                     "the list the distance is computed on")
                names = np.array([os.path.basename(f) for f in files])
                if f"files_{side}" in out and not np.array_equal(out[f"files_{side}"], names):
                    raise SystemExit(f"{side}: the file list changed between runs")
                out[f"files_{side}"] = names
                for i, e in enumerate(per_file):
                    out[f"{path}_ch{channels}_{side}_{i}"] = np.asarray(e)
                stats[side] = calculate_embd_statistics(embeddings)
            key = f"fd_{path}_ch{channels}"
            try:
                out[key] = np.array(calculate_frechet_distance(*stats["gen"], *stats["ref"]), dtype=np.float64)
            except (ValueError, AssertionError, np.linalg.LinAlgError) as e:
                out[key] = np.array(np.nan)
                out[f"fd_error_{path}_ch{channels}"] = np.array(f"{type(e).__name__}: {e}")
    return out


USAGE = ("usage: keys OUT.json | mel IN.npz OUT.npz | frames IN.npz OUT.npz [HOP] | net WEIGHTS IN.npz OUT.npz | "
         "fd WEIGHTS CONTENT_TYPE RATE GEN REF OUT.npz [BATCH [HOP]]")


def main(argv: list[str]) -> int:
    arity = {"keys": (1, 1), "mel": (2, 2), "frames": (2, 3), "net": (3, 3), "fd": (6, 8)}
    if not argv or argv[0] not in arity:
        raise SystemExit(USAGE)
    command, args = argv[0], argv[1:]
    low, high = arity[command]
    if not low <= len(args) <= high:
        raise SystemExit(USAGE)
    if command == "keys":
        rows = keys()
        with open(args[0], "w") as f:
            json.dump(rows, f)
    elif command == "mel":
        np.savez(args[1], **mel(np.load(args[0])))
    elif command == "frames":
        np.savez(args[1], **frames(np.load(args[0]), float(args[2]) if len(args) > 2 else 0.5))
    elif command == "net":
        np.savez(args[2], **net(args[0], np.load(args[1])))
    elif command == "fd":
        weights, content_type, rate, generated, reference, out_path = args[:6]
        batch_size = int(args[6]) if len(args) > 6 else 4
        hop = float(args[7]) if len(args) > 7 else 0.5
        with contextlib.redirect_stdout(sys.stderr):  # its prints and warnings; stdout carries nothing
            out = fd(weights, content_type, int(rate), generated, reference, batch_size, hop)
        np.savez(out_path, **out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Reference class probabilities: stable-audio-metrics' ``*__reference_probabilities.pkl``, read without trusting it.

stable-audio-metrics (``src/passt_kld.py``) keeps the PaSST class probabilities of a reference set with
``pickle.dump(ref_p, f)``: a plain ``dict`` id -> ``torch.FloatTensor`` of shape (527,) holding softmax
probabilities, the ids being the dataset's ints or strings (``859``, ``"ytid_abc"``); ``passt_kld(...,
load_ref_probabilities=PATH)`` reads it back with ``pickle.load``, which runs whatever the file names. Here the
pickle is read by an unpickler that resolves only the globals such a file holds, each replaced by a pure NumPy
function of plain data, and refuses any other global by name before anything it names is imported or called.

What the pickles hold (``pickletools.dis`` of ``pickle.dumps({859: torch.softmax(torch.randn(527), 0)})``,
torch 2.13, protocols 2 to 5): ``torch._utils._rebuild_tensor_v2`` (storage, offset, size, stride,
requires_grad, backward hooks as ``collections.OrderedDict()``, [metadata]) and ``torch.storage._load_from_bytes``
(bytes); protocol 2 adds ``_codecs.encode`` (str, ``"latin1"``) to spell the bytes. Those bytes are a legacy
(non-zip) ``torch.save`` of the storage: four pickles (magic number, protocol 1001, a dict of system facts, the
storage as persistent id ``("storage", torch.FloatStorage, key, location, numel, None)``), a pickled list of
keys, then per key an int64 element count and the elements, both little-endian. They are decoded here without
``torch.load`` (torch is not needed, and a CUDA tensor reads on a machine without CUDA). NumPy values add
``numpy[._]core.multiarray._reconstruct``, ``numpy.ndarray`` and ``numpy.dtype`` (arrays),
``numpy[._]core.multiarray.scalar`` (scalars) and, at protocol 5, ``numpy[._]core.numeric._frombuffer``.

The ``.npz`` form (arrays ``ids`` (n,) and ``probabilities`` (n, classes), read with ``allow_pickle=False``)
holds the same without pickle.
"""
from __future__ import annotations

import collections
import io
import json
import math
import pickle
import re
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ReferenceProbabilitiesError, literal
from .outputs import atomic_write, npz

MAX_FILE_BYTES = 1 << 30
SUM_TOLERANCE = 1e-3

_HOW_TO_WRITE = ("write a dict id -> probability vector (torch tensors, NumPy arrays or lists of numbers), or an "
                 ".npz with arrays 'ids' (n,) and 'probabilities' (n, classes)")
_SOFTMAX_HINT = "store torch.softmax(logits, dim=0) of each clip's logits"
_ZIP_MAGIC = b"PK\x03\x04"
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # torch.serialization.MAGIC_NUMBER
_LEGACY_PROTOCOL = 1001  # torch.serialization.PROTOCOL_VERSION
# A tensor may view its storage with stride 0 (``expand``), so it can hold more numbers than the file has
# bytes; this many more are allowed before the file counts as a decompression bomb.
_ELEMENT_SLACK = 1 << 20
# torch's storage classes -> the dtype of their raw elements (always written little-endian)
_STORAGE_DTYPES = {"DoubleStorage": "<f8", "FloatStorage": "<f4", "HalfStorage": "<f2", "BFloat16Storage": "<u2",
                   "LongStorage": "<i8", "IntStorage": "<i4", "ShortStorage": "<i2", "CharStorage": "i1",
                   "ByteStorage": "u1"}
_NUMBER_DTYPE = re.compile(r"(f[248]|[iu][1248])\Z")  # NumPy's pickled dtype names of real numbers
_BYTE_ORDERS = ("<", ">", "|", "=")


@dataclass(frozen=True)
class ReferenceProbabilities:
    """Class probabilities of a reference set, one row per id, in the file's order.

    Attributes
    ----------
    ids : tuple of str, length n
        ``str(key)`` of each key: stable-audio-metrics pairs the generated file ``str(id) + ".wav"`` with key ``id``.
    probabilities : np.ndarray, shape (n, classes), float64, read-only
        Row i: the probabilities of ``ids[i]`` (finite, non-negative, summing to 1 within ``SUM_TOLERANCE``).
    source : str
        The file they were read from.
    made_with : dict, optional
        The evaluation settings that computed them (``audiofidelity stats --probabilities`` writes them; ``eval``
        refuses a file made with other ones); None for a file from elsewhere (stable-audio-metrics').
    """

    ids: tuple[str, ...]
    probabilities: np.ndarray
    source: str
    made_with: dict | None = None

    @property
    def classes(self) -> int:
        """Number of classes (527 for PaSST's AudioSet labels)."""
        return int(self.probabilities.shape[1])

    def __len__(self) -> int:
        return len(self.ids)

    def match(self, names: list[str]) -> tuple[list[tuple[str, int]], list[str], list[str]]:
        """Pair generated file names with ids as stable-audio-metrics does (the file ``str(id) + extension``): a
        name whose stem (or whole name) is an id.

        Returns (pairs ``(name, row)`` in ``names`` order, names with no id or sharing their id with another
        file (named, left out), ids no name matched)."""
        row = {identifier: i for i, identifier in enumerate(self.ids)}
        claimed: dict[int, list[str]] = {}
        unmatched = []
        for name in names:
            index = row.get(name, row.get(Path(name).stem))
            if index is None:
                unmatched.append(name)
            else:
                claimed.setdefault(index, []).append(name)
        pairs = [(found[0], index) for index, found in claimed.items() if len(found) == 1]
        unmatched += [n for found in claimed.values() if len(found) > 1 for n in found]
        order = {n: i for i, n in enumerate(names)}
        pairs.sort(key=lambda pair: order[pair[0]])
        return pairs, sorted(unmatched, key=order.__getitem__), [self.ids[i] for i in range(len(self.ids))
                                                                  if i not in claimed]


def is_probabilities_file(path: str | Path) -> bool:
    """Whether ``eval``'s reference ``path`` is a reference-probabilities file rather than a statistics file: a
    pickle (``.pkl``, ``.pickle``), or an ``.npz`` holding ``probabilities`` and no ``settings``."""
    if Path(path).suffix.lower() in (".pkl", ".pickle"):
        return True
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
    except (OSError, zipfile.BadZipFile):
        return False
    return "probabilities.npy" in names and "settings.npy" not in names


def read_reference_probabilities(path: str | Path, *, classes: int | None = None) -> ReferenceProbabilities:
    """Read a reference class-probabilities file without running anything in it.

    Parameters
    ----------
    path : str or Path
        A pickle as stable-audio-metrics writes it (a dict id -> probability vector: torch tensors, NumPy arrays
        or lists of numbers; ids int or str), or an ``.npz`` with arrays ``ids`` (n,) (str or int) and
        ``probabilities`` (n, classes). At most ``MAX_FILE_BYTES`` (1 GiB).
    classes : int, optional
        Number of entries each vector must have (527 for PaSST); by default all vectors must have the same number.

    Returns
    -------
    ReferenceProbabilities
        ``ids`` (n,) as strings and ``probabilities`` (n, classes) float64, in the file's order.

    Raises
    ------
    ReferenceProbabilitiesError
        (also a ``ValueError``; ``.path`` is ``path``) If the file is missing, over 1 GiB, truncated or garbage;
        if its pickle names any global other than those that rebuild numbers (``.name``: the dotted name; refused
        before it is imported or called); if it is not a non-empty dict of int or str ids (bool refused) whose
        ``str()`` are distinct; or if a vector (``.id``) is not 1-D, not of ``classes`` entries, not finite,
        negative or does not sum to 1 within ``SUM_TOLERANCE`` (logits).
    ValueError
        If ``classes`` is not a positive int.

    See Also
    --------
    stable-audio-metrics ``src/passt_kld.py`` : ``passt_kld(..., load_ref_probabilities=PATH)`` reads these files
        with ``pickle.load``; its ``return_probabilities`` makes each vector (softmax of PaSST's logits).

    References
    ----------
    Evans et al., "Fast Timing-Conditioned Latent Audio Diffusion" (Stable Audio), 2024;
    https://github.com/Stability-AI/stable-audio-metrics
    """
    if classes is not None and (type(classes) is not int or classes < 1):
        raise ValueError(f"classes must be a positive int or None, not {classes!r}")
    data = _read_limited(path)
    made_with = None
    if data.startswith(_ZIP_MAGIC) or Path(path).suffix.lower() == ".npz":
        keys, values, made_with = _entries_from_npz(data, path)
    else:
        keys, values = _entries_from_pickle(data, path)
    ids = _ids(keys, path)
    probabilities = _probability_rows(ids, values, path, classes=classes, budget=len(data) + _ELEMENT_SLACK)
    return ReferenceProbabilities(ids, probabilities, str(path), made_with)


def save_reference_probabilities(path: str | Path, ids: list[str], probabilities: np.ndarray, *,
                                 made_with: dict, option: str = "probabilities file") -> None:
    """Write the ``.npz`` form (``ids``, ``probabilities`` and the settings that made them, ``made_with``),
    atomically; ``OutputPathError`` naming ``option`` when it cannot be written."""
    atomic_write(path, npz({"ids": np.array(ids), "probabilities": np.asarray(probabilities, dtype=np.float64),
                            "made_with": np.array(json.dumps(made_with, sort_keys=True))}), option=option)


def _read_limited(path: str | Path) -> bytes:
    """The file's bytes, refused before reading when it is not a regular file or over ``MAX_FILE_BYTES``."""
    file = Path(path)
    try:
        if not file.is_file():
            raise ReferenceProbabilitiesError("{path} does not exist or is not a file", path=path)
        size = file.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ReferenceProbabilitiesError("{path} is {actual} bytes; a reference-probabilities file may have at "
                                              "most {expected} bytes", path=path, actual=size, expected=MAX_FILE_BYTES)
        with file.open("rb") as stream:
            data = stream.read(MAX_FILE_BYTES + 1)  # + 1: a file that grew since stat() is still caught
    except OSError as exc:
        raise ReferenceProbabilitiesError(f"{{path}} cannot be read: {literal(exc.strerror or exc)}",
                                          path=path) from exc
    if len(data) > MAX_FILE_BYTES:
        raise ReferenceProbabilitiesError("{path} grew past {expected} bytes while it was read", path=path,
                                          expected=MAX_FILE_BYTES)
    return data


# ---- the restricted unpickler --------------------------------------------------------------------------------

class _Refused(Exception):
    """A global outside the allow-list, by its dotted name (the caller adds the path)."""


class _Malformed(Exception):
    """Why the data is not a reference-probabilities file (the caller adds the path)."""


class _Inert:
    """Base of the stand-ins the unpickler builds: pickle's BUILD may not set their state."""

    __slots__ = ()

    def __setstate__(self, state: object) -> None:
        raise _Malformed(f"it sets the state of a {type(self).__name__}, which takes none")


class _NDArrayType(_Inert):
    """Stands for the class ``numpy.ndarray``, only ever passed to ``_reconstruct``."""

    __slots__ = ()


_NDARRAY = _NDArrayType()


class _Storage(_Inert):
    """A decoded torch storage: its elements, shape (numel,)."""

    __slots__ = ("array",)

    def __init__(self, array: np.ndarray) -> None:
        self.array = array


class _StorageType(_Inert):
    """Stands for a torch storage class (``torch.FloatStorage``...) inside a storage's bytes."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name


class _StorageRef(_Inert):
    """A storage's persistent id: its class name, key and number of elements."""

    __slots__ = ("kind", "key", "numel")

    def __init__(self, kind: str, key: str, numel: int) -> None:
        self.kind, self.key, self.numel = kind, key, numel


class _DType:
    """Stands for a ``numpy.dtype`` of real numbers; pickle's BUILD sets its byte order."""

    __slots__ = ("spec", "byteorder")

    def __init__(self, spec: str) -> None:
        self.spec, self.byteorder = spec, "="

    def __setstate__(self, state: object) -> None:
        # NumPy's state: (version, byteorder, subarray, names, fields, ...); a plain number has no fields
        if not (isinstance(state, tuple) and len(state) >= 5 and state[1] in _BYTE_ORDERS
                and all(part is None for part in state[2:5])):
            raise _Malformed(f"it holds a NumPy dtype {self.spec!r} that is not a plain number")
        self.byteorder = state[1]

    def numpy(self) -> np.dtype:
        dtype = np.dtype(self.spec)
        if self.byteorder == "<":
            return dtype.newbyteorder("<")
        return dtype.newbyteorder(">") if self.byteorder == ">" else dtype  # "|" and "=": as NumPy has it


class _PickledArray:
    """A NumPy array being unpickled: ``_reconstruct`` makes it empty, BUILD gives it its data."""

    __slots__ = ("array",)

    def __init__(self) -> None:
        self.array: np.ndarray | None = None

    def __setstate__(self, state: object) -> None:
        # NumPy's state: (version, shape, dtype, is_fortran, raw data)
        if self.array is not None or not (isinstance(state, tuple) and len(state) == 5
                                          and isinstance(state[3], bool)):
            raise _Malformed("it holds a NumPy array whose pickled state is not NumPy's")
        _, shape, dtype, fortran, raw = state
        self.array = _array_from_buffer(raw, dtype, shape, "F" if fortran else "C")


def _dims(value: object, what: str) -> tuple[int, ...]:
    """``value`` as a shape or strides: a tuple of non-negative ints."""
    if not (isinstance(value, tuple) and len(value) <= 64 and all(type(v) is int and v >= 0 for v in value)):
        raise _Malformed(f"its {what} is not a tuple of non-negative ints")
    return value


def _array_from_buffer(raw: object, dtype: object, shape: object, order: object) -> np.ndarray:
    """An array of ``shape`` viewing ``raw``, whose size must match exactly (no copy, nothing invented)."""
    if not isinstance(raw, (bytes, bytearray)):
        raise _Malformed("it holds a NumPy array of objects, not of numbers")
    if not isinstance(dtype, _DType) or order not in ("C", "F"):
        raise _Malformed("it holds a NumPy array without a plain number dtype")
    dims = _dims(shape, "NumPy array shape")
    numpy_dtype = dtype.numpy()
    if math.prod(dims) * numpy_dtype.itemsize != len(raw):
        raise _Malformed("it holds a NumPy array whose data do not match its shape")
    return np.frombuffer(bytes(raw), dtype=numpy_dtype).reshape(dims, order=order)


def _dtype(spec: object, align: object = False, copy: object = False) -> _DType:
    """``numpy.dtype``'s stand-in: only the dtypes of real numbers."""
    if not (isinstance(spec, str) and _NUMBER_DTYPE.match(spec)):
        raise _Malformed(f"it holds a NumPy dtype {repr(spec)[:40]}, not of real numbers")
    return _DType(spec)


def _reconstruct(subtype: object, shape: object, dtype_code: object) -> _PickledArray:
    """``numpy.core.multiarray._reconstruct``'s stand-in: an empty array whose BUILD gives the data."""
    if subtype is not _NDARRAY:
        raise _Malformed("it rebuilds a NumPy array of a type other than numpy.ndarray")
    return _PickledArray()


def _scalar(dtype: object, data: object) -> np.generic:
    """``numpy.core.multiarray.scalar``'s stand-in: one number from its bytes."""
    if not (isinstance(dtype, _DType) and isinstance(data, bytes) and len(data) == dtype.numpy().itemsize):
        raise _Malformed("it holds a NumPy scalar that is not a plain number")
    return np.frombuffer(data, dtype=dtype.numpy())[0]


def _frombuffer(buffer: object, dtype: object, shape: object, order: object) -> np.ndarray:
    """``numpy.core.numeric._frombuffer``'s stand-in (protocol 5 arrays)."""
    return _array_from_buffer(buffer, dtype, shape, order)


def _latin1_bytes(text: object, encoding: object) -> bytes:
    """``_codecs.encode``'s stand-in, for the one use protocol 2 makes of it: bytes spelled as latin-1 text."""
    if not (type(text) is str and encoding == "latin1"):
        raise _Malformed("it encodes text other than as pickle's latin-1 spelling of bytes")
    return text.encode("latin1")


class _StorageUnpickler(pickle.Unpickler):
    """Reads the pickles inside a storage's bytes: only torch storage classes, as names."""

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise _Refused(f"{module}.{name}")

    def persistent_load(self, pid: Any) -> Any:
        if (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage" and isinstance(pid[1], _StorageType)
                and type(pid[2]) is str and type(pid[3]) is str and type(pid[4]) is int and pid[4] >= 0
                and pid[5] is None):
            return _StorageRef(pid[1].name, pid[2], pid[4])
        raise _Malformed("a tensor's storage is not in torch's pickled-storage format")


def _storage_from_bytes(data: object) -> _Storage:
    """``torch.storage._load_from_bytes``'s stand-in: decode a legacy ``torch.save`` of one storage."""
    if not isinstance(data, bytes):
        raise _Malformed("a tensor's storage is not bytes")
    stream = io.BytesIO(data)
    magic, protocol, sys_info, ref, keys = (_StorageUnpickler(stream).load() for _ in range(5))
    if not (type(magic) is int and magic == _LEGACY_MAGIC and type(protocol) is int
            and protocol == _LEGACY_PROTOCOL and isinstance(sys_info, dict) and isinstance(ref, _StorageRef)
            and keys == [ref.key]):
        raise _Malformed("a tensor's storage is not in torch's pickled-storage format")
    dtype = np.dtype(_STORAGE_DTYPES[ref.kind])
    count = int.from_bytes(stream.read(8), "little")
    raw = stream.read(ref.numel * dtype.itemsize) if ref.numel <= len(data) else b""
    if count != ref.numel or len(raw) != ref.numel * dtype.itemsize or stream.read(1):
        raise _Malformed("a tensor's storage does not hold the number of elements it declares")
    elements = np.frombuffer(raw, dtype=dtype)
    if ref.kind == "BFloat16Storage":  # bfloat16: the high half of a float32
        elements = (elements.astype(np.uint32) << 16).view(np.float32)
    return _Storage(elements)


def _strided_copy(storage: object, offset: object, size: object, stride: object) -> np.ndarray:
    """The elements a tensor views: ``storage[offset + sum(i_k * stride_k)]`` for each index, bounds-checked."""
    if not isinstance(storage, _Storage) or type(offset) is not int or offset < 0:
        raise _Malformed("it rebuilds a tensor from something other than a storage and an offset")
    dims, steps = _dims(size, "tensor size"), _dims(stride, "tensor stride")
    if len(dims) != len(steps):
        raise _Malformed("it rebuilds a tensor whose size and stride differ in length")
    if math.prod(dims) == 0:
        return np.empty(dims, dtype=storage.array.dtype)
    if offset + sum((n - 1) * s for n, s in zip(dims, steps)) >= storage.array.size:
        raise _Malformed("it rebuilds a tensor that reaches past the end of its storage")
    index = np.full((), offset, dtype=np.int64)
    for axis, (n, s) in enumerate(zip(dims, steps)):
        step = s if n > 1 else 0  # a stride of a length-1 axis is never used (and may be any int)
        index = index + (np.arange(n, dtype=np.int64) * step).reshape((n,) + (1,) * (len(dims) - axis - 1))
    return np.asarray(storage.array[index])


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler whose globals are only the stand-ins above; any other global is refused by name.

    ``element_budget``: how many numbers rebuilt tensors may hold in all (stride-0 views could otherwise turn a
    small file into a large allocation).
    """

    def __init__(self, file: io.BytesIO, *, element_budget: int) -> None:
        super().__init__(file)
        self._budget = element_budget
        self._allowed: dict[tuple[str, str], Any] = {
            ("collections", "OrderedDict"): collections.OrderedDict,
            ("torch._utils", "_rebuild_tensor_v2"): self._rebuild_tensor_v2,
            ("torch._utils", "_rebuild_tensor"): self._rebuild_tensor,
            ("torch.storage", "_load_from_bytes"): _storage_from_bytes,
            ("_codecs", "encode"): _latin1_bytes,
            ("numpy", "ndarray"): _NDARRAY,
            ("numpy", "dtype"): _dtype,
        }
        for core in ("numpy.core", "numpy._core"):  # NumPy 1 and NumPy 2 spell their module differently
            self._allowed[(f"{core}.multiarray", "_reconstruct")] = _reconstruct
            self._allowed[(f"{core}.multiarray", "scalar")] = _scalar
            self._allowed[(f"{core}.numeric", "_frombuffer")] = _frombuffer

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise _Refused(f"{module}.{name}") from None

    def persistent_load(self, pid: Any) -> Any:
        raise _Malformed("it refers to data outside itself (a persistent id)")

    def _rebuild_tensor(self, storage: object, offset: object, size: object, stride: object) -> np.ndarray:
        count = math.prod(_dims(size, "tensor size"))
        if count > self._budget:
            raise _Malformed("its tensors hold more numbers than the file has bytes (repeated views of one storage)")
        self._budget -= count
        return _strided_copy(storage, offset, size, stride)

    def _rebuild_tensor_v2(self, storage: object, offset: object, size: object, stride: object,
                           requires_grad: object = False, backward_hooks: object = None,
                           metadata: object = None) -> np.ndarray:
        # requires_grad and the (always empty) hooks do not change the numbers; metadata's "neg" bit does
        tensor = self._rebuild_tensor(storage, offset, size, stride)
        if metadata:
            if not (isinstance(metadata, dict) and set(metadata) <= {"neg"}):
                raise _Malformed(f"it holds a tensor with metadata {repr(metadata)[:80]}")
            if metadata.get("neg"):
                tensor = -tensor
        return tensor


# a truncated or garbage pickle fails in one of these ways (the C unpickler's own errors are UnpicklingError)
_UNREADABLE = (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
               OverflowError, RecursionError)


def _kind(value: object) -> str:
    """What ``value`` is, as a message names it."""
    return "numpy.ndarray" if isinstance(value, _PickledArray) else type(value).__name__


def _entries_from_pickle(data: bytes, path: str | Path) -> tuple[list[Any], list[Any]]:
    """The keys and values of the dict a pickle holds, unpickled by ``_RestrictedUnpickler``."""
    stream = io.BytesIO(data)
    try:
        top = _RestrictedUnpickler(stream, element_budget=len(data) + _ELEMENT_SLACK).load()
    except _Refused as exc:
        raise ReferenceProbabilitiesError(
            "{path} is refused: its pickle would call {name}, which plain containers of numbers never need "
            "(refused before it was imported or called); " + literal(_HOW_TO_WRITE), path=path,
            name=str(exc)) from None
    except _Malformed as exc:
        raise ReferenceProbabilitiesError(f"{{path}} is not a reference-probabilities file: {literal(exc)}",
                                          path=path) from None
    except _UNREADABLE as exc:
        raise ReferenceProbabilitiesError(f"{{path}} is not a readable pickle (truncated or not a pickle: "
                                          f"{literal(exc)})", path=path) from exc
    if stream.tell() != len(data):
        raise ReferenceProbabilitiesError("{path} has {actual} bytes after its pickle: not a single pickled dict",
                                          path=path, actual=len(data) - stream.tell())
    if not isinstance(top, dict):
        raise ReferenceProbabilitiesError("{path} holds a {actual}, not a dict id -> probability vector; "
                                          + literal(_HOW_TO_WRITE), path=path, actual=_kind(top))
    return list(top.keys()), list(top.values())


def _entries_from_npz(data: bytes, path: str | Path) -> tuple[list[Any], list[Any], dict | None]:
    """The ids and rows of an ``.npz`` with arrays ``ids`` (n,) and ``probabilities`` (n, classes), and its
    ``made_with`` settings (a JSON object) when it has them."""
    unreadable = (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:  # a zip bomb is refused before it is inflated
            inflated = sum(member.file_size for member in archive.infolist())
    except unreadable as exc:
        raise ReferenceProbabilitiesError(f"{{path}} is not a readable .npz ({literal(exc)}); "
                                          + literal(_HOW_TO_WRITE), path=path) from exc
    if inflated > MAX_FILE_BYTES:
        raise ReferenceProbabilitiesError("{path} inflates to {actual} bytes; at most {expected} are read",
                                          path=path, actual=inflated, expected=MAX_FILE_BYTES)
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files if name in ("ids", "probabilities", "made_with")}
    except unreadable as exc:
        raise ReferenceProbabilitiesError(f"{{path}} is not a readable .npz ({literal(exc)}); "
                                          + literal(_HOW_TO_WRITE), path=path) from exc
    missing = [name for name in ("ids", "probabilities") if name not in arrays]
    if missing:
        raise ReferenceProbabilitiesError("{path} lacks the array(s) {expected}; " + literal(_HOW_TO_WRITE),
                                          path=path, expected=missing)
    ids, rows = arrays["ids"], arrays["probabilities"]
    if ids.ndim != 1 or ids.dtype.kind not in "Uiu":
        raise ReferenceProbabilitiesError("{path}: 'ids' is {actual}; it must be (n,) strings or ints", path=path,
                                          actual=f"{ids.shape} {ids.dtype}")
    if rows.ndim != 2 or rows.shape[0] != ids.shape[0]:
        raise ReferenceProbabilitiesError("{path}: 'probabilities' has shape {actual}; it must be {expected} "
                                          "(one row per id)", path=path, actual=rows.shape,
                                          expected=f"({ids.shape[0]}, classes)")
    made_with = None
    if "made_with" in arrays:
        try:
            made_with = json.loads(str(arrays["made_with"]))
        except ValueError:
            made_with = None
        if not isinstance(made_with, dict):
            raise ReferenceProbabilitiesError("{path}: 'made_with' is not the JSON object of the settings that made "
                                              "it", path=path)
    return ids.tolist(), list(rows), made_with


# ---- the checks ----------------------------------------------------------------------------------------------

def _ids(keys: list[Any], path: str | Path) -> tuple[str, ...]:
    """``str(key)`` of each key, refused unless ints (not bool) or strings whose ``str()`` are distinct."""
    if not keys:
        raise ReferenceProbabilitiesError("{path} holds no ids (an empty dict)", path=path)
    ids: dict[str, Any] = {}
    for key in keys:
        if isinstance(key, bool) or not isinstance(key, (int, str)):
            raise ReferenceProbabilitiesError("{path} has an id of type {actual}; ids are ints or strings",
                                              path=path, actual=_kind(key))
        try:
            ident = str(key)
        except ValueError:  # an int of more digits than Python converts
            raise ReferenceProbabilitiesError("{path} has an int id too long to name a file", path=path) from None
        if ident in ids:
            raise ReferenceProbabilitiesError(
                "{path} has two ids that are both {id} as strings ({actual}); stable-audio-metrics names the "
                "generated file str(id) + '.wav', so they would pair with the same file", path=path, id=ident,
                actual=f"{ids[ident]!r} and {key!r}")
        ids[ident] = key
    return tuple(ids)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _numbers(value: object) -> np.ndarray:
    """``value`` (a rebuilt tensor, an array, or a list or tuple of numbers) as an array of real numbers."""
    if isinstance(value, _PickledArray):
        if value.array is None:
            raise _Malformed("is a NumPy array without data")
        value = value.array
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "fiu":
            raise _Malformed(f"is an array of {value.dtype}, not of real numbers")
        return value
    if isinstance(value, (list, tuple)):
        if any(isinstance(v, (list, tuple, np.ndarray, _PickledArray)) for v in value):
            raise _Malformed("is a nested list (2-D), not one vector")
        if not all(_is_number(v) for v in value):
            raise _Malformed("is a list holding something other than numbers")
        try:
            return np.array(value, dtype=np.float64)
        except OverflowError:
            raise _Malformed("holds an int too large for a float") from None
    raise _Malformed(f"is a {_kind(value)}, not a vector of probabilities")


def _probability_rows(ids: tuple[str, ...], values: list[Any], path: str | Path, *, classes: int | None,
                      budget: int) -> np.ndarray:
    """The vectors stacked, shape (n, classes) float64, each checked to be a probability distribution."""
    arrays = []
    for ident, value in zip(ids, values):
        try:
            arrays.append(_numbers(value))
        except _Malformed as exc:
            raise ReferenceProbabilitiesError(f"{{path}}: the value of id {{id}} {literal(exc)}; "
                                              + literal(_HOW_TO_WRITE), path=path, id=ident) from None
    expected = classes if classes is not None else (arrays[0].shape[0] if arrays[0].ndim == 1 else None)
    for ident, array in zip(ids, arrays):
        if array.ndim != 1:
            raise ReferenceProbabilitiesError("{path}: the probabilities of id {id} have shape {actual}; each id "
                                              "needs one vector (1-D)", path=path, id=ident, actual=array.shape)
        if array.shape[0] != expected and classes is not None:
            raise ReferenceProbabilitiesError("{path}: id {id} has {actual} probabilities; classes={expected} asks "
                                              "for that many", path=path, id=ident, actual=array.shape[0],
                                              expected=expected)
        if array.shape[0] != expected:
            raise ReferenceProbabilitiesError("{path}: id {id} has {actual} probabilities where id {first} has "
                                              "{expected}; every id needs the same number", path=path, id=ident,
                                              actual=array.shape[0], first=ids[0], expected=expected)
    if len(arrays) * (expected or 0) > budget:  # each vector viewing one shared buffer: a bomb
        raise ReferenceProbabilitiesError("{path} holds more numbers than its {actual} bytes can store",
                                          path=path, actual=budget - _ELEMENT_SLACK)
    rows = np.empty((len(arrays), expected or 0), dtype=np.float64)
    for i, (ident, array) in enumerate(zip(ids, arrays)):
        rows[i] = array  # float32 -> float64 is exact
        row = rows[i]
        if not np.isfinite(row).all():
            raise ReferenceProbabilitiesError("{path}: the probabilities of id {id} are not all finite (NaN or "
                                              "inf)", path=path, id=ident)
        if (row < 0).any():
            raise ReferenceProbabilitiesError("{path}: the probabilities of id {id} include negative values (min "
                                              "{actual}): they look like logits; " + literal(_SOFTMAX_HINT),
                                              path=path, id=ident, actual=float(row.min()))
        total = float(row.sum())
        if abs(total - 1.0) > SUM_TOLERANCE:
            raise ReferenceProbabilitiesError("{path}: the probabilities of id {id} sum to {actual}, not 1 (within "
                                              "{expected}): they look like logits or sigmoid scores; "
                                              + literal(_SOFTMAX_HINT), path=path, id=ident, actual=total,
                                              expected=SUM_TOLERANCE)
    rows.setflags(write=False)
    return rows

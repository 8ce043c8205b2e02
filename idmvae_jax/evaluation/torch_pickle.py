"""Read PyTorch `torch.save` checkpoints without torch, as numpy arrays.

A `.pth` state dict is a pickle whose tensors are rebuilt by `torch._utils._rebuild_tensor_v2`
from storages that the pickle refers to by *persistent id*; the storage bytes live outside the
pickle. Two container layouts exist:

* zip (torch >= 1.6): `<prefix>/data.pkl` holds the pickle, the persistent id is
  `('storage', StorageType, key, location, numel)` and the bytes of storage `key` are the zip
  entry `<prefix>/data/<key>` (optionally `<prefix>/byteorder` says "little" or "big").
* legacy (torch < 1.6): five consecutive pickles in one file (magic number, protocol version
  1001, system info, the object, the list of storage keys), then for each key in that list an
  int64 element count and the raw little-endian bytes. The persistent id has a sixth field,
  `view_metadata` = None or `(view_key, offset, size)` for a storage view.

`load_torch_state_dict` handles both with a restricted unpickler that resolves only the handful
of globals a state dict needs (OrderedDict, the tensor rebuild functions, the typed storage
classes) and refuses everything else, so loading an untrusted file cannot run code.
`torch_pickle_writer.save_torch_state_dict` writes either layout.
"""
import collections
import io
import os
import pickle
import struct
import zipfile
from typing import Dict, Optional

import numpy as np

LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL_VERSION = 1001


def _bfloat16():
    import ml_dtypes  # installed with jax

    return np.dtype(ml_dtypes.bfloat16)


_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "BFloat16Storage": None,  # resolved lazily through ml_dtypes
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class _StorageType:
    """Stand-in for a `torch.<X>Storage` class: knows only its numpy dtype."""

    def __init__(self, name: str):
        self.name = name
        dtype = _STORAGE_DTYPES[name]
        self.dtype = _bfloat16() if dtype is None else np.dtype(dtype)


class _Storage:
    """A flat typed buffer; `data` is filled when the bytes are read (after the pickle, legacy)."""

    def __init__(self, dtype: np.dtype, numel: int):
        self.dtype, self.numel = dtype, int(numel)
        self.data: Optional[np.ndarray] = None
        self.root: Optional["_Storage"] = None  # legacy storage views: (root, offset)
        self.offset = 0

    def array(self) -> np.ndarray:
        if self.root is not None:
            return self.root.array()[self.offset:self.offset + self.numel]
        if self.data is None:
            raise pickle.UnpicklingError("a storage referenced by the pickle was never read")
        return self.data


class _PendingTensor:
    """A tensor whose storage bytes may not be read yet; materialised by `_materialise`."""

    def __init__(self, storage: _Storage, offset: int, size, stride):
        self.storage, self.offset = storage, int(offset)
        self.size, self.stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)

    def to_numpy(self) -> np.ndarray:
        flat = self.storage.array()
        if len(self.size) != len(self.stride):
            raise pickle.UnpicklingError("tensor size and stride differ in length")
        if any(s == 0 for s in self.size):
            return np.zeros(self.size, dtype=flat.dtype)
        last = self.offset + sum((n - 1) * st for n, st in zip(self.size, self.stride))
        if self.offset < 0 or any(st < 0 for st in self.stride) or last >= flat.size:
            raise pickle.UnpicklingError("tensor view lies outside its storage")
        view = np.lib.stride_tricks.as_strided(
            flat[self.offset:], shape=self.size,
            strides=tuple(st * flat.itemsize for st in self.stride), writeable=False)
        return np.array(view)  # a contiguous copy that owns its memory


def _rebuild_tensor(storage, storage_offset, size, stride, *unused):
    return _PendingTensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, *unused):
    return data


_ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only state-dict globals; storages come back through `persistent_load`."""

    def __init__(self, file, persistent_load):
        super().__init__(file, encoding="utf-8")
        self._persistent_load = persistent_load

    def find_class(self, module, name):
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load global {module}.{name}: not part of a plain state dict"
            ) from None

    def persistent_load(self, pid):
        return self._persistent_load(pid)


def _materialise(obj):
    if isinstance(obj, _PendingTensor):
        return obj.to_numpy()
    if isinstance(obj, collections.OrderedDict):
        out = collections.OrderedDict((k, _materialise(v)) for k, v in obj.items())
        out.__dict__.update(getattr(obj, "__dict__", {}))  # e.g. torch's `_metadata`
        return out
    if isinstance(obj, dict):
        return {k: _materialise(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_materialise(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_materialise(v) for v in obj)
    return obj


def _as_str(x) -> str:
    return x.decode("ascii") if isinstance(x, bytes) else str(x)


def _load_zip(path: str):
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        pkl = [n for n in names if n == "data.pkl" or n.endswith("/data.pkl")]
        if len(pkl) != 1:
            raise pickle.UnpicklingError(f"{path}: expected one data.pkl in the zip, found {pkl}")
        prefix = pkl[0][: -len("data.pkl")]
        byteorder = "little"
        if prefix + "byteorder" in names:
            byteorder = zf.read(prefix + "byteorder").decode("ascii").strip()
        storages: Dict[str, _Storage] = {}

        def persistent_load(pid):
            if not isinstance(pid, tuple) or _as_str(pid[0]) != "storage":
                raise pickle.UnpicklingError(f"unknown persistent id {pid!r}")
            storage_type, key, _location, numel = pid[1:5]
            key = _as_str(key)
            if key not in storages:
                raw = zf.read(f"{prefix}data/{key}")
                dtype = storage_type.dtype.newbyteorder("<" if byteorder == "little" else ">")
                if len(raw) != numel * dtype.itemsize:
                    raise pickle.UnpicklingError(
                        f"storage {key}: {len(raw)} bytes for {numel} x {dtype}")
                st = _Storage(storage_type.dtype, numel)
                st.data = np.frombuffer(raw, dtype=dtype).astype(storage_type.dtype)
                storages[key] = st
            return storages[key]

        obj = _RestrictedUnpickler(io.BytesIO(zf.read(pkl[0])), persistent_load).load()
        return _materialise(obj)


def _load_legacy(path: str):
    with open(path, "rb") as f:
        def plain_load():
            return _RestrictedUnpickler(f, refuse_persistent_id).load()

        if plain_load() != LEGACY_MAGIC_NUMBER:
            raise pickle.UnpicklingError(f"{path}: not a torch.save file (bad magic number)")
        version = plain_load()
        if version != LEGACY_PROTOCOL_VERSION:
            raise pickle.UnpicklingError(f"{path}: unsupported legacy protocol {version}")
        sys_info = plain_load()
        if isinstance(sys_info, dict) and not sys_info.get("little_endian", True):
            raise pickle.UnpicklingError(f"{path}: big-endian legacy files are not supported")
        storages: Dict[str, _Storage] = {}

        def persistent_load(pid):
            if not isinstance(pid, tuple) or _as_str(pid[0]) != "storage":
                raise pickle.UnpicklingError(f"unknown persistent id {pid!r}")
            storage_type, root_key, _location, numel, view_metadata = pid[1:6]
            root_key = _as_str(root_key)
            if root_key not in storages:
                storages[root_key] = _Storage(storage_type.dtype, numel)
            root = storages[root_key]
            if view_metadata is None:
                return root
            view_key, offset, view_size = view_metadata
            view_key = _as_str(view_key)
            if view_key not in storages:
                view = _Storage(storage_type.dtype, view_size)
                view.root, view.offset = root, int(offset)
                storages[view_key] = view
            return storages[view_key]

        obj = _RestrictedUnpickler(f, persistent_load).load()
        keys = plain_load()
        for key in keys:
            st = storages[_as_str(key)]
            (count,) = struct.unpack("<q", f.read(8))
            if count != st.numel:
                raise pickle.UnpicklingError(
                    f"storage {key}: header says {count} elements, pickle says {st.numel}")
            nbytes = count * st.dtype.itemsize
            raw = f.read(nbytes)
            if len(raw) != nbytes:
                raise pickle.UnpicklingError(f"{path}: truncated storage {key}")
            st.data = np.frombuffer(raw, dtype=st.dtype.newbyteorder("<")).astype(st.dtype)
        return _materialise(obj)


def refuse_persistent_id(pid):
    """The persistent_load of pickles that must not reference storages (legacy headers)."""
    raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")


def load_torch_state_dict(path: str) -> "collections.OrderedDict[str, np.ndarray]":
    """Reads a `torch.save`d state dict (zip or legacy layout) into numpy arrays, without torch.

    Args:
      path: the `.pth`/`.pt` file.
    Returns:
      The unpickled object (for a state dict: an OrderedDict mapping parameter names to
      C-contiguous numpy arrays of their saved shapes and dtypes).
    Raises:
      FileNotFoundError: no such file. pickle.UnpicklingError: not a state-dict pickle, or it
      references any global beyond OrderedDict, the tensor rebuild functions and storage types.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(path)
    if zipfile.is_zipfile(path):
        return _load_zip(path)
    return _load_legacy(path)

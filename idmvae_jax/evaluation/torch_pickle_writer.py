"""Write numpy arrays as a PyTorch `torch.save` state dict, without torch.

`save_torch_state_dict` writes either layout that `torch_pickle.load_torch_state_dict` reads (the
zip layout of torch >= 1.6, or the legacy single stream) by emitting pickle protocol 2 opcodes
directly; the tests use it to build synthetic files of the exact structure of real ones (e.g. the
FID Inception weights).
"""
import collections
import struct
import zipfile
from typing import Any, List, Mapping, Optional, Tuple

import numpy as np

from idmvae_jax.evaluation.torch_pickle import (LEGACY_MAGIC_NUMBER, LEGACY_PROTOCOL_VERSION,
                                                refuse_persistent_id)

_DTYPE_TO_STORAGE = {
    np.dtype(np.float32): "FloatStorage",
    np.dtype(np.float64): "DoubleStorage",
    np.dtype(np.float16): "HalfStorage",
    np.dtype(np.int64): "LongStorage",
    np.dtype(np.int32): "IntStorage",
    np.dtype(np.int16): "ShortStorage",
    np.dtype(np.int8): "CharStorage",
    np.dtype(np.uint8): "ByteStorage",
    np.dtype(np.bool_): "BoolStorage",
}


class _PickleWriter:
    """Emits pickle protocol 2 opcodes for the few types a state dict holds."""

    def __init__(self, persistent_id):
        self.out = bytearray(b"\x80\x02")  # PROTO 2
        self.persistent_id = persistent_id

    def global_(self, module: str, name: str):
        self.out += b"c" + module.encode("ascii") + b"\n" + name.encode("ascii") + b"\n"

    def value(self, v: Any):
        out = self.out
        if v is None:
            out += b"N"
        elif v is True or v is False:
            out += b"\x88" if v else b"\x89"
        elif isinstance(v, int):
            if 0 <= v < 256:
                out += b"K" + bytes([v])
            elif -(2 ** 31) <= v < 2 ** 31:
                out += b"J" + struct.pack("<i", v)
            else:
                n = (v.bit_length() + 8) // 8
                out += b"\x8a" + bytes([n]) + v.to_bytes(n, "little", signed=True)
        elif isinstance(v, float):
            out += b"G" + struct.pack(">d", v)  # BINFLOAT (e.g. an optimizer's learning rate)
        elif isinstance(v, str):
            raw = v.encode("utf-8")
            out += b"X" + struct.pack("<I", len(raw)) + raw
        elif isinstance(v, tuple):
            if not v:
                out += b")"
            elif len(v) <= 3:
                for item in v:
                    self.value(item)
                out += (b"\x85", b"\x86", b"\x87")[len(v) - 1]
            else:
                out += b"("
                for item in v:
                    self.value(item)
                out += b"t"
        elif isinstance(v, list):
            out += b"]("
            for item in v:
                self.value(item)
            out += b"e"
        elif isinstance(v, np.ndarray):
            self.tensor(v)
        elif isinstance(v, collections.OrderedDict):
            self.global_("collections", "OrderedDict")
            out += b")R("  # OrderedDict(), then MARK for SETITEMS
            for k, item in v.items():
                self.value(k)
                self.value(item)
            out += b"u"
            metadata = getattr(v, "_metadata", None)
            if metadata is not None:  # torch keeps module versions in this attribute
                out += b"}"
                self.value("_metadata")
                self.value(metadata)
                out += b"sb"  # SETITEM, BUILD
        elif isinstance(v, dict):
            out += b"}("
            for k, item in v.items():
                self.value(k)
                self.value(item)
            out += b"u"
        else:
            raise TypeError(f"cannot write {type(v)} into a torch state-dict pickle")

    def tensor(self, arr: np.ndarray):
        arr = np.asarray(arr, order="C")  # (not ascontiguousarray: it turns 0-d into 1-d)
        storage_name = _DTYPE_TO_STORAGE[arr.dtype]
        stride, acc = [], 1
        for n in reversed(arr.shape):
            stride.append(acc)
            acc *= n
        self.global_("torch._utils", "_rebuild_tensor_v2")
        self.out += b"("  # MARK for the argument tuple
        pid = self.persistent_id(arr)  # ('storage', <StorageType>, key, location, numel[, view])
        self.out += b"("
        self.value(pid[0])
        self.global_("torch", storage_name)
        for item in pid[2:]:
            self.value(item)
        self.out += b"tQ"  # TUPLE, BINPERSID
        self.value(0)  # storage offset
        self.value(tuple(arr.shape))
        self.value(tuple(reversed(stride)))
        self.value(False)  # requires_grad
        self.value(collections.OrderedDict())  # backward hooks
        self.out += b"tR"  # TUPLE, REDUCE

    def finish(self) -> bytes:
        return bytes(self.out + b".")


def save_torch_state_dict(state_dict: Mapping[str, np.ndarray], path: str, *,
                          legacy: bool = False, archive_name: str = "archive",
                          metadata: Optional[Mapping] = None) -> None:
    """Writes numpy arrays as a `torch.save` state dict that torch and `load_torch_state_dict` read.

    Args:
      state_dict: name -> array (float32/64/16, int8-64, uint8, bool), or nested dicts, lists,
        tuples, numbers and strings of them (an optimizer's state dict).
      path: output file.
      legacy: write the pre-1.6 single-stream layout instead of the zip layout.
      archive_name: the folder inside the zip (torch uses the file stem or 'archive').
      metadata: optional `_metadata` attribute of the OrderedDict (module versions).
    """
    arrays: List[Tuple[str, np.ndarray]] = []

    def persistent_id(arr):
        key = str(len(arrays))
        arrays.append((key, arr))
        pid = ("storage", None, key, "cpu", int(arr.size))
        return pid + (None,) if legacy else pid

    od = collections.OrderedDict((k, v if isinstance(v, (dict, list, tuple)) else np.asarray(v))
                                 for k, v in state_dict.items())
    if metadata is not None:
        od._metadata = collections.OrderedDict(metadata)
    writer = _PickleWriter(persistent_id)
    writer.value(od)
    body = writer.finish()

    if legacy:
        def plain(v):
            w = _PickleWriter(refuse_persistent_id)
            w.value(v)
            return w.finish()

        sys_info = {"protocol_version": LEGACY_PROTOCOL_VERSION, "little_endian": True,
                    "type_sizes": {"short": 2, "int": 4, "long": 4}}
        with open(path, "wb") as f:
            f.write(plain(LEGACY_MAGIC_NUMBER))
            f.write(plain(LEGACY_PROTOCOL_VERSION))
            f.write(plain(sys_info))
            f.write(body)
            f.write(plain([key for key, _ in arrays]))
            for _, arr in arrays:
                f.write(struct.pack("<q", arr.size))
                f.write(np.asarray(arr, order="C").astype(arr.dtype.newbyteorder("<")).tobytes())
        return

    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr(f"{archive_name}/data.pkl", body)
        zf.writestr(f"{archive_name}/byteorder", "little")
        for key, arr in arrays:
            zf.writestr(f"{archive_name}/data/{key}",
                        np.asarray(arr, order="C").astype(arr.dtype.newbyteorder("<")).tobytes())
        zf.writestr(f"{archive_name}/version", "3\n")

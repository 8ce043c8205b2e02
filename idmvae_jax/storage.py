"""One path abstraction for everything a run reads and writes: local paths and bucket URLs.

`path("runs/a")` is the absolute local path; `path("gs://bucket/run")` a bucket path. Both are
`etils.epath.Path`s, so callers use one API (`/`, `open`, `exists`, `mkdir`, `iterdir`, ...).
Bucket paths go through fsspec (`gcsfs` for gs://, `s3fs` for s3://: `pip install
idmvae_jax[gcs]`); Orbax and tensorstore, which write the checkpoints, talk to gs:// themselves.

Object stores cannot append and have no rename, so writers here rewrite whole files:
`write_text`/`write_bytes` are atomic on both (a local temporary file renamed into place; one
object upload, which readers see whole or not at all).

`check_writable(path)` is the early check a run makes before it touches anything: it creates the
directory and writes and deletes one probe file, with a time limit, so an unreachable bucket or
missing credentials fail in seconds with one message that names the path and the fix.
"""
from __future__ import annotations

import os
import threading
import uuid
from typing import Union

from etils import epath

from idmvae_jax.errors import UserError

PathLike = Union[str, os.PathLike]

# URL schemes and the fsspec implementation each needs.
_FILESYSTEMS = {"gs": "gcsfs", "s3": "s3fs"}
URL_SCHEMES = tuple(_FILESYSTEMS)

_CREDENTIALS_HINT = {
    "gs": "check the bucket name, the network, and credentials (`gcloud auth application-default "
          "login`, or GOOGLE_APPLICATION_CREDENTIALS=key.json)",
    "s3": "check the bucket name, the network, and credentials (AWS_ACCESS_KEY_ID / "
          "AWS_SECRET_ACCESS_KEY or ~/.aws/credentials)",
}


class StorageError(UserError):
    """A workdir or data path that cannot be used; the message names the path and the fix."""


def scheme(p: PathLike) -> str:
    """'gs', 's3', ... for a URL; '' for a local path."""
    text = os.fspath(p)
    return text.split("://", 1)[0] if "://" in text else ""


def is_url(p: PathLike) -> bool:
    return bool(scheme(p))


def path(p: PathLike) -> epath.Path:
    """`p` as an epath.Path: a URL as it is, a local path made absolute (with ~ expanded).

    Raises StorageError for a URL scheme this package cannot write to, or whose filesystem
    package is not installed (naming the package to install).
    """
    text = os.fspath(p)
    kind = scheme(text)
    if not kind:
        return epath.Path(os.path.abspath(os.path.expanduser(text)))
    if kind not in _FILESYSTEMS:
        raise StorageError(f"{text}: unsupported URL scheme {kind}://; use a local path, gs:// or s3://")
    package = _FILESYSTEMS[kind]
    try:
        __import__(package)
    except ImportError:
        raise StorageError(f"{text}: {kind}:// paths need the `{package}` package: "
                           f"pip install {package}  (or pip install -e '.[gcs]')") from None
    return epath.Path(text)


def write_bytes(p: PathLike, data: bytes) -> epath.Path:
    """Writes `data` to `p` atomically (see the module docstring); creates the parent directory."""
    target = path(p)
    if is_url(target):
        target.write_bytes(data)  # one object upload: atomic for readers
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.{uuid.uuid4().hex[:8]}.tmp"
    tmp.write_bytes(data)
    os.replace(tmp, target)
    return target


def write_text(p: PathLike, text: str) -> epath.Path:
    """Writes `text` (UTF-8) to `p` atomically; creates the parent directory."""
    return write_bytes(p, text.encode("utf-8"))


def remove(p: PathLike) -> None:
    """Deletes the file `p` if it exists."""
    target = path(p)
    try:
        target.unlink()
    except FileNotFoundError:
        pass


def check_writable(p: PathLike, what: str = "workdir", timeout_s: float | None = None) -> epath.Path:
    """Creates directory `p` and writes and deletes a probe file in it, within `timeout_s`
    (default: $IDMVAE_STORAGE_TIMEOUT_S, else 30 s).

    Returns `path(p)`. Raises StorageError naming `p`, what went wrong and the fix: a local
    directory that cannot be created or written, a bucket that does not answer in time (network,
    emulator or endpoint down), or that refuses the write (missing bucket, credentials).
    """
    directory = path(p)
    kind = scheme(directory)
    outcome: dict = {}
    if timeout_s is None:
        timeout_s = float(os.environ.get("IDMVAE_STORAGE_TIMEOUT_S", "") or 30.0)

    def probe() -> None:
        try:
            directory.mkdir(parents=True, exist_ok=True)
            probe_file = directory / f".write_probe_{uuid.uuid4().hex[:8]}"
            probe_file.write_bytes(b"")
            probe_file.unlink()
        except BaseException as error:  # noqa: BLE001 - reported below
            outcome["error"] = error

    if not kind:
        probe()
        if "error" in outcome:
            error = outcome["error"]
            raise StorageError(f"{what} {directory} cannot be written ({type(error).__name__}: "
                               f"{_short(error)}); choose a writable directory") from None
        return directory
    thread = threading.Thread(target=probe, name="storage-probe", daemon=True)
    thread.start()
    thread.join(timeout_s)
    hint = _CREDENTIALS_HINT.get(kind, "check the URL, the network and credentials")
    if thread.is_alive():
        raise StorageError(f"{what} {directory}: no answer from the bucket within {timeout_s:.0f} s; "
                           f"{hint}")
    if "error" in outcome:
        error = outcome["error"]
        raise StorageError(f"{what} {directory} cannot be written ({type(error).__name__}: "
                           f"{_short(error)}); {hint}") from None
    return directory


def _short(error: BaseException, limit: int = 200) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= limit else text[:limit] + "..."

"""Source files: locating them, fingerprinting them for the cache key, and guarded downloads."""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.request
from typing import Iterable, Sequence

from idmvae_jax.errors import UserError

# Above this total size, files are fingerprinted by (name, size, mtime) instead of their bytes.
_CONTENT_HASH_LIMIT = 512 * 1024 * 1024
_DOWNLOAD_TIMEOUT_S = 20


class MissingSourceError(UserError, FileNotFoundError):
    """A file the dataset needs is absent; the message names the path and how to obtain it."""


def require_file(path: str, how_to_obtain: str) -> str:
    """Returns `path` if it is a file, else raises MissingSourceError naming it and the fix."""
    if not os.path.isfile(path):
        raise MissingSourceError(f"expected file {path} does not exist. {how_to_obtain}")
    return path


def first_existing(candidates: Sequence[str]) -> str | None:
    """The first of `candidates` that exists (file or directory), else None."""
    for path in candidates:
        if os.path.exists(path):
            return path
    return None


def fingerprint(paths: Iterable[str]) -> str:
    """SHA-256 hex digest over the given files (and files under given directories).

    Small sources are hashed by content; sources larger than 512 MiB in total (e.g. the CUB image
    tree) by relative name, size and modification time, which still changes when a file is
    replaced but costs no full read.
    """
    files = []
    for path in paths:
        if os.path.isdir(path):
            for root, _, names in os.walk(path):
                files.extend(os.path.join(root, n) for n in names)
        else:
            files.append(path)
    files = sorted(set(files))
    total = sum(os.path.getsize(f) for f in files)
    digest = hashlib.sha256()
    for f in files:
        digest.update(os.path.basename(f).encode() + b"\0")
        if total <= _CONTENT_HASH_LIMIT:
            with open(f, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
        else:
            stat = os.stat(f)
            digest.update(f"{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()


def download(url: str, destination: str, *, allowed: bool, manual_hint: str) -> str:
    """Downloads `url` to `destination` once (no retries), failing fast with a clear message.

    Args:
      url: the source address.
      destination: file to write; returned immediately when it already exists.
      allowed: `data.allow_download`; when False nothing is fetched and the error says what to
        place where.
      manual_hint: how to obtain the file by hand (printed in every error).
    """
    if os.path.isfile(destination):
        return destination
    if not allowed:
        raise MissingSourceError(
            f"{destination} is missing and downloads are disabled (data.allow_download=False). "
            f"{manual_hint}")
    os.makedirs(os.path.dirname(destination), exist_ok=True)
    partial = tempfile.NamedTemporaryFile(dir=os.path.dirname(destination), delete=False)
    try:
        with partial, urllib.request.urlopen(url, timeout=_DOWNLOAD_TIMEOUT_S) as response:
            shutil.copyfileobj(response, partial)
        os.replace(partial.name, destination)
    except Exception as error:  # noqa: BLE001 - any network failure gets the same actionable message
        os.unlink(partial.name)
        raise MissingSourceError(
            f"could not download {url} to {destination} ({type(error).__name__}: {error}). "
            f"{manual_hint}") from error
    return destination

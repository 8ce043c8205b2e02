"""One run per workdir: WORKDIR/lock.json names the run that holds it.

Two runs on one workdir would interleave their checkpoints and metrics. Process 0 of a run takes
the lock before it restores or writes anything (the other processes of a multi-process job share
it) and releases it when the run ends, however it ends short of kill -9:

  {"host": ..., "pid": ..., "run_id": ..., "started": unix time, "heartbeat": unix time}

A lock is live when its process is alive (same host: `os.kill(pid, 0)`) or, from another host,
when its heartbeat (refreshed at every log step) is newer than `stale_after_s`. A second run on a
live lock stops with a message naming the holder's host and PID; a stale lock (a killed run) is
taken over with a warning. On a local disk the lock is created atomically (O_EXCL); in a bucket it
is written and read back (two runs starting in the same second can both miss each other there).
"""
from __future__ import annotations

import json
import os
import socket
import time
import uuid
from typing import Optional

from absl import logging

from idmvae_jax import storage
from idmvae_jax.errors import UserError

LOCK_FILE = "lock.json"
STALE_AFTER_S = 900.0  # a lock from another host whose heartbeat is older than this is stale


class WorkdirLockedError(UserError):
    """Another live run holds the workdir."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def holder_is_live(record: dict, now: Optional[float] = None, stale_after_s: float = STALE_AFTER_S) -> bool:
    """Whether the run that wrote `record` still runs (see the module docstring)."""
    if record.get("host") == socket.gethostname():
        return _alive(int(record.get("pid", -1)))
    now = time.time() if now is None else now
    return now - float(record.get("heartbeat", 0.0)) < stale_after_s


class WorkdirLock:
    """The lock of one run; `acquire` takes it, `heartbeat` refreshes it, `release` drops it.
    Inactive (`active=False`, the processes other than 0) it does nothing."""

    def __init__(self, workdir, active: bool = True, stale_after_s: float = STALE_AFTER_S):
        self.path = storage.path(workdir) / LOCK_FILE
        self.active = active
        self.stale_after_s = stale_after_s
        self.record = {"host": socket.gethostname(), "pid": os.getpid(), "run_id": uuid.uuid4().hex,
                       "started": time.time(), "heartbeat": time.time()}
        self._held = False

    def acquire(self) -> "WorkdirLock":
        if not self.active:
            return self
        existing = self._read()
        if existing is not None:
            if holder_is_live(existing, stale_after_s=self.stale_after_s):
                raise WorkdirLockedError(
                    f"{self.path.parent} is in use by another run (host {existing.get('host')}, "
                    f"PID {existing.get('pid')}, started {time.ctime(existing.get('started', 0))}). Wait "
                    f"for it to end or stop it, or use another --workdir. If that run is dead, delete "
                    f"{self.path}")
            logging.warning("taking over the stale lock %s of host %s, PID %s (that run ended "
                            "without releasing it)", self.path, existing.get("host"), existing.get("pid"))
            storage.remove(self.path)
        self._write(exclusive=True)
        if (self._read() or {}).get("run_id") != self.record["run_id"]:  # lost a race in a bucket
            raise WorkdirLockedError(f"{self.path.parent} was taken by another run starting at the "
                                     "same time; use another --workdir")
        self._held = True
        return self

    def heartbeat(self) -> None:
        if self._held:
            self.record["heartbeat"] = time.time()
            self._write(exclusive=False)

    def release(self) -> None:
        if self._held and (self._read() or {}).get("run_id") == self.record["run_id"]:
            storage.remove(self.path)
        self._held = False

    def __enter__(self) -> "WorkdirLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

    def _read(self) -> Optional[dict]:
        try:
            return json.loads(self.path.read_text())
        except (FileNotFoundError, ValueError):
            return None

    def _write(self, exclusive: bool) -> None:
        text = json.dumps(self.record)
        if exclusive and not storage.is_url(self.path):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                raise WorkdirLockedError(f"{self.path.parent} was taken by another run starting at "
                                         "the same time; use another --workdir") from None
            with os.fdopen(fd, "w") as handle:
                handle.write(text)
            return
        storage.write_text(self.path, text)

"""A Google Cloud Storage emulator on localhost, for tests of bucket workdirs without network.

`start()` runs the `gcp-storage-emulator` package's server in a subprocess (its request log goes
to a file) with one bucket, and returns the environment variables that point every GCS client
of a run at it:
  STORAGE_EMULATOR_HOST              gcsfs (etils.epath) and google-cloud-storage (tensorboardX)
  TENSORSTORE_GCS_HTTP_URL           tensorstore (Orbax's arrays)
  CLOUD_STORAGE_EMULATOR_ENDPOINT    array_record (reading ArrayRecord files from gs://)
  GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT  'false': gcsfs's bucket-type probe speaks gRPC, which the
                                     emulator does not (real GCS answers it)

Two gaps of the emulator are filled by the server this module runs (`python gcs_emulator.py PORT
BUCKET`), where real GCS behaves as the clients expect:
- it does not send the `x-goog-generation` header with an object's bytes, which tensorstore's
  OCDBT (Orbax's checkpoint format) needs for its conditional writes;
- it ignores suffix ranges (`Range: bytes=-N`, the last N bytes), with which array_record reads
  the footer of an ArrayRecord file, and sends the whole object instead.
"""
from __future__ import annotations

import dataclasses
import os
import re
import socket
import subprocess
import sys
import time

BUCKET = "idmvae-test"


@dataclasses.dataclass
class Emulator:
    url: str
    bucket: str
    env: dict
    process: subprocess.Popen

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def emulator_env(url: str) -> dict:
    return {"STORAGE_EMULATOR_HOST": url, "TENSORSTORE_GCS_HTTP_URL": url,
            "CLOUD_STORAGE_EMULATOR_ENDPOINT": url, "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(log_path: str, bucket: str = BUCKET, timeout_s: float = 30.0) -> Emulator:
    port = free_port()
    log = open(log_path, "w")
    process = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), str(port), bucket], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"the GCS emulator did not start; see {log_path}")
            time.sleep(0.1)
    url = f"http://127.0.0.1:{port}"
    return Emulator(url=url, bucket=bucket, env=emulator_env(url), process=process)


def serve(port: int, bucket: str) -> None:
    """Runs the emulator in this process, with downloads that carry the object's generation."""
    from gcp_storage_emulator.handlers import objects

    download = objects.download

    def download_with_generation(request, response, storage, *args, **kwargs):
        headers = request._request_handler.headers
        suffix = re.fullmatch(r"\s*bytes=-(\d+)\s*", headers.get("range") or "")
        if suffix:  # the last N bytes, as the first-to-last range the emulator understands
            try:
                size = len(storage.get_file(request.params["bucket_name"], request.params["object_id"]))
            except Exception:  # noqa: BLE001 - not found: download says so
                size = 0
            del headers["range"]
            headers["range"] = f"bytes={max(0, size - int(suffix.group(1)))}-"
        download(request, response, storage, *args, **kwargs)
        try:
            obj = storage.get_file_obj(request.params["bucket_name"], request.params["object_id"])
        except Exception:  # noqa: BLE001 - not found: the response already says so
            return
        response["x-goog-generation"] = str(obj["generation"])
        response["x-goog-metageneration"] = str(obj.get("metageneration", 1))

    objects.download = download_with_generation  # before the server module builds its routes
    from gcp_storage_emulator.server import create_server

    server = create_server("127.0.0.1", port, in_memory=True, default_bucket=bucket)
    server.run()


if __name__ == "__main__":
    serve(int(sys.argv[1]), sys.argv[2])

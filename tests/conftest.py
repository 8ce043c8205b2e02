"""Test-session set-up: 8 fake CPU devices, a persistent compilation cache, no network, data caches
in the temporary folder."""
import contextlib
import os
import socket

# Must happen before jax is imported anywhere in the session.
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import pytest  # noqa: E402

_CACHE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".jax_cache")
jax.config.update("jax_compilation_cache_dir", _CACHE)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


class _NoNetwork(socket.socket):
    """Fails fast on any connection that is not to this machine."""

    def connect(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, str) and not (
            host.startswith("127.") or host in ("localhost", "::1") or host.startswith("/")
        ):
            raise OSError(f"tests must not reach the network (tried {address!r})")
        return super().connect(address)


@pytest.fixture(autouse=True, scope="session")
def _block_network():
    original = socket.socket
    socket.socket = _NoNetwork
    yield
    socket.socket = original


@pytest.fixture(autouse=True, scope="session")
def _data_cache_outside_home(tmp_path_factory):
    """Datasets and classifiers that a test prepares without naming a folder go to the folder the
    tests share (the `data_dir` fixtures), never into the user's ~/.cache/idmvae_jax."""
    previous = os.environ.get("IDMVAE_DATA_DIR")
    os.environ["IDMVAE_DATA_DIR"] = str(tmp_path_factory.getbasetemp().parent / "idmvae_data")
    yield
    if previous is None:
        os.environ.pop("IDMVAE_DATA_DIR", None)
    else:
        os.environ["IDMVAE_DATA_DIR"] = previous


@contextlib.contextmanager
def disabled_optimizations():
    """Most XLA optimisations off: for tiny models, whose compile time dominates. Code that then
    runs many steps (classifier trainings, generation loops) runs slower: use it where compiling
    is the cost."""
    previous = jax.config.read("jax_disable_most_optimizations")
    jax.config.update("jax_disable_most_optimizations", True)
    try:
        yield
    finally:
        jax.config.update("jax_disable_most_optimizations", previous)


@pytest.fixture
def fast_compile():
    """`disabled_optimizations` for one test."""
    with disabled_optimizations():
        yield


@pytest.fixture(scope="module")
def fast_compile_module():
    """`disabled_optimizations` for a whole test module. Use with
    `pytestmark = pytest.mark.usefixtures("fast_compile_module")`."""
    with disabled_optimizations():
        yield


@pytest.fixture(scope="session")
def gcs_emulator(tmp_path_factory):
    """A GCS emulator on localhost (tests/gcs_emulator.py) with the environment of this process
    (and of the subprocesses it starts) pointing at it; yields the Emulator (`.bucket`)."""
    import gcs_emulator

    emulator = gcs_emulator.start(str(tmp_path_factory.getbasetemp() / "gcs_emulator.log"))
    previous = {k: os.environ.get(k) for k in emulator.env}
    os.environ.update(emulator.env)
    yield emulator
    for key, value in previous.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    emulator.stop()

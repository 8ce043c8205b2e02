"""Data parallelism: the ('data',) mesh, shardings, and the jit / pmap forms of the train step.

Both modes run the same `train_step` and give the same numbers (SPEC 5b):

- `jit` (default): `jax.jit` with NamedSharding on a 1-D mesh with axis 'data' of AxisType.Auto
  (Explicit axes make InfoNCE's `za @ zb.T` on batch-sharded operands a ShardingTypeError); state
  replicated P(), batch sharded P('data') over its leading axis, the state donated. Two
  partitioners (`parallel.partitioner`):
  - 'shard_map' (default): the step body is `jax.shard_map`-ped over 'data' with in_specs
    (P(), P('data')) and out_specs P(): each device runs the per-device step with `axis_name`
    (the loss all-gathers what spans the global batch, gradients and metrics are pmean-ed), the
    same program pmap runs, with global arrays in and out.
  - 'auto': the step sees global arrays and XLA's SPMD partitioner inserts the collectives
    (InfoNCE negatives, the cycle term's roll_B). It resharded the roll's and InfoNCE's
    gradients with chains of collective-permutes and ran 1.19x slower than pmap on `mini` with 8
    fake CPU devices (docs/benchmarks.md).
- `pmap`: `jax.pmap` over the same devices with axis 'data'; the loss gets `axis_name` and
  all-gathers the posterior means itself; gradients and metrics are pmean-ed. The state lives as
  per-device copies (leading local-device axis) between calls. Kept as a thin, tested
  alternative (pmap is in maintenance mode).

`steps_per_dispatch` > 1 runs that many steps per call through `lax.scan` (batches stacked on a
leading axis), which saves per-step dispatch overhead for small models.

The canonical state (what checkpoints hold and `get_state` returns) is a pytree of global arrays
replicated over the mesh in both modes.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Optional

import jax
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from idmvae_jax.errors import ConfigError
from idmvae_jax.training import step as train_step_lib

AXIS = "data"
MODES = ("jit", "pmap")
PARTITIONERS = ("shard_map", "auto")


def make_mesh(num_devices: int = 0, devices=None) -> jax.sharding.Mesh:
    """A 1-D mesh ('data',) of Auto axis type over `devices` (default: the first `num_devices`
    of jax.devices(), all when 0). Spans every process's devices in a multi-process run."""
    if devices is None:
        devices = jax.devices()
        if num_devices:
            if num_devices > len(devices):
                raise ValueError(f"parallel.num_devices={num_devices} but only {len(devices)} devices exist")
            devices = devices[:num_devices]
    devices = list(devices)
    return jax.make_mesh((len(devices),), (AXIS,), axis_types=(jax.sharding.AxisType.Auto,), devices=devices)


def replicated(mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def batch_sharding(mesh, stacked: bool = False) -> NamedSharding:
    """Sharding of batch arrays: leading axis over 'data' (after the steps axis when stacked)."""
    return NamedSharding(mesh, P(None, AXIS) if stacked else P(AXIS))


def to_host(x) -> np.ndarray:
    """A replicated (jit) or per-device-identical (pmap) array as numpy, without cross-host I/O."""
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        x = x.addressable_shards[0].data
    return np.asarray(x)


def host_replicated(tree, mesh) -> Any:
    """Numpy pytree (the same on every process) -> global arrays replicated over `mesh`."""
    sharding = replicated(mesh)
    return jax.tree.map(lambda a: jax.make_array_from_process_local_data(sharding, np.asarray(a)), tree)


@dataclasses.dataclass(frozen=True)
class ParallelStep:
    """A compiled train step and the conversions around it (no state of its own).

    step(device_state, device_batch) -> (device_state, metrics); the device state is donated.
    put_state(canonical) -> device form; get_state(device form) -> canonical (replicated).
    put_batch(process-local numpy batch, or a list of steps_per_dispatch of them) -> device form.
    fetch(metrics) -> {name: float} (a host sync; only on log steps).
    """

    mode: str
    mesh: Any
    steps_per_dispatch: int
    step: Callable
    put_state: Callable
    get_state: Callable
    put_batch: Callable
    fetch: Callable

    def lower(self, device_state, device_batch):
        """AOT lowering of the step (for compile timing, cost and memory analysis)."""
        return self.step.lower(device_state, device_batch)


def make_parallel_step(
    cfg,
    optimizer,
    mesh,
    mode: str = "jit",
    steps_per_dispatch: int = 1,
    loss_fn: Optional[Callable] = None,
    partitioner: str = "shard_map",
) -> ParallelStep:
    """The train step of `cfg`/`optimizer` compiled for `mode` ('jit' | 'pmap') on `mesh`;
    `partitioner` ('shard_map' | 'auto') picks how jit splits the step over the devices."""
    if mode not in MODES:
        raise ValueError(f"parallel.mode={mode!r}; choose one of {MODES}")
    if partitioner not in PARTITIONERS:
        raise ValueError(f"parallel.partitioner={partitioner!r}; choose one of {PARTITIONERS}")
    if steps_per_dispatch < 1:
        raise ValueError(f"train.steps_per_dispatch must be >= 1, got {steps_per_dispatch}")
    k = steps_per_dispatch
    stacked = k > 1

    def wrap(step_fn):
        if not stacked:
            return lambda state, batch: step_fn(state, batch)
        return train_step_lib.make_multi_step(step_fn, k)

    def stack(batch):
        if not stacked:
            return batch
        if len(batch) != k:
            raise ValueError(f"expected a list of {k} batches (steps_per_dispatch), got {len(batch)}")
        return jax.tree.map(lambda *xs: np.stack(xs), *batch)

    if mode == "jit":
        repl, data = replicated(mesh), batch_sharding(mesh, stacked)
        if partitioner == "auto":
            fn = wrap(train_step_lib.make_train_step(cfg, optimizer, loss_fn=loss_fn))
        else:
            per_device = wrap(train_step_lib.make_train_step(cfg, optimizer, axis_name=AXIS, loss_fn=loss_fn))
            # check_vma=False keeps pmap's semantics: the gradient of the replicated parameters is
            # the local one until train_step pmean-s it (with vma checking, JAX would psum it
            # itself and the pmean would leave the sum: 8x the gradient on 8 devices).
            fn = jax.shard_map(per_device, mesh=mesh, in_specs=(P(), data.spec), out_specs=(P(), P()),
                               check_vma=False)
        jitted = jax.jit(fn, in_shardings=(repl, data), out_shardings=(repl, repl), donate_argnums=0)

        def put_batch(batch):
            return jax.tree.map(lambda a: jax.make_array_from_process_local_data(data, np.asarray(a)), stack(batch))

        return ParallelStep(
            mode, mesh, k, jitted,
            put_state=lambda s: jax.device_put(s, repl),
            get_state=lambda s: s,
            put_batch=put_batch,
            fetch=lambda m: {name: float(to_host(v)) for name, v in m.items()},
        )

    devices = list(mesh.devices.flat)
    local = [d for d in devices if d.process_index == jax.process_index()]
    n_local = len(local)
    pmap_devices = None if devices == list(jax.devices()) else devices
    fn = wrap(train_step_lib.make_train_step(cfg, optimizer, axis_name=AXIS, loss_fn=loss_fn))
    pmapped = jax.pmap(fn, axis_name=AXIS, donate_argnums=0, devices=pmap_devices)
    replicate = jax.pmap(lambda s: s, axis_name=AXIS, devices=pmap_devices)

    def put_state(canonical):
        host = jax.tree.map(to_host, canonical)
        return replicate(jax.tree.map(lambda a: np.broadcast_to(a, (n_local, *a.shape)), host))

    def get_state(device_state):
        return host_replicated(jax.tree.map(to_host_first, device_state), mesh)

    def put_batch(batch):
        batch = stack(batch)

        def split(a):
            a = np.asarray(a)
            axis = 1 if stacked else 0
            b = a.shape[axis]
            if b % n_local:
                raise ValueError(f"local batch {b} is not divisible by the {n_local} local devices")
            shape = (*a.shape[:axis], n_local, b // n_local, *a.shape[axis + 1:])
            a = a.reshape(shape)
            return np.moveaxis(a, axis, 0) if stacked else a

        return jax.tree.map(split, batch)

    return ParallelStep(
        mode, mesh, k, pmapped, put_state=put_state, get_state=get_state, put_batch=put_batch,
        fetch=lambda m: {name: float(to_host_first(v)) for name, v in m.items()},
    )


def to_host_first(x) -> np.ndarray:
    """The first local device's copy of a pmap output (leading device axis) as numpy."""
    return np.asarray(x.addressable_shards[0].data).reshape(x.shape[1:])


def check_batch_size(batch_size: int, mesh) -> None:
    """The global batch must split evenly over processes and devices."""
    n, p = mesh.devices.size, jax.process_count()
    if batch_size % n or batch_size % p:
        raise ConfigError(f"train.batch_size={batch_size} must be divisible by the {n} devices "
                          f"and {p} processes: use a multiple of {math.lcm(n, p)}")


def init_state_on_mesh(init_fn: Callable, mesh):
    """Runs `init_fn()` (no arguments) jitted straight into replicated shardings on `mesh`;
    returns (state, abstract state with shardings: the Orbax restore target)."""
    repl = replicated(mesh)
    abstract = jax.eval_shape(init_fn)
    abstract = jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=repl), abstract)
    state = jax.jit(init_fn, out_shardings=repl)()
    return state, abstract


def abstract_state(init_fn: Callable, mesh):
    """The abstract (shape, dtype, sharding) tree of `init_fn()` without running it."""
    repl = replicated(mesh)
    return jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=repl), jax.eval_shape(init_fn))


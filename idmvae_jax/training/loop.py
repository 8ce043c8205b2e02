"""The training loop: data -> compiled step -> logs, checkpoints and sample grids.

`train_and_evaluate(config, workdir)` trains the model of `config` to `config.train.num_steps`
total steps, resuming from the latest checkpoint in WORKDIR/checkpoints when there is one (the
data iterator continues where it stopped; metrics.jsonl keeps its rows up to the restored step).
WORKDIR is a local path or a bucket URL (`storage`). Nothing returns to the host
between log steps: metrics and the device-side non-finite flag are read every `log_every` steps
and before each checkpoint, so a checkpoint never holds a state after a non-finite step.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import time
from typing import Any, Callable, Optional

import jax
import numpy as np
from absl import logging

from idmvae_jax import build
from idmvae_jax import objective
from idmvae_jax.errors import ConfigError
from idmvae_jax import storage
from idmvae_jax.training import checkpointing
from idmvae_jax.training import config_check
from idmvae_jax.training import host_memory
from idmvae_jax.training import parallel
from idmvae_jax.training import preemption
from idmvae_jax.training import step as train_step_lib
from idmvae_jax.training import workdir_lock
from idmvae_jax.training import writers
from idmvae_jax.training import xla_cost


class NonFiniteLossError(FloatingPointError):
    """Training stopped: a loss term or the gradient norm was NaN/inf at `step`."""

    def __init__(self, step: int, terms: list, last_checkpoint: Optional[int], workdir):
        self.step, self.terms, self.last_checkpoint = step, terms, last_checkpoint
        where = (f"the last good checkpoint is step {last_checkpoint} in {checkpointing.checkpoint_dir(workdir)}"
                 if last_checkpoint is not None else "no checkpoint was written")
        super().__init__(f"non-finite loss at step {step}: term(s) {', '.join(terms) or '?'} "
                         f"are NaN/inf; training stopped, {where}")


def resolve_num_steps(config, info) -> int:
    """train.num_steps, or train.num_epochs x the train split / batch_size when num_steps <= 0."""
    tc = config.train
    if tc.num_steps > 0:
        return int(tc.num_steps)
    if tc.get("num_epochs", 0) <= 0:
        raise ConfigError("set train.num_steps > 0 or train.num_epochs > 0")
    return int(math.ceil(tc.num_epochs * info.splits["train"] / tc.batch_size))


def _check_intervals(config, k: int) -> None:
    tc = config.train
    for name in ("log_every", "checkpoint_every", "sample_every"):
        value = tc[name]
        if value < 0 or (value and value % k):
            raise ConfigError(f"train.{name}={value} must be a non-negative multiple of "
                             f"train.steps_per_dispatch={k}")
    if tc.log_every == 0:
        raise ConfigError("train.log_every must be > 0")


def _check_bad(device_state, pstep: parallel.ParallelStep, ckpt, workdir, last_saved) -> None:
    """Raises NonFiniteLossError when the device-side guard has fired (one small host sync)."""
    to_host = parallel.to_host_first if pstep.mode == "pmap" else parallel.to_host
    bad_step = int(to_host(device_state.bad_step))
    if bad_step >= 0:
        terms = train_step_lib.decode_bad_terms(int(to_host(device_state.bad_terms)))
        raise NonFiniteLossError(bad_step, terms, last_saved, workdir)


# ------------------------------------------------------------------------------------ samples
class SampleWriter:
    """Labelled PNG grids (`data.figures`) of reconstructions, cross-generations and unconditional
    samples of the drawable image views, each also written to TensorBoard as `samples/<name>`.

    WORKDIR/samples/step_XXXXXXXX_<name>.png, from the first train.num_sample_examples test tuples:
      reconstructions    rows = views; blocks "input", "reconstruction" (from the posterior means)
      cross_generations  rows = source views; blocks "input", "to view d" (z ~ q(z | x_e), w_d from
                         the prior); at most CROSS_EXAMPLES per block, so M + 1 blocks stay readable
      unconditional      rows = views; columns = joint samples (a column shares one z)
    """

    CROSS_EXAMPLES = 4

    def __init__(self, config, cfg, info, workdir, writer: writers.MetricWriter):
        from idmvae_jax import data as data_lib
        from idmvae_jax.data import figures

        self.cfg, self.workdir, self.writer = cfg, workdir, writer
        self.num = int(config.train.num_sample_examples)
        self.prior = config.train.get("sample_prior", "gaussian")
        self.image_views = [m for m, v in enumerate(info.views) if figures.is_drawable(v.kind, v.shape)]
        self.key = jax.random.fold_in(jax.random.key(config.seed), 2)
        self.xs = None
        if self.image_views:
            batch = data_lib.load_split(config.data, "test", max_examples=self.num)
            self.xs = [np.asarray(x) for x in batch["x"]]
            self.num = self.xs[0].shape[0]

    def __call__(self, step: int, params) -> list[str]:
        if not self.image_views:
            return []
        from idmvae_jax import generation  # imported on first use: a run without samples never needs it
        from idmvae_jax.data import figures, images

        cfg, views, device = self.cfg, self.image_views, jax.local_devices()[0]
        params = jax.device_put(jax.tree.map(parallel.to_host, params), device)
        xs = [jax.device_put(x, device) for x in self.xs]
        key = jax.random.fold_in(self.key, step)
        k_cross, k_uncond = jax.random.split(key)
        recon = _jitted(generation.reconstruct, cfg)(params, xs)
        cross = _jitted(generation.cross_generate, cfg, prior=self.prior)(params, xs, k_cross)
        uncond = _jitted(generation.sample_unconditional, cfg, prior=self.prior, num=self.num)(params, k_uncond)
        recon = {m: np.asarray(recon[m]) for m in views}  # on the host, the drawn views only
        cross = {e: {d: np.asarray(cross[e][d]) for d in views} for e in views}
        uncond = {m: np.asarray(uncond[m]) for m in views}
        prior = f"{self.prior} prior"
        grids = {
            "reconstructions": figures.reconstruction_grid(
                self.xs, recon, views,
                title=f"step {step}: reconstructions from the posterior means"),
            "cross_generations": figures.cross_grid(
                self.xs, cross, views, self.CROSS_EXAMPLES,
                title=f"step {step}: cross-generations, z ~ q(z | x_e), w_d ~ {prior}"),
            "unconditional": figures.sample_grid(
                uncond, views,
                title=f"step {step}: unconditional samples ({prior}), a column shares one z"),
        }
        paths = []
        for name, grid in grids.items():
            paths.append(images.save_png(storage.path(self.workdir) / "samples" / f"step_{step:08d}_{name}.png", grid))
            self.writer.write_image(step, f"samples/{name}", figures.to_float(grid))
        return paths


@functools.lru_cache(maxsize=32)
def _jitted_cached(fn, cfg, kwargs_items):
    kwargs = dict(kwargs_items)
    num = kwargs.pop("num", None)
    if num is not None:
        return jax.jit(lambda params, key: fn(params, key, num, cfg, **kwargs))
    if fn.__name__ == "reconstruct":
        return jax.jit(lambda params, xs: fn(params, xs, cfg))
    return jax.jit(lambda params, xs, key: fn(params, xs, key, cfg, **kwargs))


def _jitted(fn, cfg, **kwargs):
    return _jitted_cached(fn, cfg, tuple(sorted(kwargs.items())))


# ------------------------------------------------------------------------------------ the loop
def train_and_evaluate(config, workdir: storage.PathLike, *, loss_fn=None,
                       before_training: Optional[Callable[[], None]] = None,
                       after_training: Optional[Callable[[float], float]] = None) -> Any:
    """Trains (or resumes) the run of `config` in `workdir`; returns the final canonical TrainState.

    loss_fn: optional replacement objective (tests inject faults with it); default `training.loss.loss_fn`.
    before_training: optional work run once the workdir is checked, locked and its config matched,
      before the train step compiles (even when the run has already finished), e.g. training the
      evaluation's classifiers.
    after_training: optional estimate of the seconds the command spends after training (an
      evaluation), given the measured seconds per training step; the console's ETA then covers
      both (`writers.Progress`).
    Raises NonFiniteLossError when a loss term becomes NaN/inf (checkpoints before it stay intact),
    preemption.Preempted after checkpointing when SIGTERM/SIGINT/SIGUSR1 asked the run to stop,
    workdir_lock.WorkdirLockedError when another live run holds the workdir.
    """
    workdir = storage.check_writable(workdir)
    is_main = jax.process_index() == 0
    with workdir_lock.WorkdirLock(workdir, active=is_main) as lock:
        return _train(config, workdir, lock, loss_fn, before_training, after_training)


def _train(config, workdir, lock: workdir_lock.WorkdirLock, loss_fn, before_training=None,
           after_training=None) -> Any:
    """train_and_evaluate once the workdir is checked and locked."""
    from idmvae_jax import data as data_lib

    is_main = jax.process_index() == 0
    tc = config.train
    k = int(tc.get("steps_per_dispatch", 1))
    _check_intervals(config, k)

    info = data_lib.get_dataset_info(config.data)
    cfg = build.build_idmvae_config(config, info)
    num_steps = resolve_num_steps(config, info)
    if num_steps % k:
        raise ConfigError(f"the number of steps {num_steps} must be a multiple of steps_per_dispatch={k}")
    mesh = parallel.make_mesh(config.parallel.num_devices)
    parallel.check_batch_size(tc.batch_size, mesh)
    optimizer = train_step_lib.make_optimizer(tc)
    init_fn = train_step_lib.make_init_fn(cfg, optimizer, config.seed)
    abstract = parallel.abstract_state(init_fn, mesh)

    ckpt = checkpointing.Checkpointer(workdir, keep=tc.keep_checkpoints, async_save=tc.async_checkpointing)
    iterator = data_lib.make_iterator(config.data, "train", tc.batch_size, seed=config.seed)
    writer = None
    try:
        latest = ckpt.latest_step()
        if latest is not None:
            config_check.check_resume(workdir, config)  # before anything is restored or rewritten
            state, data_state = ckpt.restore(abstract)
            if data_state:
                iterator.set_state(data_state)
            logging.info("resumed from checkpoint step %d in %s", latest, ckpt.directory)
        else:
            state = jax.jit(init_fn, out_shardings=parallel.replicated(mesh))()
        start = int(parallel.to_host(state.step))
        last_saved = latest
        if before_training is not None:
            before_training()
        writer = writers.MetricWriter(workdir, active=is_main, tensorboard=tc.get("tensorboard", True),
                                      start_step=start)
        if is_main:
            num_params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(abstract.params))
            writers.write_config(workdir, config, {"resolved_num_steps": num_steps, "num_params": num_params,
                                                   "num_devices": int(mesh.devices.size),
                                                   "num_processes": jax.process_count(),
                                                   "dataset_info": dataclasses.asdict(info)})
            logging.info("model: %d parameters; data %s (%s); %d devices, %d processes; steps %d -> %d",
                         num_params, info.name, {k_: v for k_, v in info.splits.items()},
                         mesh.devices.size, jax.process_count(), start, num_steps)
        if start >= num_steps:
            logging.info("nothing to do: step %d >= num_steps %d", start, num_steps)
            return state

        sampler = SampleWriter(config, cfg, info, workdir, writer) if (is_main and tc.sample_every) else None
        pstep = parallel.make_parallel_step(cfg, optimizer, mesh, config.parallel.mode, k, loss_fn=loss_fn,
                                            partitioner=config.parallel.partitioner)
        device_state = pstep.put_state(state)
        del state

        def next_batch():
            return next(iterator) if k == 1 else [next(iterator) for _ in range(k)]

        lc = cfg.loss
        weights = {"cross_mi": lc.cross_mi_weight, "genaug": lc.genaug_weight, "diffusion": lc.diffusion_weight}
        progress = writers.Progress(
            num_steps, start, active=is_main, hide=[name for name, w in weights.items() if not w],
            chance={"cross_mi": objective.cross_view_infonce_chance(cfg.model.num_views, tc.batch_size)})
        step_fn = pstep.step
        step = start
        t_log, s_log = None, start
        stop_watch = preemption.StopWatch()
        with stop_watch:  # SIGTERM / SIGUSR1: checkpoint at the next step boundary, then stop
            while step < num_steps:
                batch = pstep.put_batch(next_batch())
                if step == start:
                    t0 = time.perf_counter()
                    if pstep.mode == "jit":
                        compiled = pstep.lower(device_state, batch).compile()
                        step_fn = compiled
                        flops = xla_cost.cost_flops(compiled)
                        logging.info("compiled the train step in %.1f s%s", time.perf_counter() - t0,
                                     f" ({flops / k:.3g} FLOPs per step)" if flops else "")
                    device_state, metrics = step_fn(device_state, batch)
                    jax.block_until_ready(metrics)
                    host_memory.release_free_memory()  # what the compiler freed (0.8 GiB at paper size)
                    if is_main:
                        print(f"first step (with compilation) took {time.perf_counter() - t0:.1f} s", flush=True)
                    t_log, s_log = time.perf_counter(), step + k
                    progress.start(step + k)
                else:
                    device_state, metrics = step_fn(device_state, batch)
                step += k

                if step % tc.log_every == 0 or step == num_steps:
                    scalars = pstep.fetch(metrics)  # host sync
                    _check_bad(device_state, pstep, ckpt, workdir, last_saved)
                    now = time.perf_counter()
                    if step > s_log:
                        rate = (step - s_log) / (now - t_log)
                        scalars.update(steps_per_sec=rate, examples_per_sec=rate * tc.batch_size)
                        t_log, s_log = now, step
                    writer.write_scalars(step, scalars)
                    lock.heartbeat()
                    if after_training is not None and scalars.get("steps_per_sec"):
                        progress.extra_seconds = after_training(1.0 / scalars["steps_per_sec"])
                    progress.report(step, scalars, scalars.get("steps_per_sec"))  # metrics.jsonl's rate
                t_aside = time.perf_counter()  # checkpoint/sample time is not counted in steps_per_sec
                stop = stop_watch.should_stop((step - start) // k)  # the same count on every process
                if (tc.checkpoint_every and step % tc.checkpoint_every == 0) or step == num_steps or stop:
                    _check_bad(device_state, pstep, ckpt, workdir, last_saved)
                    ckpt.save(step, pstep.get_state(device_state), iterator.get_state())
                    last_saved = step
                if stop and step < num_steps:
                    ckpt.wait()
                    writer.flush()
                    raise preemption.Preempted(step, workdir, stop_watch.signame)
                if sampler is not None and (step % tc.sample_every == 0 or step == num_steps):
                    sampler(step, pstep.get_state(device_state).params)
                if t_log is not None:
                    t_log += time.perf_counter() - t_aside
        ckpt.wait()
        writer.flush()
        return pstep.get_state(device_state)
    finally:
        ckpt.close()
        if writer is not None:
            writer.close()
        iterator.close()


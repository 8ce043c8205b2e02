"""The benchmark's library (the CLI is `idmvae_jax/benchmark.py`), a module per concept:

  run          `run_benchmark(config, ...)`: the step built, compiled, timed and measured; the JSON dict
  inputs       the data views of a config from the config alone; random batches of them
  timing       calls bracketed by block_until_ready; median / min / max
  flops        the step's FLOPs (cost analysis: `training.xla_cost.cost_flops`), measured peak, MFU
  memory       XLA's memory analysis of the compiled step (the process's RSS: `training.host_memory`)
  parts        the step-parts account (`--parts`): each component timed alone, times its count
  step_calls   those counts, read from a trace of the step's loss (not restated)
  op_profile   profiler time per HLO instruction joined with the compiled HLO (`--op_profile`)

What the numbers mean: docs/benchmarks.md.
"""

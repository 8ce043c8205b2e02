r"""Where a compiled step spends its time: XLA profiler time per HLO instruction, grouped by layer type.

`profile_op_times(call, steps, trace_dir)` runs `call` under `jax.profiler` (with a Perfetto JSON
trace) and returns the seconds each HLO instruction took per call; `op_account(hlo_text, times)`
joins them with the compiled HLO (`compiled.as_text()`) and returns one row per group:

  {"group", "count", "seconds", "flops", "flops_per_sec", "share"}

- `flops` counts multiply-adds as 2 FLOPs: a convolution with output O and kernel K (spatial k,
  input features i, output features o) costs 2·|O|·|K|/o; a dot 2·|O|·Π(contracted sizes); a fusion
  the convolutions and dots inside it; everything else 0 (elementwise work is cheap in FLOPs, not
  in time, which is what the account shows).
- `group` = network / direction / op kind [/ shape], from the instruction's metadata
  (`op_name` = jit(f)/jvp(ViewDecoder)/body/block_1/conv_0/conv_general_dilated, ...):
  network is the Flax module at the top of the path (TwoBranchEncoder, ViewDecoder, ScoreNet, or
  `loss` outside any module); direction is `fwd` or `bwd` (`transpose(jvp(...))` in the path);
  kind is `conv` (with its role: `data` or `filter` gradient in bwd), `dot`, `fusion`, `copy`,
  `collective`, `reduce`, or the opcode; convolutions add `KxK HxW cin->cout` of the layer.
- `seconds` is per call. XLA:CPU may run independent instructions concurrently, so the rows can
  add up to more than the step's wall time; `share` is of the rows' sum.
"""
from __future__ import annotations

import collections
import dataclasses
import glob
import gzip
import json
import math
import os
import re
from typing import Callable, Optional

_COMPUTATION = re.compile(r"^(ENTRY\s+)?%(?P<name>[^\s(]+)\s.*\{\s*$")
_INSTRUCTION = re.compile(
    r"^\s*(ROOT\s+)?%(?P<name>[^\s=]+) = (?P<type>.+?) (?P<op>[a-z][a-z0-9\-]*)\((?P<args>[^)]*)\)(?P<rest>.*)$")
_ARRAY = re.compile(r"^[a-z0-9]+\[(?P<dims>[0-9,]*)\]")
_COLLECTIVES = {"all-reduce", "all-gather", "reduce-scatter", "collective-permute", "all-to-all",
                "all-reduce-start", "all-reduce-done", "all-gather-start", "all-gather-done",
                "collective-permute-start", "collective-permute-done"}
_CONTAINERS = {"while", "call", "conditional"}  # their bodies' instructions are profiled themselves
_LAYOUT = {"transpose", "copy", "bitcast", "reshape", "slice", "concatenate", "pad", "dynamic-slice",
           "dynamic-update-slice"}  # data movement only: counted as 'copy'


@dataclasses.dataclass
class Instruction:
    name: str
    op: str
    dims: Optional[tuple]  # None for tuples and tokens
    operands: tuple
    rest: str
    computation: str


def _dims(type_str: str) -> Optional[tuple]:
    m = _ARRAY.match(type_str)
    if m is None:
        return None
    return tuple(int(d) for d in m.group("dims").split(",") if d)


@dataclasses.dataclass
class Hlo:
    """A compiled HLO module's instructions by name, and each computation's instructions."""
    instructions: dict
    computations: dict

    def __getitem__(self, name: str) -> Instruction:
        return self.instructions[name]


def parse_hlo(text: str) -> Hlo:
    """The instructions of every computation in `text` (`compiled.as_text()`)."""
    table, computation = {}, ""
    for line in text.splitlines():
        m = _COMPUTATION.match(line)
        if m and " = " not in line.split("{")[0]:
            computation = m.group("name")
            continue
        m = _INSTRUCTION.match(line)
        if m is None:
            continue
        operands = tuple(a.strip().lstrip("%") for a in m.group("args").split(",") if a.strip().startswith("%"))
        table[m.group("name")] = Instruction(m.group("name"), m.group("op"), _dims(m.group("type")), operands,
                                             m.group("rest"), computation)
    computations = collections.defaultdict(list)
    for inst in table.values():
        computations[inst.computation].append(inst)
    return Hlo(table, dict(computations))


def _attr(rest: str, key: str) -> Optional[str]:
    m = re.search(key + r"=(\{[^}]*\}|[^,\s]+)", rest)
    return None if m is None else m.group(1)


def conv_flops(out_dims: tuple, rhs_dims: tuple, dim_labels: str) -> float:
    """2·|out|·|kernel|/o: each output element is a dot over the kernel's spatial × input features."""
    rhs_labels = dim_labels.split("->")[0].split("_")[1]
    return 2.0 * math.prod(out_dims) * math.prod(rhs_dims) / rhs_dims[rhs_labels.index("o")]


def dot_flops(out_dims: tuple, lhs_dims: tuple, contracting: tuple) -> float:
    """2·|out|·Π lhs contracting sizes."""
    return 2.0 * math.prod(out_dims) * math.prod(lhs_dims[d] for d in contracting)


def instruction_flops(inst: Instruction, table: Hlo) -> float:
    """FLOPs of one execution of `inst` (convolutions and dots; fusions: those inside them)."""
    if inst.op == "convolution":
        rhs = table[inst.operands[1]].dims
        return conv_flops(inst.dims, rhs, _attr(inst.rest, "dim_labels"))
    if inst.op == "dot":
        lhs = table[inst.operands[0]].dims
        contracting = tuple(int(c) for c in _attr(inst.rest, "lhs_contracting_dims").strip("{}").split(",") if c)
        return dot_flops(inst.dims, lhs, contracting)
    if inst.op == "fusion":
        return sum(instruction_flops(i, table) for i in _fused(inst, table)
                   if i.op in ("convolution", "dot", "fusion"))
    return 0.0


def _fused(inst: Instruction, table: Hlo) -> list:
    return table.computations.get((_attr(inst.rest, "calls") or "").lstrip("%"), [])


def _own_op_name(inst: Instruction, table: Hlo) -> str:
    m = re.search(r'op_name="([^"]*)"', inst.rest)
    if m:
        return m.group(1)
    if inst.op == "fusion":  # a fusion's metadata may be empty: use its heaviest member's
        for member in sorted(_fused(inst, table), key=lambda i: -instruction_flops(i, table)):
            name = _own_op_name(member, table)
            if name:
                return name
    return ""


def _op_name(inst: Instruction, table: Hlo, depth: int = 3) -> str:
    """The instruction's metadata op_name, else the nearest operand's (layout copies and some
    gradient convolutions carry none)."""
    frontier = [inst]
    for _ in range(depth + 1):
        for i in frontier:
            name = _own_op_name(i, table)
            if name:
                return name
        # a kernel gradient's cotangent (its second operand) names the network better than the input
        operands = lambda i: i.operands[::-1] if i.op == "convolution" else i.operands  # noqa: E731
        frontier = [table.instructions[o] for i in frontier for o in operands(i) if o in table.instructions]
    return ""


@dataclasses.dataclass(frozen=True)
class _ConvGeometry:
    """One convolution instruction's shapes, read through its dim_labels."""
    lhs_spatial: tuple
    out_spatial: tuple
    kernel: tuple  # the window size
    lhs_features: int
    rhs_out_features: int
    out_batch: int
    out_features: int

    @property
    def is_filter_gradient(self) -> bool:
        """A kernel gradient: the window spans the whole input image and the output is kernel-sized."""
        return self.kernel == self.lhs_spatial and math.prod(self.out_spatial) < math.prod(self.lhs_spatial)


def _conv_geometry(inst: Instruction, table: Hlo) -> _ConvGeometry:
    labels = _attr(inst.rest, "dim_labels")
    (lhs_l, rhs_l), out_l = labels.split("->")[0].split("_"), labels.split("->")[1]
    lhs, rhs, out = table[inst.operands[0]].dims, table[inst.operands[1]].dims, inst.dims
    spatial = lambda dims, lab: tuple(dims[lab.index(c)] for c in lab if c.isdigit())  # noqa: E731
    window = re.search(r"size=([0-9x]+)", _attr(inst.rest, "window") or "")
    lhs_spatial = spatial(lhs, lhs_l)
    kernel = tuple(int(k) for k in window.group(1).split("x")) if window else (1,) * len(lhs_spatial)
    return _ConvGeometry(lhs_spatial, spatial(out, out_l), kernel, lhs[lhs_l.index("f")],
                         rhs[rhs_l.index("o")], out[out_l.index("b")], out[out_l.index("f")])


def _network_and_direction(op_name: str) -> tuple:
    direction = "bwd" if "transpose(jvp" in op_name else "fwd"
    m = re.search(r"jvp\((?:vmap\()*([A-Z][A-Za-z0-9_]*)", op_name)
    return (m.group(1) if m else "loss"), direction


def _conv_group(conv: Instruction, table: Hlo, network: str, direction: str) -> str:
    """network/direction/conv [data |filter ]KxK HxW cin->cout: the layer the convolution belongs
    to and the gradient it computes (a kernel gradient is 'bwd' whatever its metadata says)."""
    g = _conv_geometry(conv, table)
    x = lambda dims: "x".join(map(str, dims))  # noqa: E731
    if g.is_filter_gradient:  # the output is the kernel, cin in the batch position
        return f"{network}/bwd/conv filter {x(g.out_spatial)} {x(g.lhs_spatial)} {g.out_batch}->{g.out_features}"
    role = "data " if direction == "bwd" else ""
    return f"{network}/{direction}/conv {role}{x(g.kernel)} {x(g.out_spatial)} {g.lhs_features}->{g.rhs_out_features}"


def group_of(inst: Instruction, table: Hlo) -> str:
    """network/direction/kind[ shape] of one instruction (see the module docstring)."""
    network, direction = _network_and_direction(_op_name(inst, table))
    op = inst.op
    if op == "convolution":
        return _conv_group(inst, table, network, direction)
    if op == "fusion":
        fused = _fused(inst, table)
        members = {i.op for i in fused}
        if "convolution" in members:
            return _conv_group(next(i for i in fused if i.op == "convolution"), table, network, direction)
        if "dot" in members:
            op = "dot"
        elif members & {"reduce", "reduce-window"}:
            op = "reduce"
        elif members <= _LAYOUT | {"parameter", "broadcast", "constant"}:
            op = "copy"
        else:
            op = "fusion"
    elif op in _LAYOUT:
        op = "copy"
    elif op in _COLLECTIVES:
        op = "collective " + op.replace("-start", "").replace("-done", "")
    elif op in ("reduce", "reduce-window"):
        op = "reduce"
    return f"{network}/{direction}/{op}"


def read_trace_op_times(trace_dir: str, module_prefix: str = "") -> dict:
    """{hlo op name: total seconds} from the newest Perfetto JSON trace under `trace_dir` (the
    events the XLA runtime records per instruction, `args.hlo_op`), over all devices."""
    paths = sorted(glob.glob(os.path.join(trace_dir, "**", "*.trace.json.gz"), recursive=True), key=os.path.getmtime)
    if not paths:
        raise FileNotFoundError(f"no *.trace.json.gz under {trace_dir}: was the trace written with "
                                "create_perfetto_trace=True?")
    with gzip.open(paths[-1]) as f:
        data = json.load(f)
    events = data["traceEvents"] if isinstance(data, dict) else data
    times = collections.Counter()
    for e in events:
        args = e.get("args") or {}
        if e.get("ph") == "X" and "hlo_op" in args and args.get("hlo_module", "").startswith(module_prefix):
            times[args["hlo_op"]] += e.get("dur", 0.0) * 1e-6
    return dict(times)


def profile_op_times(call: Callable[[], object], steps: int, trace_dir: str, module_prefix: str = "") -> dict:
    """Runs `call()` `steps` times under the profiler; {hlo op name: seconds per call}. `call` should
    run an ahead-of-time compiled function (or one already called) so no compilation is traced."""
    import jax

    jax.profiler.start_trace(trace_dir, create_perfetto_trace=True)
    try:
        for _ in range(steps):
            jax.block_until_ready(call())
    finally:
        jax.profiler.stop_trace()
    return {k: v / steps for k, v in read_trace_op_times(trace_dir, module_prefix).items()}


def op_account(hlo_text: str, op_seconds: dict, num_devices: int = 1) -> list:
    """Rows {group, count, seconds, flops, flops_per_sec, share}, slowest first.

    `op_seconds`: {instruction name: seconds per call} summed over `num_devices` devices (each
    device runs the same program); `seconds` is per device, `flops` per device per call (each
    instruction's FLOPs once per execution; an instruction inside a loop body is counted once
    per call, so loops undercount FLOPs; the train step has none).
    """
    table = parse_hlo(hlo_text)
    rows = {}
    for name, seconds in op_seconds.items():
        inst = table.instructions.get(name)
        if inst is None or inst.op in _CONTAINERS:
            continue
        row = rows.setdefault(group_of(inst, table), {"count": 0, "seconds": 0.0, "flops": 0.0})
        row["count"] += 1
        row["seconds"] += seconds / num_devices
        row["flops"] += instruction_flops(inst, table)
    total = sum(r["seconds"] for r in rows.values()) or 1.0
    out = [{"group": g, **r, "flops_per_sec": r["flops"] / r["seconds"] if r["seconds"] > 0 else None,
            "share": r["seconds"] / total} for g, r in rows.items()]
    return sorted(out, key=lambda r: -r["seconds"])


def rollup(rows: list, depth: int) -> list:
    """The account summed over the first `depth` '/'-parts of the group (e.g. 2: network/direction,
    or 'kind' by passing depth=-1: the last part without the shape)."""
    acc = {}
    for r in rows:
        parts = r["group"].split("/")
        key = parts[-1].split(" ")[0] if depth < 0 else "/".join(parts[:depth])
        a = acc.setdefault(key, {"count": 0, "seconds": 0.0, "flops": 0.0})
        for k in ("count", "seconds", "flops"):
            a[k] += r[k]
    total = sum(a["seconds"] for a in acc.values()) or 1.0
    out = [{"group": g, **a, "flops_per_sec": a["flops"] / a["seconds"] if a["seconds"] > 0 else None,
            "share": a["seconds"] / total} for g, a in acc.items()]
    return sorted(out, key=lambda r: -r["seconds"])


def step_op_account(compiled, call: Callable[[], object], steps: int, num_devices: int,
                    steps_per_dispatch: int, step_s: float) -> dict:
    """The benchmark's `op_account`: `steps` calls of the compiled step profiled, each HLO
    instruction's time per train step and device grouped by layer type, with the rollups."""
    import tempfile

    k = steps_per_dispatch
    with tempfile.TemporaryDirectory() as trace_dir:
        seconds = profile_op_times(call, steps, trace_dir)
    rows = op_account(compiled.as_text(), {n: s / k for n, s in seconds.items()}, num_devices)
    return {
        "note": ("XLA profiler time per HLO instruction per step and device, grouped network/direction/"
                 "kind [shape]; FLOPs of convolutions and dots (2 per multiply-add); instructions may "
                 "overlap in time, so ops_s can exceed the step time"),
        "profiled_steps": steps * k,
        "ops_s": sum(r["seconds"] for r in rows),
        "step_s": step_s,
        "flops": sum(r["flops"] for r in rows),
        "by_kind": rollup(rows, -1),
        "by_network": rollup(rows, 2),
        "groups": rows,
    }

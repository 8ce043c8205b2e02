r"""Collects finished runs into a results table: `python -m idmvae_jax.tools.results --root=DIR --out=PREFIX`.

DIR holds one workdir per run, named `{variant}_seed{S}` (what launch/reproduce_mini.sh makes);
a run counts once `eval/metrics.json` exists. `--from_json` instead re-renders PREFIX.md (and the
README block) from an existing PREFIX.json and PREFIX_figures/. Writes

  PREFIX.json  {"variants": {name: {metric: {mean, std, seeds, values}}},
                "runs": {run: {variant, seed, commit, config_hash, train_wall_s, eval_wall_s, ...}}}
  PREFIX.md    the issue's targets, each checked against the collected numbers (`targets_table`),
               the paper-layout table (probes z->digit, z->quad, w->quad, w->digit; coherence self,
               cross, unconditional; unconditional with the diffusion prior), per-run provenance, and
               the sample figures copied next to it (PREFIX_figures/).
  PREFIX_figures/probe_curves.png
               when the runs' evaluations wrote probe curves (eval/probe_curve.json): every
               variant's z -> digit and w -> quadrant probes at each checkpoint, seed mean ± std;
               the curves go to PREFIX.json under "curves" (`collect_curves`), where an evaluation
               report reads its reference runs (`evaluation.baseline`).
  README       with --readme=FILE: the text between <!-- results-BLOCK:start --> and
               <!-- results-BLOCK:end --> in FILE (--readme_block, default mini) becomes the
               table, the curves figure and the IDMVAE seed-0 cross-generation figure, so the
               README never shows other numbers than PREFIX.md.

`--curve=WORKDIR` instead prints the same columns for one run evaluated at several step counts:
one row per WORKDIR/metrics_STEPS.json (what launch/train_curve.sh keeps after each piece).

Variants map to result names: idmvae, mmvaeplus, no_crossmi, no_genaug, and diffusion ->
idmvae_diffusion. std is the sample standard deviation (ddof = 1; 0 for one seed).
"""
from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import shutil
from typing import Optional

import numpy as np

VARIANT_NAMES = {
    "idmvae": "idmvae",
    "mmvaeplus": "mmvaeplus",
    "no_crossmi": "no_crossmi",
    "no_genaug": "no_genaug",
    "diffusion": "idmvae_diffusion",
}
ROW_LABELS = {
    "mmvaeplus": "MMVAE+ (λ1 = λ2 = 0)",
    "idmvae": "IDMVAE",
    "no_crossmi": "IDMVAE, λ1 = 0",
    "no_genaug": "IDMVAE, λ2 = 0",
    "idmvae_diffusion": "IDMVAE + diffusion prior",
}
# (column header, metric key): the paper's probe table, then its coherence ablation.
TABLE_COLUMNS = (
    ("z→digit ↑", "probe/z_shared"),
    ("z→quad ↓", "probe/z_private"),
    ("w→quad ↑", "probe/w_private"),
    ("w→digit ↓", "probe/w_shared"),
    ("self", "coherence/self"),
    ("cross", "coherence/cross"),
    ("uncond.", "coherence/unconditional"),
    ("uncond. entropy", "coherence/unconditional_entropy"),
    ("uncond. (diffusion)", "coherence/unconditional_diffusion"),
    ("uncond. entropy (diffusion)", "coherence/unconditional_entropy_diffusion"),
)
README_FIGURE = ("idmvae_seed0", "cross_generation_gaussian.png")
CURVES_FIGURE = "probe_curves.png"  # in PREFIX_figures/: the variants' probe curves, seed mean ± std


def readme_markers(block: str):
    """(start, end) markers of the README block named `block` (e.g. 'mini', 'quick')."""
    return f"<!-- results-{block}:start -->", f"<!-- results-{block}:end -->"


README_START, README_END = readme_markers("mini")
_RUN_DIR = re.compile(r"^(?P<variant>[a-z_]+)_seed(?P<seed>\d+)$")


def config_hash(workdir: str) -> Optional[str]:
    """sha256 (first 12 hex) of the run's resolved config.json, canonically re-serialised."""
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        cfg = json.load(f)
    return hashlib.sha256(json.dumps(cfg, sort_keys=True).encode()).hexdigest()[:12]


def _read_json(path: str, default=None):
    if not os.path.exists(path):
        return default
    with open(path) as f:
        return json.load(f)


def find_runs(root: str) -> dict:
    """run name -> (variant, seed, workdir) for every finished run under root."""
    runs = {}
    for workdir in sorted(glob.glob(os.path.join(root, "*"))):
        m = _RUN_DIR.match(os.path.basename(workdir))
        if m and os.path.exists(os.path.join(workdir, "eval", "metrics.json")):
            runs[os.path.basename(workdir)] = (m["variant"], int(m["seed"]), workdir)
    return runs


def summarise(values: list) -> dict:
    """{mean, std (ddof 1; 0 for one value)} of a list of floats."""
    std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return {"mean": float(np.mean(values)), "std": std}


def collect(runs: dict) -> dict:
    """The results dict (see the module docstring) of `find_runs(root)`."""
    by_variant: dict = {}
    runs_out = {}
    for run, (variant, seed, workdir) in runs.items():
        if variant not in VARIANT_NAMES:
            raise ValueError(f"{workdir}: unknown variant {variant!r}; expected one of {sorted(VARIANT_NAMES)}")
        name = VARIANT_NAMES[variant]
        metrics = _read_json(os.path.join(workdir, "eval", "metrics.json"))
        info = _read_json(os.path.join(workdir, "run_info.json"), {})
        by_variant.setdefault(name, []).append((seed, metrics))
        runs_out[run] = {
            "variant": name,
            "seed": seed,
            "commit": info.get("commit"),
            "eval_commit": info.get("eval_commit", info.get("commit")),
            "note": info.get("provenance_note"),
            "config_hash": config_hash(workdir),
            "config": info.get("config"),
            "train_wall_s": info.get("train_wall_s"),
            "eval_wall_s": info.get("eval_wall_s"),
        }
    variants = {}
    for name, seeded in by_variant.items():
        seeded.sort(key=lambda t: t[0])
        keys = sorted(set().union(*(m.keys() for _, m in seeded)))
        out = {}
        for key in keys:
            # float(): metrics.json stores non-finite values as the strings "nan" / "inf"
            pairs = [(s, float(m[key])) for s, m in seeded if key in m and not isinstance(m[key], (dict, list))]
            if pairs:
                out[key] = dict(summarise([v for _, v in pairs]), seeds=[s for s, _ in pairs],
                                values=[v for _, v in pairs])
        variants[name] = out
    return {"variants": variants, "runs": runs_out, "curves": collect_curves(runs)}


def collect_curves(runs: dict) -> dict:
    """{variant: {"steps", "seeds", "probes": {key: {mean, std, values}}}} from each run's
    eval/probe_curve.json (`evaluation.probe_curve`): per probe, the mean and seed std (ddof 1)
    at every step all of the variant's seeds have; values[i] lists the seeds' values at steps[i]."""
    by_variant: dict = {}
    for run, (variant, seed, workdir) in runs.items():
        rows = _read_json(os.path.join(workdir, "eval", "probe_curve.json"))
        if rows:
            by_variant.setdefault(VARIANT_NAMES.get(variant, variant), []).append(
                (seed, {int(r["step"]): r for r in rows}))
    curves = {}
    for name, seeded in sorted(by_variant.items()):
        seeded.sort(key=lambda t: t[0])
        steps = sorted(set.intersection(*(set(rows) for _, rows in seeded)))
        keys = sorted(set.intersection(*(set(k for r in rows.values() for k in r if k != "step")
                                         for _, rows in seeded)))
        probes = {}
        for key in keys:
            values = [[float(rows[s][key]) for _, rows in seeded] for s in steps]
            stats = [summarise(v) for v in values]
            probes[key] = {"mean": [st["mean"] for st in stats], "std": [st["std"] for st in stats],
                           "values": values}
        curves[name] = {"steps": steps, "seeds": [s for s, _ in seeded], "probes": probes}
    return curves


def _cell(stat: Optional[dict]) -> str:
    if stat is None:
        return "—"
    if len(stat["values"]) > 1:
        return f"{stat['mean']:.3f} ± {stat['std']:.3f}"
    return f"{stat['mean']:.3f}"


def _table_head(*leading: str) -> list:
    """Header and separator lines of a table: the `leading` columns, then TABLE_COLUMNS."""
    names = list(leading) + [c for c, _ in TABLE_COLUMNS]
    return ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]


def markdown_table(results: dict) -> str:
    """The paper-layout table: one row per variant present, mean ± std over seeds."""
    lines = _table_head("model", "seeds")
    for name in ROW_LABELS:
        stats = results["variants"].get(name)
        if stats is None:
            continue
        num_seeds = sum(r["variant"] == name for r in results["runs"].values())
        cells = [_cell(stats.get(key)) for _, key in TABLE_COLUMNS]
        lines.append(f"| {ROW_LABELS[name]} | {num_seeds} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def curve_table(workdir: str) -> str:
    """The paper-layout columns for one run at each evaluated step count (WORKDIR/metrics_N.json)."""
    found = []
    for path in glob.glob(os.path.join(workdir, "metrics_*.json")):
        match = re.fullmatch(r"metrics_(\d+)\.json", os.path.basename(path))
        if match:
            found.append((int(match.group(1)), _read_json(path)))
    if not found:
        raise FileNotFoundError(f"no metrics_STEPS.json in {workdir}: run launch/train_curve.sh first")
    lines = _table_head("steps")
    for steps, metrics in sorted(found, key=lambda item: item[0]):
        # float(): metrics.json stores non-finite values as the strings "nan" / "inf"
        cells = [_cell({"mean": float(metrics[key]), "values": [metrics[key]]}) if key in metrics else "—"
                 for _, key in TABLE_COLUMNS]
        lines.append(f"| {steps:,} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# Targets of the reproduction (SPEC §7's claims at the mini scale); thresholds are the issue's.
Z_DIGIT_TARGET = 0.90        # IDMVAE z->digit
Z_DIGIT_GAP = 0.25           # IDMVAE z->digit minus MMVAE+'s
CROSSMI_DROP = 0.30          # IDMVAE z->digit minus that of IDMVAE with λ1 = 0
UNCOND_DIFFUSION = 0.20      # unconditional coherence with the diffusion prior
UNCOND_RATIO = 3.0           # ... over the Gaussian prior's, same run
ENTROPY_FRACTION = 0.9       # predicted-digit entropy >= 0.9 log 10: no collapse onto few digits
SPREAD_FACTOR = 3.0          # IDMVAE z->digit above MMVAE+'s by more than this many seed stds


def _matched(results: dict, a: str, b: str, key: str):
    """Means of `key` for variants a and b over the seeds both have, and those seeds (None if none)."""
    sa = results["variants"].get(a, {}).get(key)
    sb = results["variants"].get(b, {}).get(key)
    if sa is None or sb is None:
        return None
    seeds = sorted(set(sa["seeds"]) & set(sb["seeds"]))
    if not seeds:
        return None
    pick = lambda s: [v for seed, v in zip(s["seeds"], s["values"]) if seed in seeds]  # noqa: E731
    va, vb = pick(sa), pick(sb)
    return float(np.mean(va)), float(np.mean(vb)), seeds, summarise(va)["std"], summarise(vb)["std"]


def _seeds(seeds: list) -> str:
    return ("seed " if len(seeds) == 1 else "seeds ") + ", ".join(map(str, seeds))


TARGET_NAMES = ("z_digit", "gap", "spread", "w_digit", "diffusion", "crossmi")  # targets() order


def targets(results: dict) -> list:
    """[(target, measurement, verdict)]: each target checked on the collected means, those named in
    results["targets"] (TARGET_NAMES; all when absent).

    Comparisons between variants use the seeds both have (seed-matched means). A comparison
    whose difference is smaller than the larger seed std is reported as "within seed noise"
    rather than met, whatever its sign. A target whose runs are missing reads "not run".
    """
    v = results["variants"]
    rows = []
    z = v.get("idmvae", {}).get("probe/z_shared")
    rows.append((f"IDMVAE z→digit ≥ {Z_DIGIT_TARGET:.2f}",
                 f"{_cell(z)} ({len(z['values'])} seeds)" if z else "—",
                 "not run" if z is None else ("yes" if z["mean"] >= Z_DIGIT_TARGET else "no")))

    m = _matched(results, "idmvae", "mmvaeplus", "probe/z_shared")
    rows.append((f"IDMVAE z→digit ≥ MMVAE+'s + {Z_DIGIT_GAP:.2f}",
                 "—" if m is None else f"{m[0]:.3f} vs {m[1]:.3f} ({m[0] - m[1]:+.3f}; {_seeds(m[2])})",
                 "not run" if m is None else ("yes" if m[0] - m[1] >= Z_DIGIT_GAP else "no")))

    m = _matched(results, "idmvae", "mmvaeplus", "probe/z_shared")
    if m is None:
        measured, verdict = "—", "not run"
    else:
        diff, spread = m[0] - m[1], max(m[3], m[4])
        measured = (f"{m[0]:.3f} vs {m[1]:.3f} ({diff:+.3f}; seed std {m[3]:.3f} / {m[4]:.3f}; "
                    f"{_seeds(m[2])})")
        verdict = ("one seed: no spread" if len(m[2]) < 2
                   else "yes" if diff > SPREAD_FACTOR * spread else "no")
    rows.append((f"IDMVAE z→digit above MMVAE+'s by more than {SPREAD_FACTOR:.0f}× the seeds' spread",
                 measured, verdict))

    m = _matched(results, "idmvae", "mmvaeplus", "probe/w_shared")
    if m is None:
        measured, verdict = "—", "not run"
    else:
        diff, noise = m[0] - m[1], max(m[3], m[4])
        measured = f"{m[0]:.3f} vs {m[1]:.3f} ({diff:+.3f}; seed std {m[3]:.3f} / {m[4]:.3f}; {_seeds(m[2])})"
        verdict = "within seed noise" if abs(diff) < noise else ("yes" if diff < 0 else "no")
    rows.append(("IDMVAE w→digit below MMVAE+'s", measured, verdict))

    d = v.get("idmvae_diffusion", {})
    ud, ug = d.get("coherence/unconditional_diffusion"), d.get("coherence/unconditional")
    ent, ref = d.get("coherence/unconditional_entropy_diffusion"), d.get("coherence/entropy_reference")
    if ud is None or ug is None or ent is None or ref is None:
        rows.append(("unconditional coherence, diffusion prior", "—", "not run"))
    else:
        ok = (ud["mean"] >= UNCOND_DIFFUSION and ud["mean"] >= UNCOND_RATIO * ug["mean"]
              and ent["mean"] >= ENTROPY_FRACTION * ref["mean"])
        rows.append((f"unconditional coherence with the diffusion prior ≥ {UNCOND_DIFFUSION:.1f} and "
                     f"≥ {UNCOND_RATIO:.0f}× the Gaussian prior's, digit entropy ≥ "
                     f"{ENTROPY_FRACTION} log 10",
                     f"{ud['mean']:.3f} vs {ug['mean']:.3f}, entropy {ent['mean']:.3f} of {ref['mean']:.3f}",
                     "yes" if ok else "no"))

    m = _matched(results, "idmvae", "no_crossmi", "probe/z_shared")
    rows.append((f"removing λ1 drops z→digit by ≥ {CROSSMI_DROP:.1f}",
                 "—" if m is None else f"{m[0]:.3f} → {m[1]:.3f} ({m[1] - m[0]:+.3f}; {_seeds(m[2])})",
                 "not run" if m is None else ("yes" if m[0] - m[1] >= CROSSMI_DROP else "no")))
    chosen = results.get("targets") or TARGET_NAMES
    return [row for name, row in zip(TARGET_NAMES, rows) if name in chosen]


def targets_table(results: dict) -> str:
    lines = ["| target | measured | met? |", "|---|---|---|"]
    lines += [f"| {t} | {m} | {ok} |" for t, m, ok in targets(results)]
    return "\n".join(lines)


def runs_table(results: dict) -> str:
    lines = ["| run | commit | config hash | train wall (min) | eval wall (min) |", "|---|---|---|---|---|"]
    for run, r in sorted(results["runs"].items()):
        fmt = lambda s: f"{s / 60:.1f}" if isinstance(s, (int, float)) else "—"  # noqa: E731
        lines.append(f"| {run} | {(r['commit'] or '—')[:10]} | {r['config_hash'] or '—'} | "
                     f"{fmt(r['train_wall_s'])} | {fmt(r['eval_wall_s'])} |")
    return "\n".join(lines)


def copy_figures(runs: dict, figures_dir: str) -> list:
    """Copies each seed-0 run's evaluation figures (of `find_runs`); returns (run, file) pairs.

    PNGs already in `figures_dir` are removed first: the directory shows the runs collected now.
    """
    os.makedirs(figures_dir, exist_ok=True)
    for stale in glob.glob(os.path.join(figures_dir, "*.png")):
        os.remove(stale)
    copied = []
    for run, (_, seed, workdir) in runs.items():
        if seed != 0:
            continue
        for path in sorted(glob.glob(os.path.join(workdir, "eval", "*.png"))):
            name = f"{run}_{os.path.basename(path)}"
            shutil.copyfile(path, os.path.join(figures_dir, name))
            copied.append((run, name))
    return copied


def write(root: str, prefix: str, preamble: str = "", target_names=None) -> dict:
    """Writes PREFIX.json, PREFIX_figures/ and PREFIX.md from the runs under root; returns the
    results. target_names: the targets the page checks (TARGET_NAMES; default all)."""
    runs = find_runs(root)
    if not runs:
        raise FileNotFoundError(f"no finished runs (DIR/VARIANT_seedS/eval/metrics.json) under {root}")
    results = collect(runs)
    if target_names:
        unknown = sorted(set(target_names) - set(TARGET_NAMES))
        if unknown:
            raise ValueError(f"unknown targets {unknown}; choose from {TARGET_NAMES}")
        results["targets"] = list(target_names)
    with open(prefix + ".json", "w") as f:
        json.dump(results, f, indent=2, sort_keys=True)
    copy_figures(runs, prefix + "_figures")
    draw_curves(results, os.path.join(prefix + "_figures", CURVES_FIGURE))
    render(results, prefix, preamble)
    return results


def draw_curves(results: dict, path: str) -> Optional[str]:
    """The probe curves of every variant that has them (seed mean ± std), as the evaluation
    report draws its references; None when no run has a curve."""
    from idmvae_jax.evaluation import baseline, report

    refs = baseline.reference_curves_of(results, [v for v in ROW_LABELS if v in results.get("curves", {})])
    if not refs:
        return None
    titles = {k: report.CURVE_TITLES[k].format(shared="digit", private="quadrant") for k in report.CURVE_KEYS_ORDER}
    return report.save_curve_figure(path, [], refs, titles, {"probe/z_shared": 0.1, "probe/w_private": 0.25})


def figures_of(results: dict, figures_dir: str) -> list:
    """(run, file) for the PNGs in figures_dir named RUN_*.png after a collected run."""
    out = []
    for path in sorted(glob.glob(os.path.join(figures_dir, "*.png"))):
        name = os.path.basename(path)
        run = next((r for r in sorted(results["runs"], key=len, reverse=True) if name.startswith(r + "_")), None)
        if run is not None:
            out.append((run, name))
    return out


def render(results: dict, prefix: str, preamble: str = "") -> None:
    """Writes PREFIX.md: the preamble, the targets, the table, the runs and PREFIX_figures/'s PNGs."""
    figures_dir = prefix + "_figures"
    rel = os.path.basename(figures_dir)
    parts = [preamble.strip(), "", "## Targets", "", targets_table(results), "",
             "## Results", "", markdown_table(results), ""]
    if os.path.exists(os.path.join(figures_dir, CURVES_FIGURE)):
        parts += ["Linear probes of the posterior means at every checkpoint, seed mean ± std:", "",
                  f"![probe curves]({rel}/{CURVES_FIGURE})", ""]
    parts += ["## Runs", "", runs_table(results), "", "## Figures", ""]
    for run, name in figures_of(results, figures_dir):
        parts.append(f"**{run}** — `{name}`\n\n![{run} {name}]({rel}/{name})\n")
    with open(prefix + ".md", "w") as f:
        f.write("\n".join(parts) + "\n")


def readme_section(results: dict, prefix: str, readme_dir: str) -> str:
    """The README's results block: the table, where it comes from, and the IDMVAE seed-0
    cross-generation figure when that run is collected (paths relative to `readme_dir`)."""
    rel_md = os.path.relpath(prefix + ".md", readme_dir)
    runs = sorted(results["runs"])
    parts = [markdown_table(results), "",
             f"Finished runs: {', '.join(runs)}. Per-run commits, wall times and figures: [{rel_md}]({rel_md})."]
    curves = os.path.join(prefix + "_figures", CURVES_FIGURE)
    if os.path.exists(curves):
        path = os.path.relpath(curves, readme_dir)
        parts += ["", "Linear probes of the posterior means at every checkpoint, seed mean ± std "
                  "(z → digit should rise; w → quadrant should stay high):", "",
                  f"![probe curves]({path})"]
    run, figure = README_FIGURE
    if run in results["runs"]:
        path = os.path.relpath(os.path.join(prefix + "_figures", f"{run}_{figure}"), readme_dir)
        parts += ["", f"Cross-generation, {run} (rows: the view encoded; column blocks: the view generated):",
                  "", f"![{run} cross-generation]({path})"]
    return "\n".join(parts)


def update_readme(readme: str, section: str, block: str = "mini") -> None:
    """Replaces the text between the markers of `block` (`readme_markers`) in `readme` with `section`."""
    start_marker, end_marker = readme_markers(block)
    with open(readme) as f:
        text = f.read()
    start, end = text.find(start_marker), text.find(end_marker)
    if start < 0 or end < start:
        raise ValueError(f"{readme} has no {start_marker} ... {end_marker} block; add the two "
                         "markers where the results table belongs")
    text = text[:start + len(start_marker)] + "\n" + section + "\n" + text[end:]
    with open(readme, "w") as f:
        f.write(text)


def main(argv=None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", default="", help="directory of VARIANT_seedS workdirs")
    parser.add_argument("--from_json", action="store_true",
                        help="re-render PREFIX.md (and --readme) from PREFIX.json and PREFIX_figures/ "
                             "instead of collecting runs: after editing the preamble, or without the workdirs")
    parser.add_argument("--curve", default="", help="print the table of one run's metrics_STEPS.json "
                        "files (launch/train_curve.sh) and stop")
    parser.add_argument("--out", default="", help="output prefix, e.g. docs/results_mini")
    parser.add_argument("--preamble", default="", help="a Markdown file whose text opens PREFIX.md")
    parser.add_argument("--readme", default="", help="a Markdown file whose results block to rewrite")
    parser.add_argument("--targets", default="", help="comma-separated targets the page checks "
                        f"(default all: {','.join(TARGET_NAMES)})")
    parser.add_argument("--readme_block", default="mini",
                        help="which block: the text between <!-- results-BLOCK:start/end --> markers")
    args = parser.parse_args(argv)
    if args.curve:
        print(curve_table(args.curve))
        return
    if not args.out:
        parser.error("give --out=PREFIX (or --curve=WORKDIR)")
    preamble = ""
    if args.preamble:
        with open(args.preamble) as f:
            preamble = f.read()
    if args.from_json:
        with open(args.out + ".json") as f:
            results = json.load(f)
        render(results, args.out, preamble)
    elif args.root:
        results = write(args.root, args.out, preamble,
                        [t.strip() for t in args.targets.split(",") if t.strip()] or None)
    else:
        parser.error("give --root=DIR (collect the runs under DIR) or --from_json (re-render PREFIX.json)")
    if args.readme:
        update_readme(args.readme, readme_section(results, args.out, os.path.dirname(os.path.abspath(args.readme))),
                      args.readme_block)
    print(markdown_table(results))
    print(f"wrote {args.out}.md and {args.out}.json ({len(results['runs'])} runs)")


if __name__ == "__main__":
    main()

"""The evaluation report: DIR/eval/report.md with every number in tables, and PNG figures beside it.

Figures (Pillow, except the curve; the image grids are `data.figures`' labelled grids, as the
training run's sample grids):
  cross_generation_<prior>.png  rows = source view e ("from view e"), first block = 4 inputs x_e
                                ("input"), then one block per target view d ("to view d") with
                                D_d(z ~ q(z | x_e), w_d ~ prior); image views only (other views are
                                listed in the report as not drawn).
  samples_<prior>.png           unconditional joint samples: rows = image views, columns = samples
                                ("sample i"; a column shares one z).
  latents.png                   2-D PCA (numpy SVD) of view 0's posterior means of z and of w on
                                the evaluation split, coloured by the shared and the private label.
  probe_curve.png               (matplotlib) the z -> shared and w -> private probes at every
                                checkpoint, beside the reference runs' seed mean ± std.
"""
from __future__ import annotations

import io
import math
from typing import Any, List, Mapping, Optional, Sequence

import numpy as np
from PIL import Image, ImageDraw

from idmvae_jax import storage
from idmvae_jax.data import figures, images

PRIOR_TITLES = {"gaussian": "Gaussian prior", "diffusion": "diffusion prior"}
PRIOR_SUFFIX = {"gaussian": "", "diffusion": "_diffusion"}
# tab10
PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
           (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]


def _color(label: int):
    if label < len(PALETTE):
        return PALETTE[label]
    rng = np.random.default_rng(label)  # deterministic colour for classes beyond the palette
    return tuple(int(c) for c in rng.integers(0, 230, 3))


# ------------------------------------------------------------------------------------ scatter
def pca_2d(x) -> np.ndarray:
    """(N, D) -> (N, 2) projection on the two leading principal components (zero-padded if D < 2)."""
    a = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    a = a - a.mean(axis=0, keepdims=True)
    if a.shape[0] < 2:
        return np.zeros((a.shape[0], 2))
    _, _, vt = np.linalg.svd(a, full_matrices=False)
    proj = a @ vt[:2].T
    if proj.shape[1] < 2:
        proj = np.concatenate([proj, np.zeros((len(a), 2 - proj.shape[1]))], axis=1)
    return proj


def draw_scatter(points, labels, title: str, size: int = 300, label_names: Optional[Sequence[str]] = None
                 ) -> Image.Image:
    """A scatter plot (N, 2) coloured by integer labels, with a title and a legend."""
    pts = np.asarray(points, dtype=np.float64)
    labels = np.asarray(labels).astype(np.int64)
    legend_w, top, margin = 90, 20, 10
    inner = size - 2 * margin  # the plot box: (margin, top) .. (margin + inner, top + inner)
    img = Image.new("RGB", (size + legend_w, top + inner + margin), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    font = figures.font(11)
    draw.text((margin, 3), title, fill=(0, 0, 0), font=font)
    draw.rectangle([margin - 4, top - 4, margin + inner + 4, top + inner + 4], outline=(180, 180, 180))
    if len(pts):
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        u = (pts - lo) / np.where(hi - lo > 0, hi - lo, 1.0)
        order = np.random.default_rng(0).permutation(len(pts))  # no class painted over the rest
        for i in order:
            x, y = margin + u[i, 0] * inner, top + (1.0 - u[i, 1]) * inner
            draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=_color(int(labels[i])))
    classes = sorted(set(int(c) for c in labels))
    for j, c in enumerate(classes[:20]):
        y = top + 4 + 12 * j
        draw.rectangle([size + 4, y + 2, size + 12, y + 10], fill=_color(c))
        name = label_names[c] if label_names is not None and c < len(label_names) else str(c)
        draw.text((size + 16, y), name, fill=(0, 0, 0), font=font)
    return img


def save_latent_projection(path: str, z, w, y_shared, y_private=None, shared_name: str = "shared",
                           private_name: str = "private") -> str:
    """2-D PCA of z and w posterior means: panels [z by shared, w by shared, z by private,
    w by private] (the private row only when private labels are given)."""
    panels = [draw_scatter(pca_2d(z), y_shared, f"z (PCA), colour = {shared_name}"),
              draw_scatter(pca_2d(w), y_shared, f"w (PCA), colour = {shared_name}")]
    if y_private is not None:
        panels += [draw_scatter(pca_2d(z), y_private, f"z (PCA), colour = {private_name}"),
                   draw_scatter(pca_2d(w), y_private, f"w (PCA), colour = {private_name}")]
    pw, ph = panels[0].size
    rows = (len(panels) + 1) // 2
    img = Image.new("RGB", (2 * pw, rows * ph), (255, 255, 255))
    for i, p in enumerate(panels):
        img.paste(p, ((i % 2) * pw, (i // 2) * ph))
    images.save_png(path, img)
    return path


# ------------------------------------------------------------------------------------ markdown
def _fmt(v) -> str:
    if v is None:
        return "—"
    if isinstance(v, str):
        return v
    v = float(v)
    if not math.isfinite(v):
        return str(v)
    return f"{v:.4f}" if abs(v) < 1000 else f"{v:.1f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> List[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(_fmt(c) if not isinstance(c, str) else c for c in r) + " |")
    return lines


# ------------------------------------------------------------------------------------ curve
CURVE_TITLES = {"probe/z_shared": "z → {shared}", "probe/w_private": "w → {private}"}
CURVE_KEYS_ORDER = tuple(CURVE_TITLES)


def save_curve_figure(path, curve: Sequence[Mapping[str, float]], references: Sequence[Any],
                      titles: Mapping[str, str], chance: Mapping[str, float]) -> str:
    """Line plot per probe key (one panel each): this run's rows {'step', key: value} (none: the
    references alone) and each reference curve's seed mean with a ±1 std band; chance dotted."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    keys = [k for k in CURVE_KEYS_ORDER if any(k in r for r in curve) or any(k in ref.mean for ref in references)]
    fig = Figure(figsize=(4.2 * len(keys), 3.4))  # no pyplot: the caller's backend is left alone
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(keys), squeeze=False)
    for ax, key in zip(axes[0], keys):
        for ref in references:
            if key in ref.mean:
                mean, std = ref.mean[key], ref.std[key]
                line, = ax.plot(ref.steps, mean, marker=".", label=f"{ref.label} ({len(ref.seeds)} seeds)")
                ax.fill_between(ref.steps, mean - std, mean + std, color=line.get_color(), alpha=0.2)
        rows = [r for r in curve if key in r]
        if rows:
            ax.plot([r["step"] for r in rows], [r[key] for r in rows], color="black", marker="o",
                    label="this run")
        if key in chance:
            ax.axhline(chance[key], color="grey", linestyle=":", label="chance")
        ax.set_title(titles[key])
        ax.set_xlabel("training step")
        ax.set_ylabel("probe test accuracy")
        ax.set_ylim(0.0, 1.0)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8, loc="best")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    storage.write_bytes(path, buffer.getvalue())
    return str(path)


def _curve_section(eval_dir, curve, references, sname: str, pname: str, chance_s: float,
                   chance_p: Optional[float]) -> List[str]:
    """The report's learning-curve section: a table (this run and the references, step by step)
    and its figure."""
    keys = [k for k in CURVE_KEYS_ORDER if any(k in r for r in curve)]
    titles = {k: CURVE_TITLES[k].format(shared=sname, private=pname) for k in CURVE_KEYS_ORDER}
    lines = ["## Learning curve: latent probes at every checkpoint", "",
             f"Linear probes of the posterior means at each kept checkpoint (mean over views): "
             f"z should come to carry the {sname} (↑, chance {chance_s:.2f})"
             + (f" and w the {pname} (↑, chance {chance_p:.2f})" if chance_p else "") + "."]
    for ref in references:
        lines.append(f"{ref.label}: seed mean ± std of {len(ref.seeds)} runs of {', '.join(ref.configs)} "
                     f"(commit {', '.join(ref.commits)}), from `{ref.source}`.")
    lines.append("")
    header = ["step"]
    for k in keys:
        header += [f"{titles[k]}, this run"] + [f"{titles[k]}, {ref.label}" for ref in references if k in ref.mean]
    rows = []
    for r in curve:
        row = [str(r["step"])]
        for k in keys:
            row.append(_fmt(r.get(k)))
            for ref in references:
                if k in ref.mean:
                    at = ref.at(k, int(r["step"]))
                    row.append("—" if at is None else f"{at[0]:.3f} ± {at[1]:.3f}")
        rows.append(row)
    lines += _table(header, rows) + [""]
    chance = {"probe/z_shared": chance_s}
    if chance_p:
        chance["probe/w_private"] = chance_p
    name = "probe_curve.png"
    save_curve_figure(storage.path(eval_dir) / name, curve, references, titles, chance)
    lines += [f"![{name}]({name})", ""]
    return lines


def write_report(eval_dir: str, metrics: Mapping[str, float], *, info, artifacts: Mapping[str, Any],
                 test: Mapping[str, Any], notes: Sequence[str] = (), step: Optional[int] = None,
                 priors: Sequence[str] = ("gaussian",), split: str = "test",
                 elapsed: Optional[float] = None, curve: Sequence[Mapping[str, float]] = (),
                 references: Sequence[Any] = (), summary: str = "") -> str:
    """Writes eval_dir/report.md and its PNG figures; returns the path of report.md.

    Args:
      eval_dir: output folder.
      metrics: the flat metrics dict (as in metrics.json).
      info: the DatasetInfo.
      artifacts: from `evaluate.compute_metrics`: 'classifier_accuracy', 'coherence' (per prior:
        'matrix', 'histogram', ...), 'cross' (per prior: out[e][d] first examples), 'samples'
        (per prior: M arrays), 'latents' ({'z', 'w'} (M, N, dim) on the split), 'private_views'.
      test: the evaluation split (inputs for the cross grid, labels for the projection).
      notes: lines added under "Notes" (e.g. why FID was skipped).
      curve: the probe curve rows (`probe_curve.probe_curve`); references: `baseline.ReferenceCurve`s
        drawn beside it.
      summary: Markdown that opens the report (config eval.report_note: what the run can show).
    """
    eval_dir = storage.path(eval_dir)
    m = info.num_views
    notes = list(notes)
    kinds = [v.kind for v in info.views]
    drawable = [v for v in range(m) if figures.is_drawable(kinds[v], info.views[v].shape)]
    not_drawn = [v for v in range(m) if v not in drawable]
    has_private = bool(artifacts.get("private_views"))
    sname = info.shared_label_name or "shared"
    pname = info.private_label_name or "private"
    k_shared = info.num_shared_classes
    chance_s = 1.0 / k_shared
    chance_p = 1.0 / info.num_private_classes if info.num_private_classes else None
    if not has_private:
        notes.append("The data has no private labels: the private-label metrics (probe/z_private, "
                     "probe/w_private, coherence/private*, classifier/private_acc) are omitted.")
    if not_drawn:
        notes.append(f"Views {not_drawn} ({', '.join(kinds[v] for v in not_drawn)}) are not images "
                     "and are not drawn in the figures; their numbers are in the tables.")

    lines = ["# Evaluation report", ""]
    n_eval = len(test["y_shared"])
    lines.append(f"Dataset `{info.name}`: {m} views ({', '.join(kinds)}), {n_eval} `{split}` tuples; "
                 f"shared label `{sname}` ({k_shared} classes)"
                 + (f", private label `{pname}` ({info.num_private_classes} classes)" if has_private else "")
                 + (f". Checkpoint step {step}." if step is not None else "."))
    lines.append("")
    if summary:
        lines += [summary.strip(), ""]
    if curve:
        lines += _curve_section(eval_dir, curve, references, sname, pname, chance_s, chance_p)

    acc = artifacts.get("classifier_accuracy", {})
    lines += ["## Classifiers (test accuracy)", "",
              "Coherence is only as trustworthy as these per-view classifiers.", ""]
    rows = []
    for v in range(m):
        row = [str(v), kinds[v], _fmt(acc.get("shared", [None] * m)[v])]
        if has_private:
            row.append(_fmt(acc.get("private", [None] * m)[v]))
        rows.append(row)
    rows.append(["mean", "", _fmt(metrics.get("classifier/shared_acc"))]
                + ([_fmt(metrics.get("classifier/private_acc"))] if has_private else []))
    lines += _table(["view", "kind", f"{sname} acc"] + ([f"{pname} acc"] if has_private else []), rows)
    lines.append("")

    lines += ["## Latent linear probes (mean over views)", ""]
    rows = [["probe/z_shared", metrics.get("probe/z_shared"), f"z → {sname}", "↑ 1"],
            ["probe/w_shared", metrics.get("probe/w_shared"), f"w → {sname}", f"↓ chance {chance_s:.3f}"],
            ["probe/u_shared", metrics.get("probe/u_shared"), f"[w, z] → {sname}", "↑ 1"]]
    if has_private:
        rows += [["probe/z_private", metrics.get("probe/z_private"), f"z → {pname}",
                  f"↓ chance {chance_p:.3f}"],
                 ["probe/w_private", metrics.get("probe/w_private"), f"w → {pname}", "↑ 1"],
                 ["probe/u_private", metrics.get("probe/u_private"), f"[w, z] → {pname}", "↑ 1"]]
    lines += _table(["key", "value", "probe", "ideal"], [[f"`{r[0]}`", _fmt(r[1]), r[2], r[3]] for r in rows])
    lines.append("")

    lines += ["## Coherence", ""]
    shared_acc = _fmt(metrics.get("classifier/shared_acc"))
    private_acc = _fmt(metrics.get("classifier/private_acc"))
    spec = [("self", f"e → e: {sname} kept", "↑ 1", f"{sname} {shared_acc}"),
            ("cross", f"e → d ≠ e: {sname} kept", "↑ 1", f"{sname} {shared_acc}")]
    if has_private:
        spec.append(("private", f"from w_e: {pname} kept", "↑ 1", f"{pname} {private_acc}"))
    spec += [("private_leak", f"from w_e: {sname} kept (leak)", f"↓ chance {chance_s:.3f}",
              f"{sname} {shared_acc}"),
             ("unconditional", f"all views agree on {sname}", "↑ 1", f"{sname} {shared_acc}"),
             ("unconditional_entropy", f"entropy of predicted {sname} (nats)",
              f"log {k_shared} = {math.log(k_shared):.3f}", f"{sname} {shared_acc}")]
    header = ["key", "meaning"] + [PRIOR_TITLES[p] for p in priors] + ["ideal", "classifier acc"]
    rows = []
    for name, meaning, ideal, cacc in spec:
        values = [_fmt(metrics.get(f"coherence/{name}{PRIOR_SUFFIX[p]}")) for p in priors]
        rows.append([f"`coherence/{name}`", meaning] + values + [ideal, cacc])
    lines += _table(header, rows)
    lines.append("")
    for p in priors:
        mat = artifacts.get("coherence", {}).get(p, {}).get("matrix")
        if mat is None:
            continue
        lines += [f"Conditional coherence matrix, {PRIOR_TITLES[p]} (row = source e, column = target d):", ""]
        lines += _table(["e \\ d"] + [str(d) for d in range(m)],
                        [[str(e)] + [_fmt(mat[e, d]) for d in range(m)] for e in range(m)])
        lines.append("")

    fd_keys = sorted(k for k in metrics if (k.startswith("fd_classifier/") or k.startswith("fid/"))
                     and "/view" not in k)
    if fd_keys:
        explain = ("`fd_classifier`: between the shared classifiers' penultimate features of generated "
                   f"and real `{split}` examples (mean over views; works offline).")
        if any(k.startswith("fid/") for k in fd_keys):
            explain += " `fid`: Inception-v3 pool3 features (mean over image views)."
        lines += ["## Fréchet distances (↓)", "", explain + " `cross` pools the generations e → d "
                  "over the sources e ≠ d.", ""]
        lines += _table(["key", "value"], [[f"`{k}`", _fmt(metrics[k])] for k in fd_keys])
        lines.append("")

    lines += ["## Figures", ""]
    captions = []
    for p in priors:
        cross = artifacts.get("cross", {}).get(p)
        if cross is not None and drawable:
            name = f"cross_generation_{p}.png"
            images.save_png(eval_dir / name, figures.cross_grid(test["x"], cross, drawable, 4))
            captions.append((f"Cross-generation, {PRIOR_TITLES[p]}: rows = source view, column "
                             "blocks = the inputs, then each target view", name))
    for p in priors:
        samples = artifacts.get("samples", {}).get(p)
        if samples is not None and drawable:
            name = f"samples_{p}.png"
            images.save_png(eval_dir / name, figures.sample_grid(samples, drawable))
            captions.append((f"Unconditional samples, {PRIOR_TITLES[p]}: rows = views, a column "
                             "shares one z", name))
    lat = artifacts.get("latents")
    if lat is not None:
        y_priv = None
        if has_private:
            v0 = artifacts["private_views"][0]
            y_priv = np.asarray(test["y_private"])[:, v0]
        else:
            v0 = 0
        name = "latents.png"
        save_latent_projection(eval_dir / name, lat["z"][v0], lat["w"][v0],
                               test["y_shared"], y_priv, sname, pname)
        captions.append((f"2-D PCA of view {v0}'s posterior means of z and w, coloured by {sname}"
                        + (f" and {pname}" if has_private else ""), name))
    for caption, name in captions:
        lines += [f"**{caption}**", "", f"![{name}]({name})", ""]
    if not captions:
        lines += ["(no figures: no drawable views)", ""]

    lines += ["## All metrics", ""]
    lines += _table(["key", "value"], [[f"`{k}`", _fmt(v)] for k, v in sorted(metrics.items())])
    lines.append("")
    if notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    if elapsed is not None:
        lines += [f"_Evaluation took {elapsed:.0f} s._", ""]
    return str(storage.write_text(eval_dir / "report.md", "\n".join(lines)))

"""Reference curves for the report: the probe curves of other runs of the same config, read from a
results file that `python -m idmvae_jax.tools.results` wrote (e.g. docs/results_quick.json, made by
`launch/reproduce_quick.sh`).

A results file holds, per variant, the mean and seed standard deviation of each probe at each
checkpoint step (`tools.results.collect_curves`), and per run the config, the commit and the wall
times. The report draws the MMVAE+ baseline (and the IDMVAE runs) beside the run it evaluates.
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Dict, List, Optional, Sequence

import numpy as np

# Where a relative `eval.baseline_results` is looked for: the working directory, then the
# repository the package was installed from (an editable install or a source checkout).
_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LABELS = {"mmvaeplus": "MMVAE+", "idmvae": "IDMVAE", "idmvae_diffusion": "IDMVAE + diffusion prior",
          "no_crossmi": "IDMVAE, λ1 = 0", "no_genaug": "IDMVAE, λ2 = 0"}


@dataclasses.dataclass
class ReferenceCurve:
    """One variant's probe curve over its seeds.

    steps: checkpoint steps; mean, std: {probe key: (len(steps),) arrays} (std: ddof 1 over seeds);
    seeds: the seeds; configs, commits: of the runs (for the caption); source: the results file.
    """

    variant: str
    steps: List[int]
    mean: Dict[str, np.ndarray]
    std: Dict[str, np.ndarray]
    seeds: List[int]
    configs: List[str]
    commits: List[str]
    source: str

    @property
    def label(self) -> str:
        return LABELS.get(self.variant, self.variant)

    def at(self, key: str, step: int):
        """(mean, std) at `step`, or None when the curve has no such step or key."""
        if key not in self.mean or step not in self.steps:
            return None
        i = self.steps.index(step)
        return float(self.mean[key][i]), float(self.std[key][i])


def resolve(path: str) -> Optional[str]:
    """The results file `path` names (absolute, or relative to the working directory or to the
    repository root), or None when it is not there."""
    if not path:
        return None
    candidates = [path] if os.path.isabs(path) else [path, os.path.join(_REPO_ROOT, path)]
    return next((p for p in candidates if os.path.isfile(p)), None)


def load_reference_curves(path: str, variants: Sequence[str] = ("mmvaeplus", "idmvae")
                          ) -> List[ReferenceCurve]:
    """The curves of `variants` in the results file at `path` (those it holds, in that order)."""
    with open(path) as f:
        results = json.load(f)
    return reference_curves_of(results, variants, source=path)


def reference_curves_of(results: dict, variants: Sequence[str] = ("mmvaeplus", "idmvae"),
                        source: str = "") -> List[ReferenceCurve]:
    """The curves of `variants` in a results dict (`tools.results.collect`), in that order."""
    curves = results.get("curves", {})
    out = []
    for variant in variants:
        c = curves.get(variant)
        if not c:
            continue
        runs = [r for r in results.get("runs", {}).values() if r.get("variant") == variant]
        out.append(ReferenceCurve(
            variant=variant, steps=[int(s) for s in c["steps"]],
            mean={k: np.asarray(v["mean"], float) for k, v in c["probes"].items()},
            std={k: np.asarray(v["std"], float) for k, v in c["probes"].items()},
            seeds=list(c["seeds"]), configs=sorted({str(r.get("config")) for r in runs}),
            commits=sorted({str(r.get("commit"))[:10] for r in runs}), source=source))
    return out

"""idmvae_jax.tools.results: collecting finished runs into the results table (numbers from metrics.json)."""
import json
import os
import shutil

import numpy as np
import pytest

from idmvae_jax.tools import results


def _run(root, name, metrics, config=None, info=None, finished=True):
    wd = root / name
    (wd / "eval").mkdir(parents=True)
    if finished:
        (wd / "eval" / "metrics.json").write_text(json.dumps(metrics))
        (wd / "eval" / "cross_generation_gaussian.png").write_bytes(b"\x89PNG fake")
    (wd / "config.json").write_text(json.dumps(config or {"seed": 0}))
    if info is not None:
        (wd / "run_info.json").write_text(json.dumps(info))
    return wd


def test_collect_means_stds_and_provenance(tmp_path):
    z = {0: 0.91, 1: 0.95, 2: 0.97}
    for seed, v in z.items():
        _run(tmp_path, f"idmvae_seed{seed}", {"probe/z_shared": v, "coherence/self": "nan"},
             config={"seed": seed}, info={"commit": "abc123", "train_wall_s": 60.0 * (seed + 1)})
    _run(tmp_path, "mmvaeplus_seed0", {"probe/z_shared": 0.4})
    _run(tmp_path, "diffusion_seed0", {"coherence/unconditional_diffusion": 0.3})
    _run(tmp_path, "no_genaug_seed0", {"probe/z_shared": 0.1}, finished=False)  # not evaluated yet
    (tmp_path / "notes").mkdir()  # not a run directory

    res = results.collect(results.find_runs(str(tmp_path)))
    stat = res["variants"]["idmvae"]["probe/z_shared"]
    values = np.array([z[s] for s in sorted(z)])
    assert stat["seeds"] == [0, 1, 2] and stat["values"] == pytest.approx(values.tolist())
    assert stat["mean"] == pytest.approx(values.mean()) and stat["std"] == pytest.approx(values.std(ddof=1))
    assert np.isnan(res["variants"]["idmvae"]["coherence/self"]["mean"])
    assert res["variants"]["mmvaeplus"]["probe/z_shared"]["std"] == 0.0
    assert "idmvae_diffusion" in res["variants"] and "no_genaug" not in res["variants"]
    assert set(res["runs"]) == {"idmvae_seed0", "idmvae_seed1", "idmvae_seed2", "mmvaeplus_seed0", "diffusion_seed0"}
    r1 = res["runs"]["idmvae_seed1"]
    assert r1["commit"] == "abc123" and r1["train_wall_s"] == 120.0
    assert r1["config_hash"] != res["runs"]["idmvae_seed0"]["config_hash"]  # different seed, different config


def test_write_outputs_table_json_and_figures(tmp_path):
    root = tmp_path / "runs"
    _run(root, "idmvae_seed0", {"probe/z_shared": 0.9, "probe/w_shared": 0.2})
    _run(root, "mmvaeplus_seed0", {"probe/z_shared": 0.4, "probe/w_shared": 0.5})
    prefix = str(tmp_path / "out" / "results")
    os.makedirs(prefix + "_figures")
    open(os.path.join(prefix + "_figures", "old_run_seed0_samples.png"), "wb").close()  # a stale figure
    results.write(str(root), prefix, "# Title\n")
    assert not os.path.exists(os.path.join(prefix + "_figures", "old_run_seed0_samples.png"))
    text = open(prefix + ".md").read()
    assert text.startswith("# Title")
    rows = [line for line in text.splitlines() if line.startswith("| IDMVAE |") or line.startswith("| MMVAE+")]
    assert len(rows) == 2 and "0.900" in rows[1] and "0.400" in rows[0]  # MMVAE+ row first, as in the paper
    assert os.path.exists(os.path.join(prefix + "_figures", "idmvae_seed0_cross_generation_gaussian.png"))
    data = json.load(open(prefix + ".json"))
    assert data["variants"]["idmvae"]["probe/w_shared"]["values"] == [0.2]


def test_unknown_variant_and_empty_root_are_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no finished runs"):
        results.write(str(tmp_path), str(tmp_path / "r"))
    _run(tmp_path, "betavae_seed0", {"probe/z_shared": 0.5})
    with pytest.raises(ValueError, match="unknown variant 'betavae'"):
        results.collect(results.find_runs(str(tmp_path)))


def test_readme_block_shows_the_collected_table_and_figure(tmp_path):
    root = tmp_path / "runs"
    _run(root, "idmvae_seed0", {"probe/z_shared": 0.9, "probe/w_shared": 0.2})
    _run(root, "mmvaeplus_seed0", {"probe/z_shared": 0.4, "probe/w_shared": 0.5})
    prefix = str(tmp_path / "docs" / "results")
    os.makedirs(tmp_path / "docs")
    res = results.write(str(root), prefix)
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\nintro\n\n{results.README_START}\nold table 0.123\n{results.README_END}\n\ntail\n")
    results.update_readme(str(readme), results.readme_section(res, prefix, str(tmp_path)))
    text = readme.read_text()
    assert "old table" not in text and text.startswith("# x\n\nintro") and text.endswith("tail\n")
    block = text[text.index(results.README_START):text.index(results.README_END)]
    assert results.markdown_table(res) in block
    assert "(docs/results.md)" in block
    assert "![idmvae_seed0 cross-generation](docs/results_figures/idmvae_seed0_cross_generation_gaussian.png)" in block
    assert os.path.exists(tmp_path / "docs/results_figures/idmvae_seed0_cross_generation_gaussian.png")
    # Twice gives the same file (the markers stay).
    results.update_readme(str(readme), results.readme_section(res, prefix, str(tmp_path)))
    assert readme.read_text() == text
    readme.write_text("# no markers\n")
    with pytest.raises(ValueError, match="results-mini:start"):
        results.update_readme(str(readme), "table")


def test_targets_are_checked_on_seed_matched_means(tmp_path):
    # IDMVAE seeds 0-2, MMVAE+ seeds 0-1, λ1 = 0 seed 0 only: each comparison uses the common seeds.
    for seed, (z, w) in enumerate([(0.95, 0.10), (0.91, 0.12), (0.50, 0.11)]):
        _run(tmp_path, f"idmvae_seed{seed}", {"probe/z_shared": z, "probe/w_shared": w})
    for seed, (z, w) in enumerate([(0.30, 0.30), (0.40, 0.32)]):
        _run(tmp_path, f"mmvaeplus_seed{seed}", {"probe/z_shared": z, "probe/w_shared": w})
    _run(tmp_path, "no_crossmi_seed0", {"probe/z_shared": 0.70})
    res = results.collect(results.find_runs(str(tmp_path)))
    by_target = results.targets(res)
    assert [ok for _, _, ok in by_target] == [
        "no",       # mean z->digit (0.95 + 0.91 + 0.50) / 3 = 0.787 < 0.90
        "yes",      # seeds 0, 1: 0.93 - 0.35 = 0.58 >= 0.25
        "yes",      # seeds 0, 1: 0.58 > 3 x max(std 0.028, std 0.071)
        "yes",      # seeds 0, 1: 0.11 - 0.31 = -0.20, beyond the seed std
        "not run",  # no diffusion run
        "no",       # seed 0: 0.95 - 0.70 = 0.25 < 0.30
    ]
    assert "0.930 vs 0.350 (+0.580; seeds 0, 1)" in by_target[1][1]
    assert "seed std 0.028 / 0.071" in by_target[2][1]
    assert "0.950 → 0.700 (-0.250; seed 0)" in by_target[5][1]

    # A difference smaller than the seeds' spread is not a win, whatever its sign.
    # Seeds 0-2: 0.110 vs 0.207 (-0.097), MMVAE+'s std over them 0.179.
    _run(tmp_path, "mmvaeplus_seed2", {"probe/z_shared": 0.4, "probe/w_shared": 0.0})
    res = results.collect(results.find_runs(str(tmp_path)))
    assert results.targets(res)[3][2] == "within seed noise"
    results.write(str(tmp_path), str(tmp_path / "out"))
    assert results.targets_table(res) in (tmp_path / "out.md").read_text()


def test_from_json_rerenders_the_same_page_without_the_workdirs(tmp_path):
    root = tmp_path / "runs"
    _run(root, "idmvae_seed0", {"probe/z_shared": 0.9, "probe/w_shared": 0.2})
    _run(root, "mmvaeplus_seed0", {"probe/z_shared": 0.4, "probe/w_shared": 0.5})
    prefix = str(tmp_path / "docs" / "results")
    os.makedirs(tmp_path / "docs")
    (tmp_path / "pre.md").write_text("# Results\n\nold text\n")
    results.main([f"--root={root}", f"--out={prefix}", f"--preamble={tmp_path / 'pre.md'}"])
    page = open(prefix + ".md").read()
    assert "idmvae_seed0_cross_generation_gaussian.png" in page
    shutil.rmtree(root)
    (tmp_path / "pre.md").write_text("# Results\n\nold text\n")
    results.main(["--from_json", f"--out={prefix}", f"--preamble={tmp_path / 'pre.md'}"])
    assert open(prefix + ".md").read() == page
    (tmp_path / "pre.md").write_text("# Results\n\nnew text\n")
    results.main(["--from_json", f"--out={prefix}", f"--preamble={tmp_path / 'pre.md'}"])
    assert open(prefix + ".md").read() == page.replace("old text", "new text")
    with pytest.raises(SystemExit):
        results.main([f"--out={prefix}"])  # neither --root nor --from_json


def test_curve_table_has_one_row_per_step_count_in_order(tmp_path):
    for steps, z in ((3000, 0.8), (500, 0.2), (1500, 0.6)):
        (tmp_path / f"metrics_{steps}.json").write_text(json.dumps({"probe/z_shared": z, "coherence/self": 0.1}))
    (tmp_path / "metrics.json").write_text("{}")  # not a step count: ignored
    (tmp_path / "metrics_4000.json").write_text(json.dumps({"probe/z_shared": "nan"}))  # as evaluate writes NaN
    rows = results.curve_table(str(tmp_path)).splitlines()
    assert rows[0].startswith("| steps | z→digit ↑ | z→quad ↓ |")
    cells = [[c.strip() for c in row.strip("|").split("|")] for row in rows[2:]]
    assert [c[:3] for c in cells] == [["500", "0.200", "—"], ["1,500", "0.600", "—"], ["3,000", "0.800", "—"],
                                      ["4,000", "nan", "—"]]
    assert [c[5] for c in cells] == ["0.100"] * 3 + ["—"]  # coherence/self
    with pytest.raises(FileNotFoundError, match="train_curve.sh"):
        results.curve_table(str(tmp_path / "empty"))


def test_curves_are_seed_means_and_stds_at_the_steps_every_seed_has(tmp_path):
    """collect_curves: per variant and probe, numpy's mean and ddof-1 std over the seeds at each
    step all seeds share; the report's reader (evaluation.baseline) gets the same numbers back."""
    from idmvae_jax.evaluation import baseline

    values = {0: [0.10, 0.30, 0.60], 1: [0.12, 0.34, 0.64], 2: [0.11, 0.31, 0.70]}
    for seed, zs in values.items():
        wd = _run(tmp_path, f"mmvaeplus_seed{seed}", {"probe/z_shared": zs[-1]},
                  info={"commit": "c0ffee", "config": "configs/x.py:quick,mmvaeplus"})
        rows = [{"step": s, "probe/z_shared": z, "probe/w_private": 0.25 + z / 2}
                for s, z in zip((100, 200, 300), zs)]
        if seed == 1:
            rows.append({"step": 400, "probe/z_shared": 0.9, "probe/w_private": 0.9})  # only one seed has it
        (wd / "eval" / "probe_curve.json").write_text(json.dumps(rows))
    _run(tmp_path, "idmvae_seed0", {"probe/z_shared": 0.9})  # no curve file: no curve
    res = results.collect(results.find_runs(str(tmp_path)))
    curve = res["curves"]["mmvaeplus"]
    assert curve["steps"] == [100, 200, 300] and curve["seeds"] == [0, 1, 2]
    table = np.array([values[s] for s in (0, 1, 2)])  # (seeds, steps)
    z = curve["probes"]["probe/z_shared"]
    np.testing.assert_allclose(z["mean"], table.mean(axis=0))
    np.testing.assert_allclose(z["std"], table.std(axis=0, ddof=1))
    np.testing.assert_allclose(curve["probes"]["probe/w_private"]["mean"], (0.25 + table / 2).mean(axis=0))
    assert "idmvae" not in res["curves"]

    path = tmp_path / "results.json"
    path.write_text(json.dumps(res))
    [ref] = baseline.load_reference_curves(str(path))
    assert ref.label == "MMVAE+" and ref.seeds == [0, 1, 2] and ref.commits == ["c0ffee"]
    assert ref.configs == ["configs/x.py:quick,mmvaeplus"]
    mean, std = ref.at("probe/z_shared", 200)
    assert mean == pytest.approx(table[:, 1].mean()) and std == pytest.approx(table[:, 1].std(ddof=1))
    assert ref.at("probe/z_shared", 400) is None
    assert baseline.resolve(str(path)) == str(path) and baseline.resolve("no/such/results.json") is None


def test_curves_figure_and_a_named_readme_block(tmp_path):
    """write() draws the variants' curves into PREFIX_figures/probe_curves.png; --readme_block
    rewrites only its own block (the quick block beside an untouched mini block)."""
    root = tmp_path / "runs"
    for variant, z in (("idmvae", 0.4), ("mmvaeplus", 0.2)):
        for seed in (0, 1):
            wd = _run(root, f"{variant}_seed{seed}", {"probe/z_shared": z})
            (wd / "eval" / "probe_curve.json").write_text(json.dumps(
                [{"step": s, "probe/z_shared": z * s / 200 + 0.01 * seed, "probe/w_private": 0.9} for s in (100, 200)]))
    prefix = str(tmp_path / "out" / "results_quick")
    os.makedirs(os.path.dirname(prefix))
    with pytest.raises(ValueError, match="unknown targets"):
        results.write(str(root), prefix, target_names=["spread", "no_such_target"])
    res = results.write(str(root), prefix, target_names=["spread"])
    [(target, measured, verdict)] = results.targets(res)  # only the chosen target is checked
    assert "3× the seeds' spread" in target and verdict == "yes"  # 0.4 vs 0.2 in every seed
    assert f"![probe curves]({os.path.basename(prefix)}_figures/{results.CURVES_FIGURE})" in open(prefix + ".md").read()
    figure = os.path.join(prefix + "_figures", results.CURVES_FIGURE)
    assert open(figure, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    readme = tmp_path / "README.md"
    start_q, end_q = results.readme_markers("quick")
    readme.write_text(f"{results.README_START}\nmini 0.5\n{results.README_END}\n{start_q}\nold\n{end_q}\n")
    results.update_readme(str(readme), results.readme_section(res, prefix, str(tmp_path)), "quick")
    text = readme.read_text()
    assert "mini 0.5" in text and "old" not in text
    quick_block = text[text.index(start_q):text.index(end_q)]
    assert "out/results_quick_figures/probe_curves.png" in quick_block and "| IDMVAE |" in quick_block

"""The training console: one plain-text line per log step with every loss term, cross_mi against
its chance value, metrics.jsonl's steps_per_sec and a wall-clock ETA (`writers.Progress`)."""
import io
import math
import re

import pytest

from idmvae_jax import objective
from idmvae_jax.training import writers

SCALARS = {"elbo": 11283.4, "recon": 11279.1, "kl": 1.53812, "cross_mi": 18.0712, "genaug": 17.3345,
           "diffusion": 0.123456, "total": 13075.2, "grad_norm": 2511.3, "steps_per_sec": 1.2345678,
           "examples_per_sec": 39.5}
CHANCE = objective.cross_view_infonce_chance(5, 32)


def _started(total=100, start=0, step=10, elapsed=5.0, monkeypatch=None, **kwargs):
    """A Progress started at `start` whose clock reads `elapsed` seconds later."""
    now = [1000.0]
    monkeypatch.setattr(writers.time, "perf_counter", lambda: now[0])
    progress = writers.Progress(total, start, stream=io.StringIO(), **kwargs)
    progress.start(start)
    now[0] += elapsed
    return progress


def test_every_term_in_a_fixed_order_at_four_significant_digits(monkeypatch):
    progress = _started(monkeypatch=monkeypatch, chance={"cross_mi": CHANCE})
    shuffled = dict(reversed(list(SCALARS.items())))
    line = progress.line(10, shuffled)
    assert line == progress.line(10, SCALARS)  # the order is the console's, not the dict's
    terms = line.split(" | ")[1]
    assert terms == ("total=13075 elbo=11283 recon=11279 kl=1.538 cross_mi=18.07 (chance 20.72) "
                     "genaug=17.33 diffusion=0.1235 grad_norm=2511")
    assert "examples_per_sec" not in line and "steps_per_sec" not in line  # rates are not terms


def test_hidden_terms_and_unknown_scalars(monkeypatch):
    progress = _started(monkeypatch=monkeypatch, hide=["genaug", "diffusion"])
    terms = progress.line(10, {**SCALARS, "zeta": 2.0, "alpha": 1e-5, "note": "text"}).split(" | ")[1]
    names = [t.split("=")[0] for t in terms.split(" ")]
    assert names == ["total", "elbo", "recon", "kl", "cross_mi", "grad_norm", "alpha", "zeta"]
    assert "alpha=1e-05" in terms


@pytest.mark.parametrize("value, text", [(13075.2, "13075"), (2511.3, "2511"), (0.000123456, "0.0001235"),
                                         (1.23456e8, "1.235e+08"), (-4.56789, "-4.568"),
                                         (float("nan"), "nan"), (float("inf"), "inf")])
def test_format_value(value, text):
    assert writers.format_value(value) == text


def test_chance_is_shown_next_to_cross_mi(monkeypatch):
    line = _started(monkeypatch=monkeypatch, chance={"cross_mi": CHANCE}).line(10, SCALARS)
    assert re.search(r"cross_mi=18\.07 \(chance 20\.72\) genaug=", line)
    assert line.count("chance") == 1


def test_rate_is_the_passed_steps_per_sec_and_the_eta_is_wall_time(monkeypatch):
    # 10 steps in 5 wall seconds (checkpoints included): 2 steps/s on the wall clock -> 90 steps
    # left take 45 s; the passed rate (metrics.jsonl's, checkpoints left out) is shown as is
    progress = _started(monkeypatch=monkeypatch, total=100, start=0, elapsed=5.0)
    line = progress.line(10, SCALARS, steps_per_sec=3.14159)
    assert re.search(r"\| (\S+) steps/s \|", line).group(1) == "3.142"
    assert float(re.search(r"\| (\S+) steps/s \|", line).group(1)) == pytest.approx(3.14159, rel=1e-3)
    assert line.endswith("| elapsed 00:05 | ETA 00:45")
    # by default the rate is the scalars' steps_per_sec, the number metrics.jsonl records
    assert "| 1.235 steps/s |" in progress.line(10, SCALARS)
    no_rate = {k: v for k, v in SCALARS.items() if k != "steps_per_sec"}
    assert "| -- steps/s |" in progress.line(10, no_rate)


def test_extra_seconds_after_the_eta(monkeypatch):
    progress = _started(monkeypatch=monkeypatch, total=100, elapsed=5.0, extra_seconds=754.0)
    assert progress.line(10, SCALARS).endswith("| ETA 13:19 (training 00:45 + evaluation ~12:34)")
    plain = _started(monkeypatch=monkeypatch, total=100, elapsed=5.0)
    assert plain.line(10, SCALARS).endswith("| ETA 00:45")
    labelled = _started(monkeypatch=monkeypatch, total=100, elapsed=5.0, extra_seconds=3725.0,
                        extra_label="eval")
    assert labelled.line(10, SCALARS).endswith("| ETA 1:02:50 (training 00:45 + eval ~1:02:05)")


def test_report_writes_plain_lines(monkeypatch):
    progress = _started(monkeypatch=monkeypatch, chance={"cross_mi": CHANCE}, extra_seconds=60.0)
    progress.report(10, SCALARS)
    progress.report(20, {**SCALARS, "cross_mi": float("nan")})
    writers.Progress(100, active=False, stream=progress.stream).report(30, SCALARS)  # not process 0
    text = progress.stream.getvalue()
    assert text.count("\n") == 2 and text.endswith("\n")
    assert "\r" not in text and "\x1b" not in text
    assert all(ch == "\n" or ch.isprintable() for ch in text)
    assert "cross_mi=nan (chance 20.72)" in text


def test_before_the_first_step_the_eta_is_unknown(monkeypatch):
    progress = _started(monkeypatch=monkeypatch, start=10, elapsed=0.0)
    assert progress.line(10, {}).endswith("| -- steps/s | elapsed 00:00 | ETA --:--")
    assert math.isclose(CHANCE, 5 * math.log(63))

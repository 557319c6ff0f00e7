"""Workload tests: arrival processes against their definitions, length distributions against their
parameters, the Workload container's invariants and errors, the named workloads against their
stored trace statistics, and (when the trace files are present) the loaders against the traces."""
import math
import os
from pathlib import Path

import numpy as np
import pytest

from pdlib import workload as wl
from pdlib.workload import Request, Workload


def cv_of(x: np.ndarray) -> float:
    return float(np.std(x) / np.mean(x))


# ------------------------------------------------------------------ arrival processes
def test_poisson_arrivals_mean_gap_and_cv():
    rate = 4.0
    t = wl.poisson_arrivals(rate, 100_000, seed=1)
    gaps = np.diff(t)
    assert t[0] == 0.0 and len(t) == 100_000
    assert gaps.mean() == pytest.approx(1 / rate, rel=0.02)
    assert cv_of(gaps) == pytest.approx(1.0, rel=0.02)


@pytest.mark.parametrize("cv", [0.5, 2.0, 4.0])
def test_gamma_arrivals_cv(cv):
    rate = 10.0
    gaps = np.diff(wl.gamma_arrivals(rate, 200_000, cv, seed=2))
    assert gaps.mean() == pytest.approx(1 / rate, rel=0.02)
    assert cv_of(gaps) == pytest.approx(cv, rel=0.03)


def test_fixed_and_trace_arrivals():
    np.testing.assert_array_equal(wl.fixed_arrivals(4.0, 5), [0, 0.25, 0.5, 0.75, 1.0])
    np.testing.assert_array_equal(wl.trace_arrivals([10.0, 10.5, 12.0]), [0.0, 0.5, 2.0])
    with pytest.raises(ValueError, match=r"timestamps\[2\]"):
        wl.trace_arrivals([1.0, 2.0, 1.5])
    with pytest.raises(ValueError, match="finite"):
        wl.trace_arrivals([1.0, np.nan])


def test_arrivals_rescale_exactly_with_rate():
    # gaps are standard draws / rate: the same seed at twice the rate halves every arrival time
    np.testing.assert_allclose(wl.poisson_arrivals(8.0, 1000, seed=5),
                               wl.poisson_arrivals(4.0, 1000, seed=5) / 2, rtol=1e-12)
    np.testing.assert_allclose(wl.gamma_arrivals(8.0, 1000, 3.0, seed=5),
                               wl.gamma_arrivals(4.0, 1000, 3.0, seed=5) / 2, rtol=1e-12)


@pytest.mark.parametrize("call, match", [
    (lambda: wl.poisson_arrivals(0.0, 10), "rate"),
    (lambda: wl.poisson_arrivals(-1.0, 10), "rate"),
    (lambda: wl.poisson_arrivals(math.inf, 10), "rate"),
    (lambda: wl.poisson_arrivals(1.0, 0), "n "),
    (lambda: wl.gamma_arrivals(1.0, 10, 0.0), "cv"),
    (lambda: wl.fixed_arrivals(1.0, -3), "n "),
])
def test_arrival_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ------------------------------------------------------------------ length distributions
def test_seeds_reproduce_exactly():
    a = wl.poisson(3.0, 2000, wl.lognormal(512, 2048), wl.uniform(10, 200), seed=7)
    b = wl.poisson(3.0, 2000, wl.lognormal(512, 2048), wl.uniform(10, 200), seed=7)
    c = wl.poisson(3.0, 2000, wl.lognormal(512, 2048), wl.uniform(10, 200), seed=8)
    for col in ("arrival", "prompt", "output"):
        np.testing.assert_array_equal(getattr(a, col), getattr(b, col))
        assert not np.array_equal(getattr(a, col), getattr(c, col))
    g1, g2 = wl.gamma(3.0, 500, 2.0, 100, wl.lognormal(50, 200), seed=3), wl.gamma(3.0, 500, 2.0, 100, wl.lognormal(50, 200), seed=3)
    np.testing.assert_array_equal(g1.arrival, g2.arrival)
    np.testing.assert_array_equal(g1.output, g2.output)
    n1, n2 = wl.named("azure-conv", 500, seed=4), wl.named("azure-conv", 500, seed=4)
    np.testing.assert_array_equal(n1.prompt, n2.prompt)
    np.testing.assert_array_equal(n1.arrival, n2.arrival)


def test_streams_are_independent():
    # arrivals come from default_rng(seed), whatever the lengths; changing prompts leaves outputs alone
    a = wl.poisson(2.0, 300, 100, wl.lognormal(50, 200), seed=1)
    b = wl.poisson(2.0, 300, wl.uniform(1, 9), wl.lognormal(50, 200), seed=1)
    np.testing.assert_array_equal(a.arrival, wl.poisson_arrivals(2.0, 300, seed=1))
    np.testing.assert_array_equal(a.arrival, b.arrival)
    np.testing.assert_array_equal(a.output, b.output)


def test_contract_call():
    reqs = wl.poisson(rate=4.0, n=10_000, prompt=512, output=128, seed=0)
    assert len(reqs) == 10_000
    assert reqs.prompt.dtype == np.int64 and reqs.arrival.dtype == np.float64
    assert set(reqs.prompt) == {512} and set(reqs.output) == {128}
    assert reqs.rate == pytest.approx(4.0, rel=0.03)


def test_lognormal_median_and_p90():
    d = wl.lognormal(512, 2048)
    assert d.sigma == pytest.approx(math.log(4) / 1.2815515655446004)
    x = d.sample(100_000, 0)
    assert np.median(x) == pytest.approx(512, rel=0.03)
    assert np.percentile(x, 90) == pytest.approx(2048, rel=0.03)
    # sigma = 1 exactly when p90 / median = e^z90
    assert wl.lognormal(100, 100 * math.exp(1.2815515655446004)).sigma == pytest.approx(1.0)
    capped = wl.lognormal(512, 2048, max=1000).sample(10_000, 1)
    assert capped.max() == 1000 and capped.min() >= 1


def test_fixed_and_uniform():
    np.testing.assert_array_equal(wl.fixed(7).sample(4, 0), [7, 7, 7, 7])
    x = wl.uniform(10, 20).sample(100_000, 0)
    assert x.min() == 10 and x.max() == 20 and x.dtype == np.int64
    assert x.mean() == pytest.approx(15, rel=0.01)
    assert repr(wl.uniform(10, 20)) == "uniform(10, 20)"
    assert repr(wl.lognormal(512, 2048)) == "lognormal(median=512, p90=2048)"


def test_empirical_quantiles_respected():
    d = wl.empirical({0: 10, 0.5: 100, 0.9: 400, 1: 1000})
    x = d.sample(200_000, 3)
    assert x.min() >= 10 and x.max() <= 1000
    # piecewise linear between knots: P25 is halfway from 10 to 100, P70 halfway from 100 to 400
    for q, want in [(0.25, 55), (0.5, 100), (0.7, 250), (0.9, 400), (0.95, 700)]:
        assert np.quantile(x, q) == pytest.approx(want, rel=0.02), q
    assert d.quantile(0.95) == pytest.approx(700)
    assert "P90=400" in repr(d)


def test_empirical_from_observations():
    obs = np.random.default_rng(0).integers(1, 1000, 5000)
    x = wl.empirical(obs).sample(100_000, 1)
    for q in (0.1, 0.5, 0.9):
        assert np.quantile(x, q) == pytest.approx(np.quantile(obs, q), rel=0.02)


@pytest.mark.parametrize("call, match", [
    (lambda: wl.fixed(0), "fixed"),
    (lambda: wl.uniform(5, 2), "lo <= hi"),
    (lambda: wl.lognormal(512, 512), "median < p90"),
    (lambda: wl.lognormal(512, 2048, max=0), "max"),
    (lambda: wl.empirical({0.5: 10, 1: 20}), "start at 0"),
    (lambda: wl.empirical({0: 10, 0.9: 20}), "end at 1"),
    (lambda: wl.empirical({0: 10, 0.5: 5, 1: 20}), "P50"),
    (lambda: wl.empirical([3]), "at least 2"),
])
def test_length_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_bad_length_type():
    with pytest.raises(TypeError, match="LengthDist"):
        wl.poisson(1.0, 10, prompt="512", output=1)


# ------------------------------------------------------------------ the Workload container
def small() -> Workload:
    return Workload([0.0, 1.0, 1.0, 4.0], [10, 20, 30, 40], [1, 2, 3, 4], name="s")


def test_workload_views():
    w = small()
    assert len(w) == 4 and w.rate == pytest.approx(3 / 4.0) and w.duration == 4.0
    assert w[1] == Request(1, 1.0, 20, 2)
    assert w[-1] == Request(3, 4.0, 40, 4)
    assert [r.prompt for r in w] == [10, 20, 30, 40]
    assert w.requests()[2].id == 2
    df = w.to_frame()
    assert list(df.columns) == ["id", "arrival", "prompt", "output"]
    assert df["output"].sum() == 10
    d = w.describe()
    assert d["prompt_median"] == 25 and d["prompt_mean"] == 25 and d["prompt_p90"] == pytest.approx(37)
    assert len(w.head(2)) == 2 and w.head(2).prompt.tolist() == [10, 20]
    assert w[1:3].prompt.tolist() == [20, 30]
    with pytest.raises(IndexError):
        w[4]
    with pytest.raises(ValueError):  # read-only: a Workload never changes under the simulator
        w.arrival[0] = 5.0


def test_scale_rate_and_with_rate():
    w = wl.poisson(2.0, 1000, 100, 10, seed=0)
    np.testing.assert_allclose(w.scale_rate(3.0).arrival, w.arrival / 3.0)
    assert w.with_rate(5.0).rate == pytest.approx(5.0, rel=1e-12)
    np.testing.assert_allclose(w.scale_rate(2.0).arrival, wl.poisson(4.0, 1000, 100, 10, seed=0).arrival,
                               rtol=1e-12)
    np.testing.assert_array_equal(w.with_rate(5.0).prompt, w.prompt)
    with pytest.raises(ValueError, match="factor"):
        w.scale_rate(0.0)
    with pytest.raises(ValueError, match="at least 2"):
        w.head(1).with_rate(2.0)


def test_merge_sorts_and_renumbers():
    a = Workload([0.0, 2.0], [1, 2], [1, 1], name="a", prefix_blocks=((1, 2), (3,)))
    b = Workload([1.0, 2.0], [3, 4], [1, 1], name="b")
    m = wl.merge(a, b)
    assert m.arrival.tolist() == [0.0, 1.0, 2.0, 2.0]
    assert m.prompt.tolist() == [1, 3, 2, 4]      # tie at 2 s keeps argument order
    assert m.prefix_blocks == ((1, 2), (), (3,), ())
    assert m.name == "a+b" and m[3].id == 3
    with pytest.raises(ValueError, match="at least one"):
        wl.merge()


def test_from_requests_round_trip():
    reqs = [Request(0, 2.0, 5, 6), Request(1, 1.0, 7, 8, (4, 5))]
    w = Workload.from_requests(reqs)
    assert w.arrival.tolist() == [1.0, 2.0] and w.prompt.tolist() == [7, 5]
    assert w.prefix_blocks == ((4, 5), ())
    assert w[0] == Request(0, 1.0, 7, 8, (4, 5))


@pytest.mark.parametrize("kwargs, match", [
    (dict(arrival=[0.0, 2.0, 1.0], prompt=[1, 1, 1], output=[1, 1, 1]), r"sorted.*arrival\[2\]"),
    (dict(arrival=[0.0, 1.0], prompt=[1, 1, 1], output=[1, 1]), "same length"),
    (dict(arrival=[0.0, 1.0], prompt=[5, 0], output=[1, 1]), r"prompt\[1\] = 0"),
    (dict(arrival=[0.0, 1.0], prompt=[5, 5], output=[1, -2]), r"output\[1\] = -2"),
    (dict(arrival=[0.0, 1.0], prompt=[5, 5.5], output=[1, 1]), r"whole.*prompt\[1\]"),
    (dict(arrival=[-1.0, 1.0], prompt=[5, 5], output=[1, 1]), r">= 0 s; arrival\[0\]"),
    (dict(arrival=[0.0, np.nan], prompt=[5, 5], output=[1, 1]), r"finite.*arrival\[1\]"),
    (dict(arrival=[0.0, 1.0], prompt=[5, 5], output=[1, 1], prefix_blocks=((1,),)), "one entry per request"),
])
def test_workload_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Workload(**kwargs)


# ------------------------------------------------------------------ named workloads
def test_named_catalog_and_errors():
    assert wl.named_workloads() == ["azure-code", "azure-conv", "sharegpt", "arxiv-summarization",
                                    "mooncake-conversation", "mooncake-synthetic"]
    with pytest.raises(KeyError, match="azure-code.*mooncake-synthetic"):
        wl.named("alpaca", 10)
    with pytest.raises(ValueError, match="pass rate="):
        wl.named("sharegpt", 10)
    with pytest.raises(ValueError, match="no measured cv"):
        wl.named("arxiv-summarization", 10, rate=1.0, cv="trace")
    for name in wl.named_workloads():
        info = wl.trace_info(name)
        assert info.file and "http" in info.source and info.prompt.levels == wl.TRACE_LEVELS
        assert info.prompt.values[0] >= 1 and info.prompt.quantile(0.5) == info.prompt_stats.median
        assert info.output.quantile(0.9) == info.output_stats.p90


@pytest.mark.parametrize("name", wl.named_workloads())
def test_named_reproduces_stored_statistics(name):
    info = wl.trace_info(name)
    w = wl.named(name, 40_000, rate=info.rate or 2.0, seed=0)
    d = w.describe()
    for label, stats in (("prompt", info.prompt_stats), ("output", info.output_stats)):
        assert d[f"{label}_median"] == pytest.approx(stats.median, rel=0.05), label
        assert d[f"{label}_p90"] == pytest.approx(stats.p90, rel=0.05), label
        assert d[f"{label}_mean"] == pytest.approx(stats.mean, rel=0.10), label
    if info.rate is not None:
        assert wl.named(name, 5000).rate == pytest.approx(info.rate, rel=0.05)


def test_named_arrival_options():
    w = wl.named("azure-conv", 2000, seed=3)
    np.testing.assert_array_equal(w.arrival, wl.poisson_arrivals(wl.trace_info("azure-conv").rate, 2000, 3))
    bursty = wl.named("mooncake-conversation", 50_000, cv="trace", seed=3)
    assert cv_of(np.diff(bursty.arrival)) == pytest.approx(3.03, rel=0.1)


# ------------------------------------------------------------------ loaders on small files
def test_loaders_on_small_files(tmp_path):
    az = tmp_path / "az.csv"
    az.write_text("arrived_at,num_prefill_tokens,num_decode_tokens\n5.0,100,0\n5.5,200,7\n5.25,300,8\n")
    w = wl.load_azure_csv(az)
    assert w.arrival.tolist() == [0.0, 0.25, 0.5] and w.prompt.tolist() == [100, 300, 200]
    assert w.output.tolist() == [1, 8, 7]            # the 0-token output counts as 1 token
    assert w.name == "az"
    mc = tmp_path / "mc.jsonl"
    mc.write_text('{"timestamp": 3000, "input_length": 600, "output_length": 2, "hash_ids": [0, 1]}\n'
                  '{"timestamp": 1500, "input_length": 100, "output_length": 0, "hash_ids": [2]}\n')
    m = wl.load_mooncake_jsonl(mc)
    assert m.arrival.tolist() == [0.0, 1.5] and m.output.tolist() == [1, 2]
    assert m.prefix_blocks == ((2,), (0, 1))
    ln = tmp_path / "len.csv"
    ln.write_text("num_prefill_tokens,num_decode_tokens\n10,20\n30,40\n50,60\n")
    s = wl.load_lengths_csv(ln, rate=2.0, seed=1)
    np.testing.assert_array_equal(s.arrival, wl.poisson_arrivals(2.0, 3, 1))
    assert s.prompt.tolist() == [10, 30, 50]


def test_loader_errors(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("arrived_at,num_prefill_tokens\n0.0,5\n")
    with pytest.raises(ValueError, match="missing column.*num_decode_tokens"):
        wl.load_azure_csv(bad)
    with pytest.raises(ValueError, match="missing column.*num_decode_tokens"):
        wl.load_lengths_csv(bad, rate=1.0)
    neg = tmp_path / "neg.csv"
    neg.write_text("arrived_at,num_prefill_tokens,num_decode_tokens\n0.0,5,3\n1.0,-5,3\n")
    with pytest.raises(ValueError, match="num_prefill_tokens.*data row 1"):
        wl.load_azure_csv(neg)
    mc = tmp_path / "mc.jsonl"
    mc.write_text('{"timestamp": 0, "input_length": 5}\n')
    with pytest.raises(ValueError, match="line 1: missing field.*output_length"):
        wl.load_mooncake_jsonl(mc)


# ------------------------------------------------------------------ the real traces (when present)
def traces_dir() -> Path:
    env = os.environ.get("PDLIB_TRACES")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "traces"


@pytest.fixture(scope="module")
def traces() -> dict[str, Workload]:
    d = traces_dir()
    if not (d / "splitwise_code.csv").exists():
        pytest.skip(f"real traces not found in {d} (set PDLIB_TRACES to their folder)")
    return {
        "azure-code": wl.load_azure_csv(d / "splitwise_code.csv"),
        "azure-conv": wl.load_azure_csv(d / "splitwise_conv.csv"),
        "sharegpt": wl.load_lengths_csv(d / "sharegpt_8k_filtered_stats_llama2_tokenizer.csv", rate=2.0),
        "arxiv-summarization": wl.load_lengths_csv(
            d / "arxiv_summarization_stats_llama2_tokenizer_filtered_v2.csv", rate=2.0),
        "mooncake-conversation": wl.load_mooncake_jsonl(d / "mooncake_conversation_trace.jsonl"),
        "mooncake-synthetic": wl.load_mooncake_jsonl(d / "mooncake_synthetic_trace.jsonl"),
    }


# The traces' README (/work/shared/traces/README.md): rows; prompt and output median / mean / P90.
README = {
    "azure-code": (8_819, (1469, 2048, 5194), (13, 28, 55)),
    "azure-conv": (19_366, (1020, 1155, 2735), (129, 211, 424)),
    "sharegpt": (30_731, (1730, 2340, 5696), (415, 439, 834)),
    "arxiv-summarization": (28_257, (2730, 2588, 3702), (167, 291, 372)),
    "mooncake-conversation": (12_031, (6909, 12035, 27367), (350, 343, 597)),
    "mooncake-synthetic": (3_993, (11587, 15325, 38615), (69, 149, 389)),
}


@pytest.mark.parametrize("name", list(README))
def test_traces_match_readme(traces, name):
    w = traces[name]
    rows, prompt, output = README[name]
    assert len(w) == rows
    d = w.describe()
    for label, (median, mean, p90) in (("prompt", prompt), ("output", output)):
        assert d[f"{label}_median"] == pytest.approx(median, abs=2), label
        assert d[f"{label}_mean"] == pytest.approx(mean, rel=0.01, abs=1), label
        assert d[f"{label}_p90"] == pytest.approx(p90, rel=0.01, abs=2), label
    # the stored statistics and quantile knots are exactly what the file gives
    info = wl.trace_info(name)
    assert info.rows == rows and (info.prompt_stats, info.output_stats) == (prompt, output)
    for col, dist in (("prompt", info.prompt), ("output", info.output)):
        np.testing.assert_array_equal(np.quantile(getattr(w, col), wl.TRACE_LEVELS, method="inverted_cdf"),
                                      dist.values)


@pytest.mark.parametrize("name, readme_rate", [("azure-code", 2.6), ("azure-conv", 5.5),
                                               ("mooncake-conversation", 3.4)])
def test_trace_rates(traces, name, readme_rate):
    w, info = traces[name], wl.trace_info(name)
    assert w.rate == pytest.approx(readme_rate, rel=0.10)
    assert w.rate == pytest.approx(info.rate, rel=1e-3)
    assert cv_of(np.diff(w.arrival)) == pytest.approx(info.cv, rel=0.01)


def test_trace_synthetic_rate_and_prefix_blocks(traces):
    w = traces["mooncake-synthetic"]
    assert w.rate == pytest.approx(wl.trace_info("mooncake-synthetic").rate, rel=1e-3)
    for name in ("mooncake-conversation", "mooncake-synthetic"):
        m = traces[name]
        # one block id per 512-token block of the prompt
        assert [len(b) for b in m.prefix_blocks] == np.ceil(m.prompt / 512).astype(int).tolist()
        seen, hits, total = set(), 0, 0
        for blocks in m.prefix_blocks:
            for b in blocks:
                hits += b in seen
                seen.add(b)
            total += len(blocks)
        assert hits / total == pytest.approx(wl.trace_info(name).block_reuse, abs=0.001)

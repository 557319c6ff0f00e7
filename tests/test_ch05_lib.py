"""Chapter 05 library parts: pool plots (pdlib.viz.pools) and the exercise checkers (ch05)."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

import pdlib  # noqa: E402
from pdlib import reproduce as rp  # noqa: E402
from pdlib import sim, workload  # noqa: E402
from pdlib.exercises import check, ids  # noqa: E402
from pdlib.viz import pools  # noqa: E402


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def _disagg(transfer="layerwise", first_token="decode", link="100GbE"):
    return sim.disaggregated(model="OPT-13B", prefill_gpu="A100-80GB", decode_gpu="A100-80GB",
                             link=link, transfer=transfer, first_token=first_token)


def test_request_phases_of_a_lone_request_match_the_cost_model():
    w = workload.poisson(rate=0.5, n=1, prompt=512, output=8, seed=0)
    for transfer in ("layerwise", "whole"):
        res = sim.simulate(_disagg(transfer), w)
        ph = pools.request_phases(res, 0).set_index("phase")
        # phases are contiguous and start at the arrival
        assert ph.start.iloc[0] == pytest.approx(w.arrival[0])
        assert ph.start.iloc[1:].to_numpy() == pytest.approx(ph.end.iloc[:-1].to_numpy())
        assert ph.loc["queue", "end"] - ph.loc["queue", "start"] == pytest.approx(0.0)
        pre = pdlib.CostModel("OPT-13B", "A100-80GB").prefill(512).time
        assert ph.loc["prefill", "end"] - ph.loc["prefill", "start"] == pytest.approx(pre, rel=1e-6)
        xfer = pdlib.kv_transfer_time("OPT-13B", 512, "100GbE", mode=transfer, prefill_time=pre)
        assert ph.loc["KV transfer", "end"] - ph.loc["KV transfer", "start"] == pytest.approx(xfer, rel=1e-6)
        assert ph.loc["decode", "end"] == pytest.approx(w.arrival[0] + res.requests.e2e[0])


def test_request_phases_distserve_convention_and_errors():
    w = workload.poisson(rate=0.5, n=1, prompt=512, output=8, seed=0)
    a = pools.request_phases(sim.simulate(_disagg(first_token="decode"), w), 0)
    b = pools.request_phases(sim.simulate(_disagg(first_token="prefill"), w), 0)
    # the phases are the same physical events whichever moment the client sees token 1
    assert a.start.to_numpy() == pytest.approx(b.start.to_numpy())
    col = sim.simulate(sim.colocated(model="OPT-13B", gpu="A100-80GB"), w)
    with pytest.raises(ValueError, match="disaggregated"):
        pools.request_phases(col, 0)


def test_plots_draw_what_they_say():
    ax = pools.plot_architecture(3, 2, "NVLink3")
    texts = [t.get_text() for t in ax.texts]
    assert sum(t.startswith("prefill ") and "GPU" in t for t in texts) == 3
    assert sum(t.startswith("decode ") and "GPU" in t for t in texts) == 2
    with pytest.raises(ValueError):
        pools.plot_architecture(0, 1)

    w = workload.poisson(rate=4, n=6, prompt=512, output=8, seed=0)
    res = sim.simulate(_disagg(), w)
    ax = pools.plot_request_path(res, [0, 1, 2])
    assert ax.get_xlabel().endswith("(ms)") and len(ax.get_yticks()) == 3

    table = pd.DataFrame({"config": ["1P1D", "2P1D"], "per_gpu": [2.0, 3.0]})
    ax = pools.plot_goodput_configs(table, 1.5, rp.DISTSERVE_PAPER)
    assert [p.get_height() for p in ax.patches] == [2.0, 3.0]
    assert len(ax.get_lines()) == 3 and "req/s/GPU" in ax.get_ylabel()

    sweep = pd.DataFrame({"shape": ["a", "a", "b", "b"], "config": ["1P1D", "2P1D"] * 2,
                          "n_prefill": [1, 2, 1, 2], "per_gpu": [1.0, 2.0, 3.0, 1.0],
                          "pd_ratio": [1.0, 2.0, 1.0, 2.0], "best": [False, True, True, False]})
    ax = pools.plot_ratio_sweep(sweep)
    assert len(ax.get_lines()) == 4                      # a line and a best-circle per shape

    grow = pd.DataFrame({"n_prefill": [1, 1, 2, 2], "n_decode": [1, 2, 1, 2],
                         "attainment": [0.1, 0.2, 0.95, 0.99], "meets": [False, False, True, True],
                         "cheapest": [False, False, True, False]})
    ax = pools.plot_pool_growth(grow)
    assert sum("★" in t.get_text() for t in ax.texts) == 1

    ax = pools.plot_decode_tpot(rp.decode_tpot_table(("A100-80GB", "L40S"), batches=(1, 4)), 0.04)
    dashed = [ln for ln in ax.get_lines() if ln.get_linestyle() == "--"]
    assert len(dashed) == 1 and "L40S" in dashed[0].get_label()      # GDDR card dashed

    hwdf = pd.DataFrame({"prefill_gpu": ["A100-80GB", "A100-80GB", "L40S"],
                         "decode_gpu": ["A100-80GB", "L40S", "A100-80GB"], "config": ["2P1D", "1P2D", "2P1D"],
                         "per_gpu": [8.0, 0.5, 10.0], "req_per_usd": [2e4, 900.0, 3e4]})
    axes = pools.plot_hardware(hwdf)
    assert [p.get_height() for p in axes[1].patches] == [2e4, 900.0, 3e4]
    # L40S decode orange, L40S prefill green; the per-dollar axis names the price list's date
    colors = [matplotlib.colors.to_hex(p.get_facecolor()) for p in axes[1].patches]
    assert colors == [matplotlib.colors.to_hex(c) for c in ("tab:blue", "tab:orange", "tab:green")]
    assert pdlib.hardware.gpu("L40S").price_date in axes[1].get_ylabel()


def test_ch05_exercises_registered_and_checked():
    assert {"ch05.goodput_3p2d", "ch05.grow_pool", "ch05.usd_per_m_tokens"} <= set(ids())
    assert check("ch05.grow_pool", None).ok is None
    assert check("ch05.grow_pool", "prefill").ok
    assert not check("ch05.grow_pool", "decode").ok
    per_gpu = rp.xpyd_goodput(3, 2).per_gpu
    assert check("ch05.goodput_3p2d", per_gpu).ok
    assert check("ch05.goodput_3p2d", per_gpu * 1.08).ok           # bisection tolerance
    assert not check("ch05.goodput_3p2d", per_gpu * 5).ok           # counted one pool only, say
    rate = rp.xpyd_goodput(2, 1).rate
    usd = rp.cost_per_million_tokens(rate, 64, rp.config_price("A100-80GB", "A100-80GB", 2, 1))
    assert check("ch05.usd_per_m_tokens", usd).ok
    assert not check("ch05.usd_per_m_tokens", usd * 1000).ok
    assert np.isfinite(usd) and 0 < usd < 10

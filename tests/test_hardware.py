"""pdlib.hardware: every catalog number pinned to its datasheet (vendor pages cited in the catalog),
prices pinned to one dated price list, link topologies, lookups, registration, validation."""
import dataclasses
import math

import pytest

from pdlib import hardware
from pdlib.hardware import GPU, Link

# Datasheets: name -> (dense BF16/FP16 TFLOP/s, memory GB, bandwidth TB/s, memory type, scale-up link)
GPU_ROWS = {
    "H100-SXM": (989, 80, 3.35, "HBM3", "NVLink4"),
    "H100-PCIe": (756, 80, 2.0, "HBM2e", "NVLink-bridge-H100-PCIe"),
    "H200-SXM": (989, 141, 4.8, "HBM3e", "NVLink4"),
    "B200": (2250, 180, 8.0, "HBM3e", "NVLink5"),
    "A100-80GB": (312, 80, 2.039, "HBM2e", "NVLink3"),
    "A100-PCIe-80GB": (312, 80, 1.935, "HBM2e", "NVLink-bridge-A100-PCIe"),
    "A100-40GB": (312, 40, 1.555, "HBM2", "NVLink3"),
    "L40S": (362, 48, 0.864, "GDDR6", "PCIe-Gen4-x16"),
    "L4": (121, 24, 0.300, "GDDR6", "PCIe-Gen4-x16"),
    "A10G": (70, 24, 0.600, "GDDR6", "PCIe-Gen4-x16"),
    "T4": (65, 16, 0.320, "GDDR6", "PCIe-Gen3-x16"),
    "MI300X": (1307, 192, 5.3, "HBM3", "Infinity-Fabric-MI300X"),
}

# ridge = FLOP/s ÷ bytes/s, FLOP/B (A10G has none: its throughput is uncertain)
RIDGES = {"H100-SXM": 295, "H100-PCIe": 378, "H200-SXM": 206, "B200": 281, "A100-80GB": 153,
          "A100-40GB": 201, "A100-PCIe-80GB": 161, "L40S": 419, "L4": 403, "T4": 203, "MI300X": 247}

# Datasheets / PCI-SIG, usable GB/s per direction (NVLink/Infinity Fabric: half the bidirectional figure)
LINK_ROWS = {
    "PCIe-Gen3-x16": 15.75, "PCIe-Gen4-x16": 31.5, "PCIe-Gen5-x16": 63, "PCIe-Gen6-x16": 121,
    "CXL-2.0-x16": 63, "CXL-3-x16": 121, "100GbE": 12.5, "IB-HDR-200G": 25, "IB-NDR-400G": 50,
    "IB-XDR-800G": 100, "HGX-H100-8x400G": 400, "NVLink3": 300, "NVLink4": 450, "NVLink5": 900,
    "NVLink-bridge-H100-PCIe": 300, "NVLink-bridge-A100-PCIe": 300, "Infinity-Fabric-MI300X": 448,
    "Mooncake-RoCE-4x200G": 87, "Mooncake-RoCE-8x400G": 190,
}


def test_catalog_holds_exactly_the_facts_rows():
    assert hardware.gpu_names() == sorted(GPU_ROWS)
    assert hardware.link_names() == sorted(LINK_ROWS)


@pytest.mark.parametrize("name", sorted(GPU_ROWS))
def test_gpu_row_matches_facts(name):
    tflops, gb, tbs, mem_type, scaleup = GPU_ROWS[name]
    g = hardware.gpu(name)
    assert g.flops == pytest.approx(tflops * 1e12)
    assert g.mem_bytes == pytest.approx(gb * 1e9)
    assert g.mem_bw == pytest.approx(tbs * 1e12)
    assert (g.mem_type, g.scaleup) == (mem_type, scaleup)
    assert g.scaleup_link is hardware.link(scaleup)
    assert g.is_hbm == mem_type.startswith("HBM")


@pytest.mark.parametrize("name", sorted(RIDGES))
def test_ridge_matches_facts_table(name):
    g = hardware.gpu(name)
    assert g.ridge == pytest.approx(g.flops / g.mem_bw)
    assert abs(g.ridge - RIDGES[name]) <= 1


def test_l40s_is_gddr_and_more_compute_heavy_per_byte_than_h100():
    l40s, h100 = hardware.gpu("L40S"), hardware.gpu("H100-SXM")
    assert not l40s.is_hbm and h100.is_hbm
    assert l40s.ridge > h100.ridge + 100          # 419 vs 295 FLOP/B
    assert "GDDR6" in l40s.note and "not HBM" in l40s.note


def test_secondary_figures_from_facts():
    assert hardware.gpu("H100-SXM").fp8_flops == 1979e12
    assert hardware.gpu("B200").fp8_flops == 4500e12
    assert hardware.gpu("L40S").fp8_flops == 733e12
    assert hardware.gpu("MI300X").fp8_flops == 2615e12
    assert hardware.gpu("A100-80GB").fp8_flops is None      # Ampere has no FP8
    t4 = hardware.gpu("T4")
    assert (t4.bf16, t4.fp32_flops) == (False, 8.1e12)
    assert all(hardware.gpu(n).bf16 for n in GPU_ROWS if n != "T4")
    watts = {"H100-SXM": 700, "H100-PCIe": 350, "B200": 1000, "A100-80GB": 400, "L4": 72, "T4": 70,
             "MI300X": 750}
    assert {n: hardware.gpu(n).tdp_watts for n in watts} == watts
    assert hardware.gpu("H100-PCIe").fp8_flops == 1513e12 and hardware.gpu("L4").fp8_flops == 242.5e12


# RunPod Secure Cloud on-demand, USD per GPU-hour, https://www.runpod.io/pricing read 2026-09-25
RUNPOD_2026_09_25 = {"H100-SXM": 3.49, "H100-PCIe": 2.89, "H200-SXM": 4.59, "B200": 6.79,
                     "A100-80GB": 1.59, "A100-PCIe-80GB": 1.59, "L40S": 1.09}


def test_prices_come_from_one_dated_list():
    assert hardware.priced_gpus() == sorted(RUNPOD_2026_09_25)
    for name, usd in RUNPOD_2026_09_25.items():
        g = hardware.gpu(name)
        assert g.price_per_hour == usd
        assert (g.price_source, g.price_date) == (
            "RunPod Secure Cloud on-demand, https://www.runpod.io/pricing", "2026-09-25")
    unpriced = [hardware.gpu(n) for n in hardware.gpu_names() if n not in RUNPOD_2026_09_25]
    assert all(g.price_per_hour is None and not g.price_source for g in unpriced)


def test_price_ordering_the_review_asked_for():
    # The old catalog had the L40S ($2.6) above the H100 ($2.45); one price list puts it far below.
    p = {n: hardware.gpu(n).price_per_hour for n in RUNPOD_2026_09_25}
    assert p["B200"] > p["H200-SXM"] > p["H100-SXM"] > p["H100-PCIe"] > p["A100-80GB"] > p["L40S"]
    # and so per FLOP/s-dollar the L40S beats the H100 (a prefill card), per byte/s-dollar it loses
    l40s, h100 = hardware.gpu("L40S"), hardware.gpu("H100-SXM")
    assert l40s.flops / l40s.price_per_hour > 1.1 * h100.flops / h100.price_per_hour
    assert l40s.mem_bw / l40s.price_per_hour < 0.9 * h100.mem_bw / h100.price_per_hour


def test_what_a_dollar_buys():
    h100, l4 = hardware.gpu("H100-SXM"), hardware.gpu("L4")
    assert h100.flops_per_usd == pytest.approx(989e12 / 3.49)
    assert h100.bw_per_usd == pytest.approx(3.35e12 / 3.49)
    assert math.isnan(l4.flops_per_usd) and math.isnan(l4.bw_per_usd)        # unpriced
    assert hardware.NOT_PRICED == "not priced"


def test_a_price_needs_its_source_and_date():
    with pytest.raises(ValueError, match="needs its price_source and price_date"):
        GPU("Cheap", 1e12, 1e9, 1e9, "GDDR6", "PCIe-Gen4-x16", price_per_hour=0.5)
    g = GPU("Cheap", 1e12, 1e9, 1e9, "GDDR6", "PCIe-Gen4-x16", price_per_hour=0.5,
            price_source="my invoice", price_date="2026-12-01")
    assert g.price_per_hour == 0.5


def test_only_a10g_is_uncertain():
    assert [n for n in GPU_ROWS if hardware.gpu(n).uncertain] == ["A10G"]
    assert "uncertain" in hardware.gpu("A10G").note


@pytest.mark.parametrize("name", sorted(LINK_ROWS))
def test_link_bandwidth_matches_facts(name):
    ln = hardware.link(name)
    assert ln.bandwidth == pytest.approx(LINK_ROWS[name] * 1e9)
    assert 0 < ln.latency < 1e-4


def test_link_kinds_and_measured_rows():
    kinds = {n: hardware.link(n).kind for n in LINK_ROWS}
    assert kinds["Infinity-Fabric-MI300X"] == "fabric"
    assert {kinds[n] for n in ("NVLink3", "NVLink4", "NVLink5", "NVLink-bridge-H100-PCIe",
                               "NVLink-bridge-A100-PCIe")} == {"nvlink"}
    assert {kinds[n] for n in ("CXL-2.0-x16", "CXL-3-x16")} == {"cxl"}
    assert kinds["IB-NDR-400G"] == kinds["100GbE"] == "network"
    measured = [n for n in LINK_ROWS if hardware.link(n).measured]
    assert sorted(measured) == ["Mooncake-RoCE-4x200G", "Mooncake-RoCE-8x400G"]
    assert all("Mooncake" in hardware.link(n).source and "FAST" in hardware.link(n).source for n in measured)


def test_one_gigabyte_over_ndr_takes_20_ms():
    assert 1e9 / hardware.link("IB-NDR-400G").bandwidth == pytest.approx(0.020)
    # one NDR NIC per GPU, eight per HGX node
    assert hardware.link("HGX-H100-8x400G").bandwidth == 8 * hardware.link("IB-NDR-400G").bandwidth
    # NVLink is quoted bidirectionally: 900 GB/s for H100 is 450 GB/s each way
    assert 2 * hardware.gpu("H100-SXM").scaleup_link.bandwidth == pytest.approx(900e9)


def test_mi300x_fabric_is_seven_peer_links():
    # AMD: 896 GB/s bidirectional summed over 7 peers = 64 GB/s each way per peer
    fabric = hardware.link("Infinity-Fabric-MI300X")
    assert fabric.peers == 7 and fabric.peer_bandwidth == pytest.approx(64e9)
    assert [fabric.group_bandwidth(n) / 1e9 for n in (2, 4, 8)] == pytest.approx([64, 192, 448])


def test_nvlink_bridges_join_pairs_only():
    for bridge, pcie in (("NVLink-bridge-H100-PCIe", "PCIe-Gen5-x16"),
                         ("NVLink-bridge-A100-PCIe", "PCIe-Gen4-x16")):
        ln = hardware.link(bridge)
        assert ln.group_link(2) is ln and ln.group_bandwidth(2) == pytest.approx(300e9)
        for n in (4, 8):
            assert ln.group_link(n) is hardware.link(pcie)
            assert ln.group_bandwidth(n) == hardware.link(pcie).bandwidth
    # NVSwitch: every GPU gets its full NVLink bandwidth whatever the group
    assert hardware.link("NVLink4").group_bandwidth(8) == pytest.approx(450e9)


def test_topology_validation():
    with pytest.raises(ValueError, match="max_group and beyond go together"):
        Link("bad", 1e9, 1e-6, "nvlink", "x", max_group=2)
    with pytest.raises(ValueError, match="peers must be > 0"):
        Link("bad", 1e9, 1e-6, "fabric", "x", peers=0)


def test_every_row_cites_a_source():
    rows = [hardware.gpu(n) for n in hardware.gpu_names()] + [hardware.link(n) for n in hardware.link_names()]
    for row in rows:
        assert row.source.startswith("http") or "et al." in row.source, row.name


def test_lookup_is_case_insensitive_and_knows_aliases():
    assert hardware.gpu("h100-sxm") is hardware.gpu("H100-SXM")
    assert hardware.link("ib-ndr-400g") is hardware.link("IB-NDR-400G")
    assert hardware.gpu("H100") is hardware.gpu("H100-SXM")
    assert hardware.gpu("h200") is hardware.gpu("H200-SXM")
    assert hardware.gpu("A100") is hardware.gpu("A100-80GB")
    g = hardware.gpu("T4")
    assert hardware.gpu(g) is g and hardware.link(g.scaleup_link) is g.scaleup_link


def test_unknown_names_raise_keyerror_listing_known_names():
    with pytest.raises(KeyError, match=r"unknown GPU 'H900'; known: A100-40GB, A100-80GB, A100-PCIe-80GB, A10G"):
        hardware.gpu("H900")
    with pytest.raises(KeyError, match=r"unknown link 'NVLink9'.*IB-NDR-400G.*PCIe-Gen5-x16"):
        hardware.link("NVLink9")


@pytest.fixture
def restore_catalog():
    gpus, links = dict(hardware._GPUS), dict(hardware._LINKS)
    yield
    hardware._GPUS.clear()
    hardware._GPUS.update(gpus)
    hardware._LINKS.clear()
    hardware._LINKS.update(links)


def test_register_link_and_gpu(restore_catalog):
    ln = hardware.register_link(Link("UALink-x4", 100e9, 1e-6, "nvlink", "https://ualinkconsortium.org/"))
    assert hardware.link("ualink-X4") is ln and "UALink-x4" in hardware.link_names()
    g = hardware.register_gpu(GPU("MyCard", 500e12, 96e9, 4e12, "HBM3", "UALink-x4", source="mine"))
    assert hardware.gpu("mycard") is g and g.scaleup_link is ln and g.ridge == pytest.approx(125)
    with pytest.raises(ValueError, match="already in the catalog"):
        hardware.register_gpu(dataclasses.replace(g, name="MYCARD"))
    with pytest.raises(ValueError, match="already in the catalog"):
        hardware.register_link(hardware.link("NVLink4"))
    faster = hardware.register_gpu(dataclasses.replace(g, name="mycard", flops=1e15), overwrite=True)
    assert hardware.gpu("MyCard") is faster and "MyCard" not in hardware.gpu_names()


def test_register_gpu_with_unknown_scaleup_link_raises(restore_catalog):
    with pytest.raises(KeyError, match="unknown link 'NoSuchLink'"):
        hardware.register_gpu(GPU("Orphan", 1e12, 1e9, 1e9, "GDDR6", "NoSuchLink"))
    assert "Orphan" not in hardware.gpu_names()


@pytest.mark.parametrize("field, value", [("flops", 0), ("mem_bytes", -80e9), ("mem_bw", 0.0),
                                          ("tdp_watts", -1), ("price_per_hour", 0)])
def test_gpu_rejects_non_positive_sizes(field, value):
    with pytest.raises(ValueError, match=f"{field} must be > 0, got {value}"):
        dataclasses.replace(hardware.gpu("H100-SXM"), **{field: value})


def test_link_validation():
    with pytest.raises(ValueError, match="bandwidth must be > 0"):
        Link("bad", 0, 1e-6, "pcie", "x")
    with pytest.raises(ValueError, match="latency must be > 0"):
        Link("bad", 1e9, -1e-6, "pcie", "x")
    with pytest.raises(ValueError, match="kind must be one of nvlink, pcie, cxl, network, fabric"):
        Link("bad", 1e9, 1e-6, "carrier-pigeon", "x")


def test_specs_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        hardware.gpu("H100-SXM").flops = 1.0

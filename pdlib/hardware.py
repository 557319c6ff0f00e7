"""GPUs and the links between them: the hardware numbers the roofline cost model needs.

A :class:`GPU` carries peak dense tensor throughput ``flops`` (FLOP/s), memory size ``mem_bytes``
(bytes) and memory bandwidth ``mem_bw`` (bytes/s). Their ratio is the roofline *ridge point*
``ridge = flops / mem_bw`` (FLOP/byte): a kernel doing fewer FLOPs per byte it reads is
bandwidth-bound. Decode sits far below every ridge here; a long prefill sits far above.

A :class:`Link` carries usable ``bandwidth`` per direction (bytes/s) and a one-way per-message
``latency`` (seconds), so moving ``n`` bytes takes about ``latency + n / bandwidth`` seconds.
Vendors quote NVLink and Infinity Fabric bandwidth *bidirectionally* (both directions summed);
the catalog halves those figures. Network links are quoted in bits/s per direction: 400 Gb/s is
50e9 bytes/s, so 1 GB takes 20 ms.

Every row cites the vendor page (or paper) its numbers come from. Lookups are case-insensitive and
accept the aliases "H100" -> "H100-SXM", "H200" -> "H200-SXM" and "A100" -> "A100-80GB".
:func:`register_gpu` and :func:`register_link` add your own hardware.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["GPU", "Link", "LINK_KINDS", "ALIASES", "NOT_PRICED", "gpu", "link", "gpu_names",
           "link_names", "priced_gpus", "register_gpu", "register_link"]

#: Allowed values of :attr:`Link.kind`.
LINK_KINDS = ("nvlink", "pcie", "cxl", "network", "fabric")

#: Short names accepted by :func:`gpu` (lower-case alias -> catalog name).
ALIASES = {"h100": "H100-SXM", "h200": "H200-SXM", "a100": "A100-80GB"}

GB = 1e9  # decimal gigabyte, as on every datasheet

#: What a table shows for a GPU the catalog's price list does not carry (never NaN).
NOT_PRICED = "not priced"


def _check_positive(obj, fields: tuple[str, ...]) -> None:
    for f in fields:
        v = getattr(obj, f)
        if v is not None and not v > 0:
            raise ValueError(f"{type(obj).__name__} {obj.name!r}: {f} must be > 0, got {v!r}")


@dataclass(frozen=True)
class Link:
    """An interconnect. ``bandwidth``: usable bytes/s per direction out of one GPU (or NIC);
    ``latency``: one-way seconds per message; ``kind``: one of :data:`LINK_KINDS`;
    ``measured``: True when the bandwidth was measured end to end rather than read off a datasheet.

    Topology, for the collectives of tensor parallelism (:meth:`group_bandwidth`):

    * ``peers``: the bandwidth is the sum over this many point-to-point links to as many peers (a
      full mesh such as AMD's Infinity Fabric: 7 links of 64 GB/s each way = 448 GB/s). A group of
      ``n`` GPUs reaches only ``n − 1`` of them. ``None``: a switch (NVSwitch) gives every GPU its
      full bandwidth whatever the group.
    * ``max_group`` / ``beyond``: the link joins at most ``max_group`` GPUs (an NVLink bridge joins
      pairs); a larger group talks over the link named ``beyond`` (PCIe).
    """
    name: str
    bandwidth: float
    latency: float
    kind: str
    source: str
    measured: bool = False
    note: str = ""
    peers: int | None = None
    max_group: int | None = None
    beyond: str | None = None

    def __post_init__(self):
        _check_positive(self, ("bandwidth", "latency", "peers", "max_group"))
        if self.kind not in LINK_KINDS:
            raise ValueError(f"Link {self.name!r}: kind must be one of {', '.join(LINK_KINDS)}, "
                             f"got {self.kind!r}")
        if (self.max_group is None) != (self.beyond is None):
            raise ValueError(f"Link {self.name!r}: max_group and beyond go together (a bridge for "
                             f"max_group GPUs, and the link a larger group uses)")

    @property
    def peer_bandwidth(self) -> float:
        """Bytes/s per direction to one peer: ``bandwidth / peers`` (all of it without ``peers``)."""
        return self.bandwidth / (self.peers or 1)

    def group_link(self, n_gpus: int) -> "Link":
        """The link a group of ``n_gpus`` GPUs actually talks over: this one, or ``beyond`` when
        the group is larger than ``max_group`` (an NVLink bridge for pairs, PCIe for four)."""
        if self.max_group is not None and n_gpus > self.max_group:
            return link(self.beyond).group_link(n_gpus)
        return self

    def group_bandwidth(self, n_gpus: int) -> float:
        """Bytes/s per direction one GPU can drive into a collective among ``n_gpus`` GPUs:
        ``min(n − 1, peers) · peer_bandwidth`` on a mesh, the full ``bandwidth`` behind a switch,
        and the ``beyond`` link's figure for a group a bridge cannot join."""
        ln = self.group_link(n_gpus)
        if ln.peers is None:
            return ln.bandwidth
        return min(max(n_gpus - 1, 1), ln.peers) * ln.peer_bandwidth


@dataclass(frozen=True)
class GPU:
    """One accelerator. ``flops``: dense BF16 tensor FLOP/s (FP16 where there is no BF16);
    ``mem_bytes``: device memory in bytes; ``mem_bw``: memory bandwidth in bytes/s;
    ``scaleup``: name of the GPU-to-GPU link in the link catalog; ``price_per_hour``: USD per
    GPU-hour on demand, from the price list ``price_source`` as read on ``price_date`` (ISO date);
    prices move every month, so read ratios, and pass your own with :func:`dataclasses.replace`."""
    name: str
    flops: float
    mem_bytes: float
    mem_bw: float
    mem_type: str
    scaleup: str
    fp8_flops: float | None = None
    fp32_flops: float | None = None
    bf16: bool = True
    tdp_watts: float | None = None
    price_per_hour: float | None = None
    price_source: str = ""
    price_date: str = ""
    uncertain: bool = False
    source: str = ""
    note: str = ""

    def __post_init__(self):
        _check_positive(self, ("flops", "mem_bytes", "mem_bw", "fp8_flops", "fp32_flops",
                               "tdp_watts", "price_per_hour"))
        if self.price_per_hour is not None and not (self.price_source and self.price_date):
            raise ValueError(f"GPU {self.name!r}: a price_per_hour needs its price_source and "
                             f"price_date (the list it was read from, and when)")

    @property
    def ridge(self) -> float:
        """Roofline ridge point ``flops / mem_bw`` in FLOP per byte."""
        return self.flops / self.mem_bw

    @property
    def flops_per_usd(self) -> float:
        """Peak FLOP/s bought per USD per GPU-hour, ``flops / price_per_hour`` (what a prefill card
        is judged by); NaN when the GPU has no catalog price."""
        return self.flops / self.price_per_hour if self.price_per_hour else float("nan")

    @property
    def bw_per_usd(self) -> float:
        """Memory bandwidth (bytes/s) bought per USD per GPU-hour, ``mem_bw / price_per_hour``
        (what a decode card is judged by); NaN when the GPU has no catalog price."""
        return self.mem_bw / self.price_per_hour if self.price_per_hour else float("nan")

    @property
    def is_hbm(self) -> bool:
        """True for high-bandwidth-memory cards (HBM2, HBM2e, HBM3, HBM3e), False for GDDR."""
        return self.mem_type.upper().startswith("HBM")

    @property
    def scaleup_link(self) -> Link:
        """The :class:`Link` named by ``scaleup``."""
        return link(self.scaleup)


# --- links -------------------------------------------------------------------------------------
# Latencies are typical one-way small-message values (order of magnitude, not datasheet figures),
# for the α term of an α + n/β transfer model: NVLink / Infinity Fabric ~2 µs and PCIe ~2 µs end to
# end through the CUDA/NCCL stack (NCCL's own tuning tables, src/graph/tuning.cc `hwLat`, put the
# hardware part at ~0.5–2 µs per hop); InfiniBand ~3 µs (NIC + switch + software, ~1 µs for the
# wire and switch alone per NVIDIA's Quantum datasheets); RoCE / Ethernet ~10 µs.
_PCISIG = "https://pcisig.com/specifications"
_CXL = "https://computeexpresslink.org/"
_NVLINK = "https://www.nvidia.com/en-us/data-center/nvlink/"
_MOONCAKE = ("Qin et al., 'Mooncake: Trading More Storage for Less Computation', FAST'25, "
             "Transfer Engine (40 GB moved, RDMA vs TCP), "
             "https://www.usenix.org/conference/fast25/presentation/qin")

_LINKS: dict[str, Link] = {ln.name: ln for ln in [
    Link("PCIe-Gen3-x16", 15.75 * GB, 2e-6, "pcie", _PCISIG, note="8 GT/s × 16 lanes, 128b/130b"),
    Link("PCIe-Gen4-x16", 31.5 * GB, 2e-6, "pcie", _PCISIG, note="16 GT/s × 16 lanes"),
    Link("PCIe-Gen5-x16", 63 * GB, 2e-6, "pcie", _PCISIG, note="32 GT/s × 16 lanes"),
    Link("PCIe-Gen6-x16", 121 * GB, 2e-6, "pcie", _PCISIG, note="64 GT/s PAM4 × 16 lanes, FLIT mode"),
    Link("CXL-2.0-x16", 63 * GB, 2e-6, "cxl", _CXL, note="runs on the PCIe Gen5 physical layer"),
    Link("CXL-3-x16", 121 * GB, 2e-6, "cxl", _CXL,
         note="runs on the PCIe Gen6 physical layer: about one 800G NIC"),
    Link("100GbE", 12.5 * GB, 1e-5, "network", "https://www.ieee802.org/3/ba/",
         note="100 Gb/s Ethernet / RoCE"),
    Link("IB-HDR-200G", 25 * GB, 3e-6, "network",
         "https://www.nvidia.com/en-us/networking/infiniband/qm8700/", note="InfiniBand HDR, 200 Gb/s"),
    Link("IB-NDR-400G", 50 * GB, 3e-6, "network", "https://www.nvidia.com/en-us/networking/quantum2/",
         note="InfiniBand NDR, 400 Gb/s (ConnectX-7): 1 GB takes 20 ms"),
    Link("IB-XDR-800G", 100 * GB, 3e-6, "network",
         "https://www.nvidia.com/en-us/networking/products/infiniband/quantum-x800/",
         note="InfiniBand XDR, 800 Gb/s"),
    Link("HGX-H100-8x400G", 400 * GB, 3e-6, "network",
         "https://www.nvidia.com/en-us/data-center/dgx-h100/",
         note="a whole 8-GPU node: one 400G NIC per GPU, all eight used at once"),
    Link("NVLink3", 300 * GB, 2e-6, "nvlink", _NVLINK, note="A100: 600 GB/s bidirectional"),
    Link("NVLink4", 450 * GB, 2e-6, "nvlink", _NVLINK, note="H100/H200 SXM: 900 GB/s bidirectional"),
    Link("NVLink5", 900 * GB, 2e-6, "nvlink", _NVLINK, note="B200: 1.8 TB/s bidirectional"),
    Link("NVLink-bridge-H100-PCIe", 300 * GB, 2e-6, "nvlink",
         "https://www.nvidia.com/en-us/data-center/h100/", max_group=2, beyond="PCIe-Gen5-x16",
         note="NVLink bridge joining pairs of H100 PCIe cards: 600 GB/s bidirectional; "
              "tp 4 or 8 talks over PCIe Gen5"),
    Link("NVLink-bridge-A100-PCIe", 300 * GB, 2e-6, "nvlink",
         "https://www.nvidia.com/en-us/data-center/a100/", max_group=2, beyond="PCIe-Gen4-x16",
         note="NVLink bridge for 2 A100 PCIe cards: 600 GB/s bidirectional (Azure NC A100 v4 "
              "pairs its cards this way); tp 4 or 8 talks over PCIe Gen4"),
    Link("Infinity-Fabric-MI300X", 448 * GB, 2e-6, "fabric",
         "https://www.amd.com/en/products/accelerators/instinct/mi300/mi300x.html", peers=7,
         note="AMD Infinity Fabric: 7 peer links of 64 GB/s each way (896 GB/s bidirectional "
              "summed over the 7); tp 2 uses one of them, tp 8 all seven"),
    Link("Mooncake-RoCE-4x200G", 87 * GB, 1e-5, "network", _MOONCAKE, measured=True,
         note="measured: 40 GB moved at 87 GB/s over 4 × 200 Gb/s RoCE NICs"),
    Link("Mooncake-RoCE-8x400G", 190 * GB, 1e-5, "network", _MOONCAKE, measured=True,
         note="measured: 40 GB moved at 190 GB/s over 8 × 400 Gb/s RoCE NICs"),
]}

# --- GPUs --------------------------------------------------------------------------------------
# Dense (no sparsity) figures; vendors often print the 2:4-sparse number, twice these.
#
# Prices: one provider class for every card, so that ratios mean something. All are RunPod
# "Secure Cloud" on-demand prices per GPU-hour (RunPod-operated data centres, no commitment), from
# https://www.runpod.io/pricing as read on 2026-09-25 (the transcription of that page in the public
# dataset github.com/tgarg01/silybench-data, derived/csv/gpu_prices.csv, with its read date).
# The same page read on 2026-11-09 listed the H100 SXM at $3.99 and the A100 at $1.79: prices move
# by 10–15% in weeks, the ordering (H100 > A100 > L40S) does not. GPUs RunPod did not list there
# (T4, L4, A10G, A100-40GB, MI300X) carry no price rather than one from another provider class;
# the planner leaves them out of per-dollar rankings and says so.
_RUNPOD = "RunPod Secure Cloud on-demand, https://www.runpod.io/pricing"
_RUNPOD_DATE = "2026-09-25"


def _runpod(usd: float) -> dict:
    return dict(price_per_hour=usd, price_source=_RUNPOD, price_date=_RUNPOD_DATE)


_GPUS: dict[str, GPU] = {g.name: g for g in [
    GPU("H100-SXM", 989e12, 80 * GB, 3.35e12, "HBM3", "NVLink4", fp8_flops=1979e12, tdp_watts=700,
        source="https://www.nvidia.com/en-us/data-center/h100/", **_runpod(3.49),
        note="the reference card: ridge ~295 FLOP/B"),
    GPU("H100-PCIe", 756e12, 80 * GB, 2.0e12, "HBM2e", "NVLink-bridge-H100-PCIe", fp8_flops=1513e12,
        tdp_watts=350, source="https://www.nvidia.com/en-us/data-center/h100/", **_runpod(2.89),
        note="HBM2e at 2.0 TB/s: ridge ~378 FLOP/B; NVLink only through a 2-card bridge"),
    GPU("H200-SXM", 989e12, 141 * GB, 4.8e12, "HBM3e", "NVLink4", fp8_flops=1979e12, tdp_watts=700,
        source="https://www.nvidia.com/en-us/data-center/h200/", **_runpod(4.59),
        note="H100's compute with 1.76× the memory and 1.43× the bandwidth: ridge ~206, a decode card"),
    GPU("B200", 2250e12, 180 * GB, 8.0e12, "HBM3e", "NVLink5", fp8_flops=4500e12, tdp_watts=1000,
        source="https://www.nvidia.com/en-us/data-center/hgx/", **_runpod(6.79),
        note="HGX B200, 180 GB usable HBM3e at ~8 TB/s: ridge ~281 FLOP/B"),
    GPU("A100-80GB", 312e12, 80 * GB, 2.039e12, "HBM2e", "NVLink3", tdp_watts=400,
        source="https://www.nvidia.com/en-us/data-center/a100/", **_runpod(1.59),
        note="SXM4; ridge ~153 FLOP/B, the lowest here: Splitwise's token (decode) machines"),
    GPU("A100-PCIe-80GB", 312e12, 80 * GB, 1.935e12, "HBM2e", "NVLink-bridge-A100-PCIe",
        tdp_watts=300, source="https://www.nvidia.com/en-us/data-center/a100/", **_runpod(1.59),
        note="PCIe card, HBM2e at 1,935 GB/s: ridge ~161 FLOP/B; NVLink only through a 2-card bridge. "
             "Sarathi-Serve's measurements ran on two of them (Azure NC96ads A100 v4)"),
    GPU("A100-40GB", 312e12, 40 * GB, 1.555e12, "HBM2", "NVLink3", tdp_watts=400,
        source="https://www.nvidia.com/en-us/data-center/a100/",
        note="SXM4, HBM2 at 1.555 TB/s: ridge ~201 FLOP/B"),
    GPU("L40S", 362e12, 48 * GB, 864e9, "GDDR6", "PCIe-Gen4-x16", fp8_flops=733e12, tdp_watts=350,
        source="https://www.nvidia.com/en-us/data-center/l40s/", **_runpod(1.09),
        note="GDDR6, not HBM: 864 GB/s, ridge ~419 FLOP/B, higher than an H100's ~295; no NVLink. "
             "Cheap FLOP/s (more per dollar than an H100's): a prefill card, not a decode card"),
    GPU("L4", 121e12, 24 * GB, 300e9, "GDDR6", "PCIe-Gen4-x16", fp8_flops=242.5e12, tdp_watts=72,
        source="https://www.nvidia.com/en-us/data-center/l4/",
        note="72 W inference card, GDDR6 at 300 GB/s: ridge ~403 FLOP/B; no NVLink"),
    GPU("A10G", 70e12, 24 * GB, 600e9, "GDDR6", "PCIe-Gen4-x16", uncertain=True,
        source="https://aws.amazon.com/ec2/instance-types/g5/",
        note="AWS G5 only; NVIDIA publishes no datasheet. Tensor throughput is uncertain (~70–125 "
             "TFLOP/s; the A10 is rated 125, the A10G reported ~70, "
             "https://www.baseten.co/blog/nvidia-a10-vs-a10g-for-ml-model-inference/); "
             "memory and bandwidth match the A10"),
    GPU("T4", 65e12, 16 * GB, 320e9, "GDDR6", "PCIe-Gen3-x16", fp32_flops=8.1e12, bf16=False,
        tdp_watts=70, source="https://www.nvidia.com/en-us/data-center/tesla-t4/",
        note="the free Colab card: no BF16 (65 TFLOP/s is FP16), ridge ~203 FLOP/B"),
    GPU("MI300X", 1307e12, 192 * GB, 5.3e12, "HBM3", "Infinity-Fabric-MI300X", fp8_flops=2615e12,
        tdp_watts=750, source="https://www.amd.com/en/products/accelerators/instinct/mi300/mi300x.html",
        note="AMD: 192 GB HBM3 at 5.3 TB/s, ridge ~247 FLOP/B; fits a 70B model in BF16 on one GPU"),
]}


def priced_gpus() -> list[str]:
    """Names of the catalog GPUs that carry a price (all from one price list), sorted."""
    return sorted(n for n, g in _GPUS.items() if g.price_per_hour is not None)


def _find(catalog: dict, name: str, what: str, aliases: dict[str, str] | None = None):
    # An exact (case-insensitive) name wins over an alias, so a registered "H100" is found as such.
    for key in (str(name).lower(), (aliases or {}).get(str(name).lower(), "").lower()):
        for k, v in catalog.items():
            if k.lower() == key:
                return v
    raise KeyError(f"unknown {what} {name!r}; known: {', '.join(sorted(catalog))}")


def gpu(name: str | GPU) -> GPU:
    """The catalog GPU called ``name`` (case-insensitive; aliases "H100", "H200", "A100").
    A :class:`GPU` passes through. Unknown names raise KeyError listing the known ones."""
    return name if isinstance(name, GPU) else _find(_GPUS, name, "GPU", ALIASES)


def link(name: str | Link) -> Link:
    """The catalog link called ``name`` (case-insensitive). A :class:`Link` passes through.
    Unknown names raise KeyError listing the known ones."""
    return name if isinstance(name, Link) else _find(_LINKS, name, "link")


def gpu_names() -> list[str]:
    """Names of the catalog's GPUs, sorted."""
    return sorted(_GPUS)


def link_names() -> list[str]:
    """Names of the catalog's links, sorted."""
    return sorted(_LINKS)


def _register(catalog: dict, item, what: str, overwrite: bool):
    same = [k for k in catalog if k.lower() == item.name.lower()]
    if same and not overwrite:
        raise ValueError(f"{what} {item.name!r} already in the catalog (pass overwrite=True)")
    for k in same:
        del catalog[k]
    catalog[item.name] = item
    return item


def register_gpu(gpu: GPU, overwrite: bool = False) -> GPU:
    """Add ``gpu`` to the catalog. Its ``scaleup`` link must already be known (KeyError if not);
    an existing name raises ValueError unless ``overwrite``."""
    link(gpu.scaleup)
    return _register(_GPUS, gpu, "GPU", overwrite)


def register_link(link: Link, overwrite: bool = False) -> Link:
    """Add ``link`` to the catalog; an existing name raises ValueError unless ``overwrite``.
    Its ``beyond`` link, if any, must already be known (KeyError if not)."""
    if link.beyond is not None:
        _find(_LINKS, link.beyond, "link")
    return _register(_LINKS, link, "link", overwrite)

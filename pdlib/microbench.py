"""Measure the roofline of the device you are on: a big matmul (compute-bound), a matrix-vector
product and a copy (both bandwidth-bound).

For each kernel we count the FLOPs and the *minimum* bytes it must move through memory, time it,
and report rates::

    matmul  C = A·B, A, B, C all n×n:   FLOPs = 2n³      bytes = 3n²·b     intensity = 2n/(3b)
    matvec  y = A·x, A n×n, x, y n:     FLOPs = 2n²      bytes = (n² + 2n)·b  ≈ 2/b FLOP/B
    copy    dst ← src, N elements:      FLOPs = 0        bytes = 2N·b

(b = bytes per element: 4 for fp32, 2 for fp16/bf16.) The measured roofline of the device is then
``peak_flops`` = the best matmul rate and ``peak_bw`` = the best matvec or copy byte rate; its ridge
is their ratio, as for the catalog GPUs of :mod:`pdlib.hardware`.

Timing: ``warmup`` untimed calls, then ``repeats`` timed rounds, each running the kernel enough
times to last at least ``min_time`` seconds (so tiny kernels are not lost in timer resolution or
thread wake-ups); the result is the median seconds per call. On CUDA every round is bracketed by
``torch.cuda.synchronize()``. torch is imported inside the functions, never at module import.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Callable, Sequence

__all__ = ["Measurement", "DeviceRoofline", "pick_device", "default_dtype", "time_kernel",
           "matmul", "matvec", "copy", "measure_roofline", "DEFAULT_SIZES"]

#: Default problem sizes per device kind: big enough to leave the CPU's caches (a 4,096² fp32
#: matrix is 67 MB) or to fill a data-centre GPU, small enough that a 2-core CPU finishes in seconds.
DEFAULT_SIZES: dict[str, dict[str, Sequence[int] | int]] = {
    "cpu": {"matmul": (128, 512, 1024), "matvec": (4096,), "copy_elems": 32 * 2**20},
    "cuda": {"matmul": (1024, 4096, 8192), "matvec": (8192, 16384), "copy_elems": 256 * 2**20},
}


@dataclass(frozen=True)
class Measurement:
    """One timed kernel: ``flops`` (FLOPs per call), ``bytes`` (minimum bytes moved per call) and
    ``seconds`` (median seconds per call)."""

    name: str
    flops: float
    bytes: float
    seconds: float

    def __post_init__(self) -> None:
        if self.flops < 0 or self.bytes <= 0 or self.seconds <= 0:
            raise ValueError(f"{self.name}: need flops >= 0, bytes > 0, seconds > 0; got "
                             f"{self.flops!r}, {self.bytes!r}, {self.seconds!r}")

    @property
    def flops_per_s(self) -> float:
        """Achieved FLOP/s = flops / seconds."""
        return self.flops / self.seconds

    @property
    def bytes_per_s(self) -> float:
        """Achieved bytes/s = bytes / seconds."""
        return self.bytes / self.seconds

    @property
    def intensity(self) -> float:
        """Arithmetic intensity, FLOP per byte = flops / bytes."""
        return self.flops / self.bytes


@dataclass(frozen=True)
class DeviceRoofline:
    """The measured roofline of one device: ``peak_flops`` (FLOP/s, best matmul), ``peak_bw``
    (bytes/s, best matvec or copy), the names of the kernels that set them, and every ``points``
    measurement behind them."""

    device: str
    dtype: str
    peak_flops: float
    peak_bw: float
    points: tuple[Measurement, ...]
    peak_flops_kernel: str = ""
    peak_bw_kernel: str = ""

    @property
    def ridge(self) -> float:
        """Measured ridge point, FLOP per byte = peak_flops / peak_bw."""
        return self.peak_flops / self.peak_bw

    def table(self):
        """The measurements as a pandas DataFrame (FLOPs, bytes, seconds, rates, intensity)."""
        import pandas as pd
        return pd.DataFrame([{"kernel": m.name, "FLOPs": m.flops, "bytes": m.bytes,
                              "seconds": m.seconds, "FLOP/s": m.flops_per_s,
                              "bytes/s": m.bytes_per_s, "FLOP/B": m.intensity}
                             for m in self.points]).set_index("kernel")


def pick_device(device: str | None = None) -> str:
    """``device`` if given ("cpu", "cuda", "cuda:1"), else "cuda" when torch sees a GPU, else "cpu"."""
    import torch
    if device is not None:
        kind = str(device).split(":")[0]
        if kind not in ("cpu", "cuda"):
            raise ValueError(f"device must be 'cpu' or 'cuda[:i]', got {device!r}")
        if kind == "cuda" and not torch.cuda.is_available():
            raise ValueError("device 'cuda' requested but torch sees no CUDA GPU; use 'cpu'")
        return str(device)
    return "cuda" if torch.cuda.is_available() else "cpu"


def default_dtype(device: str):
    """torch dtype to benchmark in: float32 on CPU, bfloat16 on GPUs with BF16 tensor cores
    (compute capability ≥ 8.0, Ampere and newer), float16 on older ones (T4, V100)."""
    import torch
    if str(device).startswith("cuda"):
        major, _ = torch.cuda.get_device_capability(device)
        return torch.bfloat16 if major >= 8 else torch.float16
    return torch.float32


def _sync(device: str) -> Callable[[], None]:
    import torch
    if str(device).startswith("cuda"):
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def time_kernel(fn: Callable[[], object], device: str = "cpu", repeats: int = 5, warmup: int = 2,
                min_time: float = 0.02) -> float:
    """Median seconds per call of ``fn()``.

    ``warmup`` untimed calls; then, as :mod:`timeit`'s autorange does, rounds of k = 1, 2, 4, …
    calls until one round lasts at least ``min_time`` seconds (this also warms caches and wakes
    idle CPU threads, whose first calls can be slow); then ``repeats`` timed rounds of k calls,
    synchronized on CUDA. Returns the median over rounds of round_time / k.
    """
    if repeats < 1 or warmup < 0 or min_time <= 0:
        raise ValueError(f"need repeats >= 1, warmup >= 0, min_time > 0; got {repeats}, {warmup}, "
                         f"{min_time}")
    sync = _sync(device)

    def round_time(k: int) -> float:
        sync()
        t0 = time.perf_counter()
        for _ in range(k):
            fn()
        sync()
        return time.perf_counter() - t0

    for _ in range(warmup):
        fn()
    k = 1
    while round_time(k) < min_time:
        k *= 2
    return statistics.median(round_time(k) / k for _ in range(repeats))


def _positive_int(name: str, n: int) -> int:
    if not isinstance(n, int) or n <= 0:
        raise ValueError(f"{name} must be a positive integer, got {n!r}")
    return n


def _setup(device: str | None, dtype):
    import torch
    dev = pick_device(device)
    dt = default_dtype(dev) if dtype is None else dtype
    gen = torch.Generator(device=dev).manual_seed(0)
    return torch, dev, dt, gen


def _elem_bytes(torch, dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()


def matmul(n: int, device: str | None = None, dtype=None, repeats: int = 5) -> Measurement:
    """Time ``C = A @ B`` for n×n matrices: FLOPs ``2n³``, bytes ``3n²·b`` (read A, B; write C)."""
    _positive_int("n", n)
    torch, dev, dt, gen = _setup(device, dtype)
    a = torch.randn(n, n, device=dev, dtype=dt, generator=gen)
    b = torch.randn(n, n, device=dev, dtype=dt, generator=gen)
    c = torch.empty(n, n, device=dev, dtype=dt)
    s = time_kernel(lambda: torch.matmul(a, b, out=c), dev, repeats)
    e = _elem_bytes(torch, dt)
    return Measurement(f"matmul {n}", 2.0 * n ** 3, 3.0 * n * n * e, s)


def matvec(n: int, device: str | None = None, dtype=None, repeats: int = 5) -> Measurement:
    """Time ``y = A @ x`` for an n×n matrix: FLOPs ``2n²``, bytes ``(n² + 2n)·b``
    (read A and x, write y): intensity ≈ 2/b FLOP/B, 0.5 in fp32."""
    _positive_int("n", n)
    torch, dev, dt, gen = _setup(device, dtype)
    a = torch.randn(n, n, device=dev, dtype=dt, generator=gen)
    x = torch.randn(n, device=dev, dtype=dt, generator=gen)
    y = torch.empty(n, device=dev, dtype=dt)
    s = time_kernel(lambda: torch.mv(a, x, out=y), dev, repeats)
    e = _elem_bytes(torch, dt)
    return Measurement(f"matvec {n}", 2.0 * n * n, (n * n + 2.0 * n) * e, s)


def copy(n_elems: int, device: str | None = None, dtype=None, repeats: int = 5) -> Measurement:
    """Time ``dst.copy_(src)`` of ``n_elems`` elements: 0 FLOPs, bytes ``2·n_elems·b``."""
    _positive_int("n_elems", n_elems)
    torch, dev, dt, gen = _setup(device, dtype)
    src = torch.randn(n_elems, device=dev, dtype=dt, generator=gen)
    dst = torch.empty_like(src)
    s = time_kernel(lambda: dst.copy_(src), dev, repeats)
    e = _elem_bytes(torch, dt)
    return Measurement(f"copy {n_elems * e / 2**20:.0f} MiB", 0.0, 2.0 * n_elems * e, s)


def measure_roofline(device: str | None = None, dtype=None, repeats: int = 5,
                     matmul_sizes: Sequence[int] | None = None,
                     matvec_sizes: Sequence[int] | None = None,
                     copy_elems: int | None = None) -> DeviceRoofline:
    """Measure this device's roofline: every matmul and matvec size, and one copy.

    ``peak_flops`` = max matmul FLOP/s; ``peak_bw`` = max bytes/s over the matvecs and the copy.
    Sizes default to :data:`DEFAULT_SIZES` for the device kind ("cpu" or "cuda"); pass small ones
    for quick tests. ``dtype`` defaults to :func:`default_dtype`.
    """
    torch, dev, dt, _ = _setup(device, dtype)
    kind = dev.split(":")[0]
    sizes = DEFAULT_SIZES[kind]
    mm = tuple(matmul_sizes if matmul_sizes is not None else sizes["matmul"])
    mv = tuple(matvec_sizes if matvec_sizes is not None else sizes["matvec"])
    ce = copy_elems if copy_elems is not None else int(sizes["copy_elems"])
    if not mm or not mv:
        raise ValueError("need at least one matmul size and one matvec size")
    points = [matmul(n, dev, dt, repeats) for n in mm] + [matvec(n, dev, dt, repeats) for n in mv]
    points.append(copy(ce, dev, dt, repeats))
    best_mm = max((p for p in points if p.name.startswith("matmul")), key=lambda p: p.flops_per_s)
    best_bw = max((p for p in points if not p.name.startswith("matmul")), key=lambda p: p.bytes_per_s)
    name = torch.cuda.get_device_name(dev) if kind == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    return DeviceRoofline(device=name, dtype=str(dt).replace("torch.", ""),
                          peak_flops=best_mm.flops_per_s, peak_bw=best_bw.bytes_per_s,
                          points=tuple(points), peak_flops_kernel=best_mm.name,
                          peak_bw_kernel=best_bw.name)

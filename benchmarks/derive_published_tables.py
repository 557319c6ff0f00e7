"""Derive pdlib's small shipped tables (``pdlib/data/*.csv``) from the published measurement files.

Not run by the book, the tests or readers: it documents, and lets anyone redo, how each shipped
table was cut from its public source. Give it a folder holding copies of the source files in the
layout below (each copied unchanged from its repository), e.g.::

    python benchmarks/derive_published_tables.py /path/to/gpu-measurements

    splitwise/perf_model_llama2-70b_tp2.csv   the llama2-70b rows of SplitwiseSim data/perf_model.csv
    vidur/compute/{a100,h100}/<org>/<model>.mlp.csv   Vidur data/profiling/compute/<gpu>/<org>/<model>/mlp.csv
    vidur/network/<node>/all_reduce.csv       Vidur data/profiling/network/<node>/all_reduce.csv

Writes ``pdlib/data/{vidur_layers,vidur_models,vidur_allreduce,splitwise_llama2_70b_tp2}.csv``, each
headed by ``#`` lines naming the source, commit, licence and the rows kept (pandas reads them with
``comment="#"``). Sarathi-Serve's numbers are carried by :mod:`pdlib.measurements` instead.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

OUT = Path(__file__).resolve().parents[1] / "pdlib" / "data"

VIDUR = ("github.com/microsoft/vidur, data/profiling/ at commit 683364e91288ede0309a60a00773d230e6aead44 "
         "(the files used match that commit's copies); MIT licence (vidur/LICENSE); Agrawal et al., "
         "Vidur: A Large-Scale Simulation Framework for LLM Inference, MLSys 2024")
SPLITWISE = ("github.com/Mutinifni/splitwise-sim, data/perf_model.csv at commit "
             "378088013a54df6f2052c27ff5ae6ea7619c3ecc; MIT licence (splitwise-sim/LICENSE); profiles behind "
             "Patel et al., Splitwise: Efficient Generative LLM Inference Using Phase Splitting, ISCA 2024")

#: Vidur's model folders -> pdlib catalog names
VIDUR_MODELS = {"meta-llama/Llama-2-7b-hf": "Llama-2-7B", "meta-llama/Llama-2-70b-hf": "Llama-2-70B",
                "meta-llama/Meta-Llama-3-8B": "Llama-3-8B", "meta-llama/Meta-Llama-3-70B": "Llama-3-70B",
                "codellama/CodeLlama-34b-Instruct-hf": "CodeLlama-34B", "Qwen/Qwen-72B": "Qwen-72B",
                "internlm/internlm-20b": "InternLM-20B", "microsoft/phi-2": "phi-2"}
LAYER_OPS = ("input_layernorm", "attn_pre_proj", "attn_rope", "attn_post_proj", "post_attention_layernorm",
             "mlp_up_proj", "mlp_act", "mlp_down_proj", "add")
LINEAR_OPS = ("attn_pre_proj", "attn_post_proj", "mlp_up_proj", "mlp_down_proj")
#: token counts kept: powers of two, 1.5× and 1.25× them (the GEMM-efficiency transition)
TOKENS = sorted({int(round(k * 2 ** e)) for e in range(16) for k in (1, 1.25, 1.5)} | {1, 2})
NODES = {"a100_dgx": "DGX A100 (8 × A100-SXM4-80GB, NVSwitch)",
         "h100_dgx": "DGX H100 (8 × H100-SXM5-80GB, NVSwitch)",
         "a100_pairwise_nvlink": "4 × A100 80GB PCIe, NVLink-bridged pairs (Azure NC96ads A100 v4)",
         "h100_pairwise_nvlink": "4 × H100 PCIe, NVLink-bridged pairs"}
MAX_BYTES = 2 ** 26           # 64 MiB: the largest message every network table holds


def _write(name: str, header: list[str], df: pd.DataFrame) -> None:
    path = OUT / name
    with open(path, "w") as f:
        for line in header:
            f.write(f"# {line}\n")
        df.to_csv(f, index=False, float_format="%.6g")
    print(f"{path}: {len(df)} rows, {path.stat().st_size / 1024:.1f} KiB")


def vidur_layers(src: Path) -> None:
    rows, shapes = [], []
    for folder, name in VIDUR_MODELS.items():
        for gpu in ("a100", "h100"):
            f = src / "vidur" / "compute" / gpu / f"{folder}.mlp.csv"
            if not f.exists():
                continue
            d = pd.read_csv(f)
            cols = [f"time_stats.{op}.median" for op in LAYER_OPS if f"time_stats.{op}.median" in d]
            if d[cols].isna().any().any():
                raise ValueError(f"{f}: missing operator times")
            d["layer_ms"] = d[cols].sum(axis=1)
            d["linear_ms"] = d[[f"time_stats.{op}.median" for op in LINEAR_OPS]].sum(axis=1)
            d = d[d.num_tokens.isin(TOKENS)]
            g = d.groupby(["num_tensor_parallel_workers", "num_tokens"], as_index=False)[["layer_ms", "linear_ms"]].median()
            g.insert(0, "model", name)
            g.insert(0, "gpu", gpu)
            rows.append(g.rename(columns={"num_tensor_parallel_workers": "tp", "num_tokens": "tokens"}))
            s = d.iloc[0]
            shapes.append(dict(model=name, vidur_folder=folder, n_head=int(s.n_head), n_kv_head=int(s.n_kv_head),
                               n_embd=int(s.n_embd), n_expanded_embd=int(s.n_expanded_embd),
                               vocab_size=int(s.vocab_size), use_gated_mlp=bool(s.use_gated_mlp)))
    out = pd.concat(rows, ignore_index=True)
    _write("vidur_layers.csv", [
        f"Source: {VIDUR}; files compute/{{a100,h100}}/<org>/<model>/mlp.csv (A100 80GB and H100 80GB SXM).",
        "Kernel times (CUPTI/Kineto, ms) of ONE decoder layer's operators on one GPU, weights sharded tp ways "
        "(Vidur's profiling/mlp/, no communication).",
        f"layer_ms = sum of the per-operator medians of {', '.join(LAYER_OPS)} (phi-2 has no "
        "post_attention_layernorm); linear_ms = the four GEMMs only.",
        "Rows kept: num_tokens 1, 2 and the powers of two times 1, 1.25 and 1.5 (up to each file's largest, "
        "4,096 tokens, 32,768 for Llama-3), every tp; rows repeated in a file (2048, 4096 tokens) merged by "
        "their median. None dropped as broken.",
        "Columns: gpu (a100|h100), model (pdlib catalog name), tp, tokens, layer_ms, linear_ms."], out)
    _write("vidur_models.csv", [
        f"Source: {VIDUR}; the shape columns of each profiled model's mlp.csv (one row per model).",
        "Used to check pdlib's catalog shapes against what Vidur profiled."], pd.DataFrame(shapes).drop_duplicates())


def vidur_allreduce(src: Path) -> None:
    rows = []
    for node in NODES:
        f = src / "vidur" / "network" / node / "all_reduce.csv"
        d = pd.read_csv(f)
        d = d[(d.devices_per_node == d.num_workers) & (d["size"] <= MAX_BYTES)]
        for n, g in d.groupby("num_workers"):
            g = g.sort_values("size")
            sizes = g["size"].to_numpy()
            want = np.geomspace(sizes[0], sizes[-1], 48)
            idx = np.unique([int(np.argmin(np.abs(np.log(sizes) - np.log(w)))) for w in want])
            k = g.iloc[idx]
            rows.append(pd.DataFrame({"node": node, "n_gpus": int(n), "bytes": k["size"].astype(int),
                                      "ms": k["time_stats.all_reduce.median"]}))
    out = pd.concat(rows, ignore_index=True)
    _write("vidur_allreduce.csv", [
        f"Source: {VIDUR}; files network/<node>/all_reduce.csv.",
        "NCCL all-reduce of an fp16 buffer (torch.distributed.all_reduce, kernel time by Kineto, median of "
        "the runs, ms); `bytes` is Vidur's `size` column, which profiling/collectives/collectives_wrapper.py "
        "writes as elements x 2 (bytes).",
        "Nodes: " + "; ".join(f"{k} = {v}" for k, v in NODES.items()) + ".",
        f"Rows kept: one node's GPUs only (devices_per_node == num_workers), messages up to {MAX_BYTES} bytes, "
        "48 sizes per group nearest a log-spaced grid (duplicates merged). Cross-node rows left out.",
        "Columns: node, n_gpus, bytes, ms."], out)


def splitwise(src: Path) -> None:
    d = pd.read_csv(src / "splitwise" / "perf_model_llama2-70b_tp2.csv")
    n0 = len(d)
    d = d.drop(columns=["peak_power", "average_power"]).drop_duplicates()
    dup = n0 - len(d)
    broken = d.batch_size == 64
    short = d.token_size >= 1024
    kept = d[~broken & ~short].rename(columns={"prompt_time": "prompt_time_ms", "token_time": "token_time_ms",
                                               "e2e_time": "e2e_time_ms"})
    _write("splitwise_llama2_70b_tp2.csv", [
        f"Source: {SPLITWISE}; the model=llama2-70b rows (tensor_parallel 2; hardware a100-80gb = DGX-A100, "
        "h100-80gb = DGX-H100).",
        "prompt_time_ms: one prefill step of batch_size prompts of prompt_size tokens; token_time_ms: mean "
        "decode step at batch_size over token_size output tokens; e2e_time_ms: the whole request; 5 repeats per "
        "configuration.",
        f"Rows kept: {len(kept)} of {n0}. Dropped: {dup} exact duplicates (the 512/1/128 configuration appears "
        f"three times), {int(broken.sum())} rows at batch_size 64 (broken: a 64 x 512-token prefill reported "
        "faster than 32 x 512, 794 vs 6,633 ms on A100, and the decode step faster than at batch 32), "
        f"{int((short & ~broken).sum())} rows with token_size >= 1024 (their e2e_time shows the run stopped "
        "early: (e2e - prompt) / token_time is ~320-580 tokens, not token_size, so the decode context is "
        "unknown).",
        "Columns: as the source, power columns left out."], kept)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    src = Path(sys.argv[1])
    OUT.mkdir(parents=True, exist_ok=True)
    vidur_layers(src)
    vidur_allreduce(src)
    splitwise(src)

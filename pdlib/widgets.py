"""Interactive explorers for the chapters (ipywidgets).

Each explorer is a thin shell around a pure function that returns text and a figure, so the same
output can be shown statically (the book has no kernel: sliders do nothing there) and tested
without a browser. ipywidgets is imported only when a widget is built.

* :func:`explore` — price a decode step, a prefill and the two mixed in one step for a model on a
  GPU; returns ``(markdown_text, figure)``.
* :func:`step_explorer` — the same with dropdowns (model, GPU) and sliders (batch, context,
  prefill tokens).
"""
from __future__ import annotations

import numpy as np

from . import hardware as hw
from . import models as mdl
from .cost import fitting_cost_model

__all__ = ["fitting_cost_model", "explore", "step_explorer"]


def explore(model: str = "Llama-3.1-8B", gpu: str = "H100-SXM", batch: int = 64,
            context: int = 1024, prefill: int = 2048, tp: int = 1):
    """Price three steps of ``model`` on ``gpu`` and place them on the GPU's roofline.

    The steps: a decode of ``batch`` requests with ``context`` cached tokens each, a prefill of
    ``prefill`` tokens alone, and both in one mixed step (what chunked prefill schedules).
    Returns ``(text, fig)``: a Markdown summary (step times, compute vs memory time, bound) and a
    matplotlib Figure. When no tensor-parallel degree fits, returns ``(message, None)`` instead of
    raising, so a widget can show the reason.
    """
    import matplotlib.pyplot as plt

    from .viz.roofline import plot_steps_on_roofline

    try:
        cm, note = fitting_cost_model(model, gpu, tp)
        dec = cm.decode(batch, context)
        pre = cm.prefill(prefill)
        mixed = cm.step(np.array([[prefill, 0]] + [[1, context]] * int(batch)))
    except (ValueError, KeyError) as e:
        return f"**Cannot price this step:** {e}", None
    g = cm.gpu
    lines = [f"**{cm.model.name} on {cm.tp}× {g.name}** ({g.mem_type}, ridge {g.ridge:.0f} FLOP/B)"]
    if note:
        lines.append(f"*Note:* {note}")
    resident = batch * (context + 1)
    if resident > cm.kv_capacity_tokens:
        lines.append(f"*Note:* {batch} requests × {context + 1} tokens of KV cache "
                     f"({cm.kv_bytes_per_token * resident / 1e9:.1f} GB per GPU) exceed the "
                     f"{cm.free_kv_bytes / 1e9:.1f} GB left per GPU after the weights: this batch "
                     f"could not be resident at once.")
    for label, s in (("decode", dec), ("prefill", pre), ("mixed", mixed)):
        lines.append(f"- **{label}** ({int(s.new_tokens)} new tokens): step {s.time * 1e3:.2f} ms "
                     f"= max(compute {s.compute_time * 1e3:.2f} ms, memory {s.memory_time * 1e3:.2f} ms)"
                     + (f" + all-reduce {s.comm_time * 1e3:.2f} ms" if cm.tp > 1 else "")
                     + f"; **{s.bound}-bound**, intensity {float(s.intensity):.1f} FLOP/B, "
                     f"{float(s.time_per_token) * 1e3:.3f} ms per token")
    fig, ax = plt.subplots(figsize=(8, 5))
    plot_steps_on_roofline(cm, {f"decode, batch {batch}": dec, f"prefill {prefill}": pre,
                                "mixed (prefill + decodes)": mixed}, ax=ax)
    fig.tight_layout()
    return "\n".join(lines), fig


def step_explorer(model: str = "Llama-3.1-8B", gpu: str = "H100-SXM", batch: int = 64,
                  context: int = 1024, prefill: int = 2048, tp: int = 1):
    """An ipywidgets panel around :func:`explore`: dropdowns for the model, the GPU and the
    tensor-parallel degree (1, 2, 4, 8; raised automatically when the weights do not fit), a
    log-scale batch slider (1 … 1,024), a context slider (0 … 32,768 tokens) and a log-scale
    prefill slider (16 … 32,768 tokens). Needs ipywidgets (``pip install ipywidgets``) and a live
    kernel to react; returns the widget (display it, or leave it last in a cell)."""
    try:
        import ipywidgets as w
    except ImportError as e:
        raise ImportError("step_explorer needs ipywidgets: pip install ipywidgets") from e
    import matplotlib.pyplot as plt
    from IPython.display import Markdown, display

    m = w.Dropdown(options=mdl.names(), value=mdl.get(model).name, description="model")
    g = w.Dropdown(options=hw.gpu_names(), value=hw.gpu(gpu).name, description="GPU")
    t = w.Dropdown(options=[1, 2, 4, 8], value=tp, description="tp")
    b = w.FloatLogSlider(value=batch, base=2, min=0, max=10, step=1, description="batch",
                         readout_format=".0f")
    c = w.IntSlider(value=context, min=0, max=32768, step=256, description="context")
    p = w.FloatLogSlider(value=prefill, base=2, min=4, max=15, step=1, description="prefill",
                         readout_format=".0f")
    out = w.Output()

    def update(_=None) -> None:
        text, fig = explore(m.value, g.value, int(round(b.value)), int(c.value), int(round(p.value)),
                            tp=t.value)
        with out:
            out.clear_output(wait=True)
            display(Markdown(text))
            if fig is not None:
                display(fig)
                plt.close(fig)

    for ctrl in (m, g, t, b, c, p):
        ctrl.observe(update, names="value")
    update()
    return w.VBox([w.HBox([m, g, t]), w.HBox([b, c, p]), out])

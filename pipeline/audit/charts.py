"""Charts for the model card, as inline SVG (self-contained, deterministic bytes)."""

from __future__ import annotations

import io


def selection_rate_svg(rows: list[tuple[str, float, bool]], title: str,
                       ratio_min: float | None,
                       xlabel: str = "selection rate (share predicted positive)") -> str:
    """Horizontal bars of selection rate per group; excluded groups drawn hatched and grey.

    `rows` are (label, selection rate, excluded); `ratio_min` is the configured minimum of the
    disparate impact ratio gate, drawn as a fraction of the highest rate (None: no such gate).
    matplotlib's SVG backend is made deterministic by fixing the hash salt and dropping the date
    metadata. `xlabel` lets the monitor draw other per-row figures (PSI per feature) alike.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams["svg.hashsalt"] = "govpipe"
    plt.rcParams["svg.fonttype"] = "none"  # text stays text: smaller and searchable
    height = 0.6 + 0.32 * max(len(rows), 1)
    fig, ax = plt.subplots(figsize=(7.5, height))
    labels = [r[0] for r in rows][::-1]
    values = [r[1] for r in rows][::-1]
    excluded = [r[2] for r in rows][::-1]
    bars = ax.barh(labels, values, color=["#b0b7c3" if e else "#1f6feb" for e in excluded])
    for bar, e in zip(bars, excluded, strict=True):
        if e:
            bar.set_hatch("//")
    top = max(values, default=0.0)
    if top > 0 and ratio_min is not None:
        ax.axvline(ratio_min * top, color="#cf222e", linestyle="--", linewidth=1)
        ax.text(ratio_min * top, len(rows) - 0.4, f" {ratio_min:g} × highest", color="#cf222e",
                fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=10)
    ax.set_xlim(0, max(top * 1.15, 0.05))
    fig.tight_layout()
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    plt.close(fig)
    svg = buf.getvalue()
    return svg[svg.index("<svg"):]  # drop the XML prolog and DOCTYPE for inline use

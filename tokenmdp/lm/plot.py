"""The credit-assignment figure of Rafailov et al. 2024 (Fig. 1): tokens coloured by their implicit
reward. Needs matplotlib."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure, SubFigure


def plot_credit(
    rows: Sequence[tuple[Sequence[str], Any]],
    *,
    titles: Sequence[str] | None = None,
    ax: Axes | None = None,
) -> Figure | SubFigure:
    """Tokens coloured by their implicit reward (Rafailov et al. 2024, Fig. 1).

    Args:
        rows: one (tokens, rewards) per response: token strings and a 1-D array-like of the same
            length (e.g. :func:`implicit_token_rewards` of the completion tokens).
        titles: optional label per row (e.g. "chosen", "rejected").
        ax: a matplotlib Axes to draw in; a new figure by default.

    Returns:
        The matplotlib Figure. Colours: a diverging map centred at 0 (red < 0 < blue), shared by
        all rows.
    """
    import matplotlib.pyplot as plt
    from matplotlib.colors import TwoSlopeNorm

    values = [torch.as_tensor(r, dtype=torch.float64).reshape(-1) for _, r in rows]
    for (tokens, _), row_values in zip(rows, values, strict=True):
        if len(tokens) != row_values.numel():
            raise ValueError(f"{len(tokens)} tokens but {row_values.numel()} rewards in a row")
    bound = max(1e-12, max(float(x.abs().max()) for x in values if x.numel()))
    norm = TwoSlopeNorm(vcenter=0.0, vmin=-bound, vmax=bound)
    cmap = plt.get_cmap("RdBu")
    if ax is None:
        longest = max(len(tokens) for tokens, _ in rows)
        fig, ax = plt.subplots(figsize=(min(14, 3 + 0.7 * longest), 0.7 * len(rows) + 0.8))
    else:
        fig = ax.figure
    ax.set_axis_off()
    width = max(len(tokens) for tokens, _ in rows)
    left = 0.2 if titles else 0.0
    slot = (1 - left) / max(width, 1)
    for i, ((tokens, _), row_values) in enumerate(zip(rows, values, strict=True)):
        y = 1 - (i + 0.5) / len(rows)
        if titles:
            ax.text(0.0, y, titles[i], va="center", ha="left", fontsize=9, weight="bold")
        for k, (token, value) in enumerate(zip(tokens, row_values.tolist(), strict=True)):
            dark = abs(float(norm(value)) - 0.5) > 0.3  # white text on strong colours
            ax.text(
                left + k * slot, y, token, va="center", ha="left", fontsize=9, family="monospace",
                color="white" if dark else "black",
                bbox={"facecolor": cmap(norm(value)), "edgecolor": "none", "pad": 1.5},
            )  # fmt: skip
    fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, label="β log π/π_ref")
    return fig

"""Readability rules for the tutorials' figures, checked in the notebook kernel after every cell.

``tests/test_tutorials.py`` runs each tutorial with the Agg backend and, after every code cell, a
hidden cell that calls :func:`check_open_figures` and then closes all figures. A figure breaks a
rule when

- an Axes has no title (an Axes drawn with its axis turned off, e.g. a thumbnail of an input image,
  may use the figure's ``suptitle`` instead);
- an Axes whose axis is shown has no x label or no y label;
- an image (``imshow``/``matshow``/``pcolormesh``/``pcolor``) is not covered by a colorbar: one drawn
  for it, or for another image of the same figure with the same colormap and value range (one shared
  colorbar for a grid of thumbnails drawn with fixed ``vmin``/``vmax``);
- two or more labelled series are drawn on an Axes and neither it nor its figure has a legend;
- grid lines are drawn over an image.

Colorbar Axes themselves are not checked. The module needs only matplotlib, so that the kernel can
load it by path without importing the test suite.
"""

from __future__ import annotations

from matplotlib.collections import PolyQuadMesh, QuadMesh


class FigureCheckError(AssertionError):
    """A figure of a notebook cell breaks one of the readability rules."""


def _is_colorbar(ax) -> bool:
    return getattr(ax, "_colorbar", None) is not None or ax.get_label() == "<colorbar>"


def _images(ax) -> list:
    return list(ax.images) + [c for c in ax.collections if isinstance(c, (QuadMesh, PolyQuadMesh))]


def _key(mappable) -> tuple:
    norm = mappable.norm
    return mappable.get_cmap().name, type(norm).__name__, norm.vmin, norm.vmax


def _title(ax) -> str:
    return " / ".join(t for t in (ax.get_title("left"), ax.get_title(), ax.get_title("right")) if t)


def _grid_visible(ax) -> bool:
    return any(line.get_visible() for line in ax.get_xgridlines() + ax.get_ygridlines())


def figure_problems(fig) -> list[str]:
    """Every rule ``fig`` breaks, one line each (empty when the figure is fine)."""
    problems = []
    suptitle = fig._suptitle.get_text() if getattr(fig, "_suptitle", None) is not None else ""
    axes = [ax for ax in fig.get_axes() if not _is_colorbar(ax)]
    bars = [ax._colorbar for ax in fig.get_axes() if getattr(ax, "_colorbar", None) is not None]
    covered_ids = {id(cb.mappable) for cb in bars}
    covered_keys = {_key(cb.mappable) for cb in bars if cb.mappable is not None}
    for i, ax in enumerate(axes):
        if not ax.get_visible():
            continue
        name = f"Axes {i}" + (f" ({_title(ax)!r})" if _title(ax) else "")
        if not _title(ax) and not (suptitle and not ax.axison):
            problems.append(f"{name}: no title")
        if ax.axison:
            if not ax.get_xlabel():
                problems.append(f"{name}: no x label")
            if not ax.get_ylabel():
                problems.append(f"{name}: no y label")
        images = _images(ax)
        for im in images:
            if id(im) not in covered_ids and _key(im) not in covered_keys:
                problems.append(f"{name}: an image ({type(im).__name__}) without a colorbar")
        if images and ax.axison and _grid_visible(ax):
            problems.append(f"{name}: grid lines drawn over an image")
        _, labels = ax.get_legend_handles_labels()
        if len(labels) >= 2 and ax.get_legend() is None and not fig.legends:
            problems.append(f"{name}: {len(labels)} labelled series ({', '.join(labels[:4])}) but no legend")
    return problems


def check_open_figures(where: str = "") -> int:
    """Check every open pyplot figure, close them all, and return how many there were.

    Raises :class:`FigureCheckError` listing every problem of every figure (after closing them, so
    that one bad cell does not also fail the next check).
    """
    import matplotlib.pyplot as plt

    problems = []
    nums = plt.get_fignums()
    for num in nums:
        fig = plt.figure(num)
        label = fig.get_label() or (fig._suptitle.get_text() if getattr(fig, "_suptitle", None) else "")
        problems += [f"figure {num}{f' ({label!r})' if label else ''}: {p}" for p in figure_problems(fig)]
    plt.close("all")
    if problems:
        raise FigureCheckError(f"{where}: " * bool(where) + "unreadable figure\n  " + "\n  ".join(problems))
    return len(nums)

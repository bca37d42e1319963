"""One way to start and finish a figure, shared by every picture of the package.

Figures are drawn on an Agg canvas of their own: no display needed, and
pyplot's global state (a notebook's inline backend, a user's open figures) is
left alone.
"""


def new_figure(figsize):
    """A matplotlib `Figure` on its own Agg canvas (matplotlib loads here)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=figsize)
    FigureCanvasAgg(figure)
    return figure


def finish(figure, path, title=None, dpi=100):
    """Titles and lays out `figure`; writes it to `path` (a PNG) if given.

    Returns `path`, or the figure itself when `path` is `None`.
    """
    if title:
        figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    if path is None:
        return figure
    figure.savefig(path, dpi=dpi)
    return path

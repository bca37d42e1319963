"""The picture of a timeline: class scores over a long file, top class as a band."""

import numpy as np

from keras_ca2st.reports.figures import finish, new_figure


def plot_timeline(
    intervals, scores, class_names=None, path="timeline.png", title=None, max_lines=8
):
    """Draws class scores over time and the top class of each window as a band.

    One panel per head: a line per class for the classes that are the top
    class somewhere (the `max_lines` most frequent of them; a 300-class model
    would otherwise draw a thicket), and under it a band coloured by each
    window's top class, so changes of label stand out.

    Args:
        intervals: `(N, 2)` `[start, end]` seconds of each window (or second).
        scores: `(N, K)` class scores (softmax) of each window, or a dict
            head name → `(N, K)` for a model with several heads.
        class_names: list of `K` names (a dict per head for several heads);
            class indices when left out.
        path: the PNG to write.
        title: the figure's title (e.g. the video's name).
        max_lines: most classes drawn as lines per panel.

    Returns:
        `path`.

    Example:
    ```python
    plot_timeline([[0, 2], [1, 3], [2, 4]], softmax, ["dark", "bright"],
                  "video.timeline.png", title="video.mp4")
    ```
    """
    from matplotlib import colormaps
    from matplotlib.patches import Patch

    intervals = np.asarray(intervals, np.float64).reshape(-1, 2)
    heads = scores if isinstance(scores, dict) else {None: scores}
    centres = intervals.mean(axis=1)
    edges = _band_edges(intervals, centres)
    figure = new_figure((12, 1.0 + 3.2 * len(heads)))
    grid = figure.add_gridspec(2 * len(heads), 1, height_ratios=[5, 1] * len(heads))
    for row, (head, head_scores) in enumerate(heads.items()):
        head_scores = np.asarray(head_scores, np.float64)
        names = class_names.get(head) if isinstance(class_names, dict) else class_names
        names = names or [str(i) for i in range(head_scores.shape[1])]
        top = np.argmax(head_scores, axis=1)
        shown = _most_frequent(top, max_lines)
        palette = colormaps["tab10"].colors
        colours = {c: palette[i % len(palette)] for i, c in enumerate(shown)}
        lines = figure.add_subplot(grid[2 * row])
        for index in shown:
            lines.plot(
                centres, head_scores[:, index], color=colours[index], label=names[index]
            )
        lines.set_ylim(0, 1.02)
        lines.set_xlim(edges[0], edges[-1])
        lines.set_ylabel(f"{head} score" if head else "score")
        lines.legend(loc="upper right", fontsize=8, ncol=2)
        lines.tick_params(labelbottom=False)
        band = figure.add_subplot(grid[2 * row + 1], sharex=lines)
        for index, left, right in zip(top, edges[:-1], edges[1:], strict=True):
            band.axvspan(left, right, color=colours.get(index, "lightgrey"), lw=0)
        band.set_yticks([])
        band.set_ylabel("top", rotation=0, ha="right", va="center")
        if len(set(top.tolist()) - set(shown)):
            band.legend(
                handles=[Patch(color="lightgrey", label="other classes")],
                loc="upper right",
                fontsize=7,
            )
    band.set_xlabel("time (s)")
    return finish(figure, path, title)


def _band_edges(intervals, centres):
    """Where each window's slice of the band begins and ends: half-way to
    its neighbours' centres, so the band has no gaps and no overlaps."""
    middles = (centres[:-1] + centres[1:]) / 2
    return np.concatenate([[intervals[0, 0]], middles, [intervals[-1, 1]]])


def _most_frequent(top, count):
    classes, counts = np.unique(top, return_counts=True)
    order = np.argsort(-counts, kind="stable")[:count]
    return [int(c) for c in classes[order]]

"""The picture of what B-CA exchanges: T2S, S2T and global windows on a frame grid.

Which tokens share a window is not redrawn by hand here: token indices are cut
into windows by the same `group` the model runs (`keras_ca2st.kernels.windows`),
and the window holding the chosen query is what gets coloured.
"""

import numpy as np

from keras_ca2st.kernels.windows import NUMPY_OPS, get_window
from keras_ca2st.reports.figures import finish, new_figure

QUERY = "#d62728"
KEYS = "#1f77b4"
OTHER = "#eeeeee"
PANELS = {
    "time": "T2S (window = time): a CLIP patch attends\nto VideoMAE tokens at its position in every frame",
    "space": "S2T (window = space): a VideoMAE token attends\nto the CLIP patches of its own frame",
    "global": "audio → visual (window = global): an audio patch\nattends to every visual token of the clip",
}


def window_members(window, num_frames, grid, query):
    """Key tokens `(T, rows, columns)` booleans of the window holding `query`.

    Args:
        window: `"time"`, `"space"`, `"space_time"` or `"global"`.
        num_frames: frames (or tubelets) T of the video grid.
        grid: `(rows, columns)` patches per frame.
        query: `(frame, row, column)` of the query token.
    """
    rows, columns = grid
    patches = rows * columns
    ids = np.arange(num_frames * patches).reshape(1, num_frames, patches, 1)
    kind = get_window(window)
    if window == "global":
        query_ids, key_ids = kind.group(
            ids.reshape(1, -1, 1), np.repeat(ids.reshape(1, -1, 1), 2, -1), NUMPY_OPS
        )
    else:
        query_ids, key_ids = kind.group(ids, np.repeat(ids, 2, -1), NUMPY_OPS)
    frame, row, column = query
    token = frame * patches + row * columns + column
    index = int(np.argwhere(query_ids[..., 0] == token)[0, 0])
    members = np.zeros(num_frames * patches, bool)
    members[key_ids[index, :, 0]] = True
    return members.reshape(num_frames, rows, columns)


def plot_exchange_windows(
    num_frames=8, grid=(4, 4), query=(3, 1, 2), path=None, title=None
):
    """Draws the three B-CA windows of CA²ST on a grid of frames × patches.

    Each row of the figure is one window kind; each small square is a patch
    token of one frame (frames left to right). The query token is red, the keys
    it attends to in that window blue. A ViT-B/16 clip has 8 such frames of
    14 × 14 patches; a small grid shows the same pattern.

    Args:
        num_frames: frames on the grid.
        grid: `(rows, columns)` patches per frame.
        query: `(frame, row, column)` of the query token.
        path: PNG to write (else the figure is returned).
        title: figure title.

    Example:
    ```python
    plot_exchange_windows(path="windows.png")
    ```
    """
    from matplotlib.patches import Rectangle

    rows, columns = grid
    figure = new_figure((1.25 * num_frames + 2.6, 5.8))
    axes = figure.subplots(len(PANELS), 1)
    for axis, (window, label) in zip(axes, PANELS.items(), strict=True):
        members = window_members(window, num_frames, grid, query)
        gap = 1
        for frame in range(num_frames):
            left = frame * (columns + gap)
            for row in range(rows):
                for column in range(columns):
                    colour = KEYS if members[frame, row, column] else OTHER
                    if window != "global" and (frame, row, column) == tuple(query):
                        colour = QUERY
                    axis.add_patch(
                        Rectangle(
                            (left + column, rows - 1 - row), 0.92, 0.92, color=colour
                        )
                    )
            axis.text(
                left + columns / 2, -0.6, f"frame {frame}", ha="center", fontsize=7
            )
        width = num_frames * (columns + gap) - gap
        if window == "global":
            # The audio query sits left of the frames, on its own strip.
            axis.add_patch(Rectangle((-2.6, rows / 2 - 0.5), 1.6, 0.92, color=QUERY))
            axis.text(-1.8, rows / 2 + 0.8, "audio\npatch", ha="center", fontsize=7)
        axis.set_xlim(-3.0, width + 0.2)
        axis.set_ylim(-1.2, rows + 0.2)
        axis.set_aspect("equal")
        axis.axis("off")
        axis.set_title(label, fontsize=8, loc="left")
    return finish(figure, path, title)

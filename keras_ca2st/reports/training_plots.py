"""Pictures and tables of training runs: curves, confusion matrices, results.

- `plot_training_curves`: a metric per epoch for one or several runs;
- `confusion_matrix` / `plot_confusion_matrix`: counts of true × predicted
  class, drawn with the counts written in;
- `results_table`: a Markdown table of named results (accuracy, parameters…);
- `plot_bars`: one bar per named value (timings, accuracies), labelled.
"""

import numpy as np

from keras_ca2st.reports.figures import finish, new_figure


def plot_training_curves(
    histories, metrics=("loss", "val_loss"), path=None, title=None, chance=None
):
    """Draws metrics per epoch, one line per run, one panel per metric.

    Args:
        histories: a `keras.callbacks.History` (what `model.fit` returns), a
            dict metric → list of values (`history.history`), or a dict run
            name → either of those, to compare runs.
        metrics: the metric names to draw, one panel each (those a run lacks
            are skipped for that run). A validation metric recorded every few
            epochs (`validation_freq`) is drawn at the epochs it was measured.
        path: PNG to write (else the figure is returned).
        title: figure title.
        chance: a value to mark with a dotted line on accuracy panels (e.g.
            `1 / num_classes`).

    Returns:
        `path`, or the figure.

    Example:
    ```python
    history = model.fit(train, validation_data=val, epochs=10)
    plot_training_curves(history, ("loss", "val_top1"), "curves.png")
    ```
    """
    runs = _as_runs(histories)
    metrics = [m for m in metrics if any(m in h for h in runs.values())]
    if not metrics:
        raise ValueError(
            "None of the metrics to draw was recorded; the histories have "
            f"{sorted({k for h in runs.values() for k in h})}."
        )
    figure = new_figure((4.6 * len(metrics), 3.6))
    axes = figure.subplots(1, len(metrics), squeeze=False)[0]
    for axis, metric in zip(axes, metrics, strict=True):
        draw_training_curves(axis, runs, metric, chance)
    return finish(figure, path, title)


def draw_training_curves(axis, histories, metric, chance=None):
    """Draws one metric of one or several runs into a matplotlib `axis`.

    `histories` as in `plot_training_curves`; for composing figures.
    """
    runs = _as_runs(histories)
    for name, history in runs.items():
        values = history.get(metric)
        if not values:
            continue
        axis.plot(
            _epochs_of(history, metric),
            values,
            marker="o" if len(values) < 12 else None,
            label=name or None,
        )
    from matplotlib.ticker import MaxNLocator

    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.set_xlabel("epoch")
    axis.set_ylabel(metric)
    marks_chance = chance is not None and ("top" in metric or "acc" in metric)
    if marks_chance:
        axis.axhline(chance, color="grey", lw=0.7, ls=":", label="chance")
    if len(runs) > 1 or marks_chance:  # a loss panel of one run has no labels
        axis.legend(fontsize=7)


def confusion_matrix(labels, predictions, num_classes):
    """`(num_classes, num_classes)` counts: row = true class, column = predicted."""
    matrix = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(matrix, (np.asarray(labels, int), np.asarray(predictions, int)), 1)
    return matrix


def plot_confusion_matrix(confusion, class_names=None, path=None, title=None):
    """Draws a confusion matrix with its counts written in each cell.

    Args:
        confusion: `(K, K)` counts (`confusion_matrix`), rows true classes.
        class_names: `K` names (underscores and dashes break lines); indices
            when left out. More than 30 classes are drawn without labels.
        path: PNG to write (else the figure is returned).
        title: the panel's title.

    Example:
    ```python
    result = evaluate_multiview(model, test)
    matrix = confusion_matrix(result.labels, result.predictions, 8)
    plot_confusion_matrix(matrix, class_names, "confusion.png")
    ```
    """
    confusion = np.asarray(confusion)
    size = min(4.0 + 0.55 * len(confusion), 14.0)
    figure = new_figure((size + 1.0, size))
    draw_confusion_matrix(figure.subplots(), confusion, class_names, title)
    return finish(figure, path)


def draw_confusion_matrix(axis, confusion, class_names=None, title=None):
    """Draws a confusion matrix into a matplotlib `axis` (see
    `plot_confusion_matrix`); for composing figures."""
    confusion = np.asarray(confusion)
    count = len(confusion)
    image = axis.imshow(confusion, cmap="Blues")
    if count <= 30:
        names = class_names or [str(i) for i in range(count)]
        short = [str(n).replace("_", " ").replace("-", "\n") for n in names]
        axis.set_xticks(range(count), short, fontsize=6, rotation=90)
        axis.set_yticks(range(count), short, fontsize=6)
        top = confusion.max() or 1
        for (row, column), value in np.ndenumerate(confusion):
            if value:
                colour = "white" if value > top / 2 else "black"
                axis.text(
                    column,
                    row,
                    str(value),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color=colour,
                )
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    axis.figure.colorbar(image, ax=axis, fraction=0.046, label="clips")
    if title:
        axis.set_title(title, fontsize=9)


def results_table(results, columns=None, key_title="model"):
    """A Markdown table: one row per named result, one column per field.

    Args:
        results: dict name → dict of fields (numbers or text).
        columns: dict field → column title (default: every field of the first
            result, titled by its name). Fields in `[0, 1]` whose name holds
            `accuracy` or `top` are shown as percentages.
        key_title: the title of the first column (the results' names).

    Example:

    >>> print(results_table({"CAST": {"val_accuracy": 0.5, "epochs": 3}}))
    | model | val_accuracy | epochs |
    |---|---|---|
    | CAST | 50.0% | 3 |
    """
    if columns is None:
        columns = {key: key for key in next(iter(results.values()))}
    lines = [
        f"| {key_title} | " + " | ".join(columns.values()) + " |",
        "|---" * (len(columns) + 1) + "|",
    ]
    for name, fields in results.items():
        cells = [_cell(key, fields.get(key, "")) for key in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_bars(values, ylabel, path=None, title=None, groups=None, log=False):
    """One bar per named value, each labelled with its number.

    Args:
        values: dict name → number, or dict group → dict name → number to draw
            grouped bars (e.g. backend → {"forward": s, "train step": s}).
        ylabel: the axis label (say the unit).
        path: PNG to write (else the figure is returned).
        title: figure title.
        groups: order of the groups (default: as given).
        log: logarithmic value axis (for values spanning decades).
    """
    nested = all(isinstance(v, dict) for v in values.values())
    series = values if nested else {"": values}
    names = list(dict.fromkeys(k for s in series.values() for k in s))
    order = groups or list(series)
    width = 0.8 / len(order)
    figure = new_figure((max(4.0, 1.3 * len(names) * max(1, len(order) / 2)), 3.6))
    axis = figure.subplots()
    for index, group in enumerate(order):
        heights = [series[group].get(name, np.nan) for name in names]
        positions = np.arange(len(names)) + (index - (len(order) - 1) / 2) * width
        bars = axis.bar(positions, heights, width, label=group or None)
        axis.bar_label(bars, fmt="%.3g", fontsize=7)
    axis.set_xticks(range(len(names)), names)
    axis.set_ylabel(ylabel)
    if log:
        axis.set_yscale("log")
    if nested:
        axis.legend(fontsize=8)
    return finish(figure, path, title)


def _as_runs(histories):
    if hasattr(histories, "history"):
        return {"": histories.history}
    if all(isinstance(v, list | tuple) for v in histories.values()):
        return {"": dict(histories)}
    return {
        name: (h.history if hasattr(h, "history") else dict(h))
        for name, h in histories.items()
    }


def _epochs_of(history, metric):
    count = len(history[metric])
    total = len(history.get("loss", ())) or count
    if count >= total:
        return list(range(1, count + 1))
    # Measured every `total // count` epochs, the last one included.
    every = total // count
    return list(range(every, every * count + 1, every))


def _cell(key, value):
    if isinstance(value, float):
        if ("accuracy" in key or "top" in key) and 0.0 <= value <= 1.0:
            return f"{100 * value:.1f}%"
        return f"{value:.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)

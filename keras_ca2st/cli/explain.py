"""`ca2st predict --explain OUT_DIR`: what the model attended to, as pictures.

For each video, the centre view (the middle clip, centre crop) runs once
through `keras_ca2st.models.attention_maps` (the plain attention path, which
is the only one that computes the weights), and `OUT_DIR/<video name>/` gets:

- one PNG per B-CA direction (or LAVISH adapter reading frames): frames with
  the attention each patch received, T2S time strips, the spectrogram with
  the attention the audio patches received;
- `attention.npz`: every map's weights, `<name>/block<k>` →
  `(windows, heads, queries, keys)`;
- `attention.json`: per map its window, source, target, shape and how
  concentrated it is (mean entropy of a query's weights over the uniform
  distribution's), and the centre view's top label.
"""

import json
import os

import numpy as np


def explain_video(model, views, path, output_dir, class_names=None):
    """Writes the attention pictures and arrays of one video's centre view.

    Args:
        model: a loaded task model.
        views: `keras_ca2st.cli.predict.VideoViews` of the video's test views.
        path: the video file.
        output_dir: `OUT_DIR`; the files go into `OUT_DIR/<video stem>/`.
        class_names: label names (else class indices).

    Returns:
        dict: the directory written, the figures, the centre view's top label.
    """
    from keras_ca2st.models.attention_maps import attention_maps
    from keras_ca2st.reports.attention_plots import explain_figures

    inputs = views.inputs(path)
    centre = len(next(iter(inputs.values()))) // 2
    one_view = {name: value[centre : centre + 1] for name, value in inputs.items()}
    maps = attention_maps(model, one_view)
    stem = os.path.splitext(os.path.basename(path))[0] or "video"
    directory = os.path.join(output_dir, stem)
    figures = explain_figures(maps, one_view, model.backbone.clip_spec, directory)
    np.savez_compressed(
        os.path.join(directory, "attention.npz"),
        **{f"{m.name}/block{m.block}": m.weights[0] for m in maps},
    )
    summary = {
        "video": path,
        "view": "centre clip, centre crop",
        "attention_path": "plain keras.ops (fused kernels compute no weights)",
        "top_label": _top_label(maps.outputs, class_names),
        "figures": figures,
        "maps": [
            {
                "name": m.name,
                "block": m.block,
                "window": m.window,
                "source": m.source,
                "target": m.target,
                "shape": list(m.weights.shape[1:]),
                "relative_entropy": _relative_entropy(m.weights[0]),
            }
            for m in maps
        ],
    }
    with open(os.path.join(directory, "attention.json"), "w") as handle:
        json.dump(summary, handle, indent=1)
    return {"directory": directory, **summary}


def _top_label(outputs, class_names):
    from keras import ops

    if isinstance(outputs, dict):
        return {
            head: _top_label(value, (class_names or {}).get(head))
            for head, value in outputs.items()
        }
    logits = np.asarray(ops.convert_to_numpy(outputs))[0]
    index = int(np.argmax(logits.reshape(-1, logits.shape[-1]).mean(axis=0)))
    return class_names[index] if class_names else str(index)


def _relative_entropy(weights):
    """Mean entropy of a query's weights over log(keys): 1 is uniform."""
    keys = weights.shape[-1]
    if keys < 2:
        return 0.0
    entropy = -(weights * np.log(np.clip(weights, 1e-12, None))).sum(axis=-1)
    return float(entropy.mean() / np.log(keys))

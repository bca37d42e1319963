"""How much of a model's S2T attention lands on the synthetic set's moving object.

`python -m keras_ca2st.cli.object_attention RUN_DIR DATA_DIR` reads the
validation clips of a `ca2st demo` data directory (`DATA_DIR/val.csv`), runs
each clip's centre view through `attention_maps` and prints, as JSON, the
S2T attention mass on the object (the saturated pixels; the backdrop is dark
grey) next to the object's share of the frame: a model that looks where the
object is puts more mass there than the area share.
"""

import csv
import json
import os
import sys

import numpy as np


def object_attention(run_dir, data_dir, direction="spatial_to_temporal", limit=None):
    """`{"clips", "mass", "area", "per_block"}` over `DATA_DIR/val.csv`'s clips
    (the first `limit` of them, if given).

    `mass` is the attention mass on the object averaged over clips, frames and
    blocks, `area` the object's mean share of the frame, `per_block` the
    `(mass, area)` of each block.
    """
    from keras_ca2st.cli import runs
    from keras_ca2st.cli.predict import VideoViews
    from keras_ca2st.models.attention_maps import AttentionMaps, attention_maps
    from keras_ca2st.reports.attention_plots import (
        object_attention_share,
        patch_fractions,
    )

    model, info = runs.load_run(run_dir)
    settings = runs.evaluation_settings(model, info, None, (1, 1))
    spec = settings["spec"]
    views = VideoViews(settings)
    key_frames = model.backbone.encoder.experts["spatial"].frame_indices
    with open(os.path.join(data_dir, "val.csv"), newline="") as handle:
        paths = [os.path.join(data_dir, row["path"]) for row in csv.DictReader(handle)]
    paths = paths[:limit]
    shares, per_block = [], {}
    for path in paths:
        inputs = views.inputs(path)
        selected = AttentionMaps(attention_maps(model, inputs).select(direction))
        video = np.asarray(inputs["video"]) * np.asarray(spec.std) + spec.mean
        object_mask = video[:, key_frames].max(axis=-1) > 0.5
        patches = selected[0].key_grid[1]
        patch_size = video.shape[2] // int(round(np.sqrt(patches)))
        fractions = patch_fractions(object_mask, patch_size)
        shares.append(object_attention_share(selected, fractions))
        for amap in selected:
            share = object_attention_share([amap], fractions)
            per_block.setdefault(amap.block, []).append(share)
    mass, area = np.mean(shares, axis=0)
    return {
        "clips": len(paths),
        "mass": float(mass),
        "area": float(area),
        "per_block": {
            block: [float(x) for x in np.mean(values, axis=0)]
            for block, values in per_block.items()
        },
    }


if __name__ == "__main__":
    print(json.dumps(object_attention(*sys.argv[1:3]), indent=1))

"""Bad samples: the log every data-loading process appends to, and its report.

A file that cannot be decoded must not stop a run, and must not go unnoticed:
`VideoDataset` records each one in a `BadSampleLog` (a JSON-lines file that
threads and worker processes share) and `BadSampleReport` prints, after every
epoch, the files met since the last report.
"""

import json
import os
import tempfile
import weakref

import keras


class BadSampleLog:
    """A JSON-lines log of bad samples shared by threads and worker processes.

    Args:
        path: the log file; `None` for a temporary file removed with `owner`
            (by the process that created it: forked workers hold copies of
            `owner` too).
        owner: the object the temporary file lives as long as.

    Example:
    ```python
    log = BadSampleLog("runs/x/bad_samples.jsonl")
    log.add(record, error, epoch=3)
    log.entries()  # [{"path": ..., "reason": ..., "epoch": 3, "source": ...}]
    ```
    """

    def __init__(self, path=None, owner=None):
        if path is None:
            handle, path = tempfile.mkstemp(
                prefix="keras_ca2st_bad_samples_", suffix=".jsonl"
            )
            os.close(handle)
            owner = self if owner is None else owner  # not `or`: datasets have a length
            weakref.finalize(owner, _remove_owned_file, path, os.getpid())
        self.path = os.fspath(path)

    def add(self, record, error, epoch):
        """Appends one bad sample: the record's file, the error, the epoch."""
        entry = {
            "path": record.path,
            "reason": f"{type(error).__name__}: {error}",
            "epoch": epoch,
            "source": record.source,
        }
        # One short append per line is atomic on POSIX, so threads and
        # worker processes can share the file without a lock.
        with open(self.path, "a", encoding="utf-8") as log:
            log.write(json.dumps(entry) + "\n")

    def entries(self):
        """Every entry so far (path, reason, epoch, source), oldest first."""
        if not os.path.exists(self.path):
            return []
        with open(self.path, encoding="utf-8") as log:
            return [json.loads(line) for line in log if line.strip()]


def _remove_owned_file(path, owner_pid):
    if os.getpid() == owner_pid and os.path.exists(path):
        os.remove(path)


class BadSampleReport(keras.callbacks.Callback):
    """Prints the bad samples each dataset met during the epoch.

    Args:
        *datasets: `VideoDataset` objects to watch (training and validation).
        print_fn: where the report goes (default `print`).

    Example:

    >>> model.fit(train, validation_data=val,
    ...           callbacks=[BadSampleReport(train, val)])  # doctest: +SKIP
    Epoch 1: skipped 1 bad sample(s) from 1 file(s) in training data:
      videos/broken.mp4: VideoDecodeError: videos/broken.mp4: file is empty ...
    """

    def __init__(self, *datasets, print_fn=print):
        super().__init__()
        self.datasets = datasets
        self.print_fn = print_fn
        self._reported = [0] * len(datasets)
        self.history = []  # (epoch, dataset index, path, reason)

    def on_epoch_end(self, epoch, logs=None):
        for position, dataset in enumerate(self.datasets):
            entries = dataset.bad_sample_entries()
            new = entries[self._reported[position] :]
            self._reported[position] = len(entries)
            if not new:
                continue
            # One line per file: a file is met again by every view or
            # substitution attempt that touches it.
            by_path = {}
            for entry in new:
                by_path.setdefault(entry["path"], []).append(entry["reason"])
                self.history.append((epoch, position, entry["path"], entry["reason"]))
            kind = "training" if dataset.mode == "train" else dataset.mode
            lines = [
                f"Epoch {epoch + 1}: skipped {len(new)} bad sample(s) from "
                f"{len(by_path)} file(s) in {kind} data:"
            ]
            for path, reasons in by_path.items():
                times = f" (x{len(reasons)})" if len(reasons) > 1 else ""
                lines.append(f"  {path}{times}: {reasons[-1]}")
            self.print_fn("\n".join(lines))

"""Build the guides: run each source in a real Jupyter kernel and save the notebook.

    python guides/make_guides.py                      # every guide, on torch
    python guides/make_guides.py 02_fine_tune_your_videos --backend jax

Each guide is written as a plain Python file in `guides/source/` (cells
separated by `# %%` lines, markdown cells by `# %% [markdown]` with each line
a comment), so it reads and diffs as code. This script turns a source into a
notebook, executes it top to bottom with `nbclient` in a scratch directory
(what the guide writes stays out of the repository) and saves the executed
notebook, outputs included, as `guides/<name>.ipynb`. A cell that raises stops
the build. The test suite runs the same sources the same way (tiny settings)
and fails when a committed notebook's cells differ from its source.
"""

import argparse
import os
import re
import sys
import tempfile
import time

GUIDES_DIR = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.path.join(GUIDES_DIR, "source")
MARKER = re.compile(r"^# %%(?P<markdown> \[markdown\])?\s*$")
# What each guide needs; a guide that names one backend sets it itself and
# runs once, the others run on the backend of the process that executes them.
BACKEND_SPECIFIC = {
    "04_switching_backends": "all three, one subprocess each",
    "05_distributed_training": "all three engines, one subprocess each",
    "06_fused_kernels": "torch (Triton)",
}
CELL_TIMEOUT = 600


def guide_names():
    """Names of every guide (source file stems), in reading order."""
    return sorted(
        name[:-3]
        for name in os.listdir(SOURCE_DIR)
        if name.endswith(".py") and name[:2].isdigit()
    )


def source_path(name):
    return os.path.join(SOURCE_DIR, f"{name}.py")


def notebook_path(name):
    return os.path.join(GUIDES_DIR, f"{name}.ipynb")


def read_cells(path):
    """`[(cell_type, source)]` of a percent-format source file."""
    with open(path, encoding="utf-8") as handle:
        lines = handle.read().splitlines()
    cells, kind, body = [], None, []

    def close():
        if kind is None:
            return
        while body and not body[-1].strip():
            body.pop()
        if kind == "markdown":
            text = [re.sub(r"^# ?", "", line) for line in body]
        else:
            text = body
        cells.append((kind, "\n".join(text)))

    for line in lines:
        match = MARKER.match(line)
        if match:
            close()
            kind = "markdown" if match["markdown"] else "code"
            body = []
        elif kind is not None:
            body.append(line)
    close()
    return cells


def notebook_from_source(name):
    """An unexecuted `nbformat` notebook of one guide."""
    import nbformat

    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    notebook.metadata["language_info"] = {"name": "python"}
    for kind, text in read_cells(source_path(name)):
        if kind == "markdown":
            notebook.cells.append(nbformat.v4.new_markdown_cell(text))
        else:
            notebook.cells.append(nbformat.v4.new_code_cell(text))
    # Stable ids keep the committed files' diffs to what changed.
    for index, cell in enumerate(notebook.cells):
        cell["id"] = f"{name[:2]}-{index:03d}"
    return notebook


def execute(name, workdir, backend=None, env=None, timeout=CELL_TIMEOUT):
    """Runs one guide in a fresh kernel with `workdir` as its current folder.

    Returns the executed notebook; raises `nbclient.exceptions.CellExecutionError`
    (with the cell and its traceback) when a cell raises.
    """
    from nbclient import NotebookClient

    notebook = notebook_from_source(name)
    kernel_env = {**os.environ, **(env or {})}
    if backend:
        kernel_env["KERAS_BACKEND"] = backend
    # The guides import the package from this checkout, wherever they run.
    root = os.path.dirname(GUIDES_DIR)
    kernel_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (root, kernel_env.get("PYTHONPATH")) if p
    )
    kernel_env.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    # keras-hub imports TensorFlow when it is installed, whatever the backend;
    # its start-up log lines and tqdm's note about widgets are noise here.
    kernel_env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    kernel_env.setdefault("PYTHONWARNINGS", "ignore:IProgress not found")
    client = NotebookClient(
        notebook,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": workdir}},
        env=kernel_env,
    )
    client.execute(env=kernel_env)
    notebook.metadata["keras_ca2st"] = {
        "executed_with_backend": kernel_env.get("KERAS_BACKEND", "tensorflow")
    }
    return notebook


def build(name, backend="torch"):
    """Executes one guide and writes `guides/<name>.ipynb`."""
    import nbformat

    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"guide_{name[:2]}_") as workdir:
        notebook = execute(name, workdir, backend=backend)
    nbformat.write(notebook, notebook_path(name))
    size = os.path.getsize(notebook_path(name))
    print(
        f"{name}: {time.perf_counter() - began:.0f}s, {size / 1024:.0f} KiB",
        flush=True,
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="guides to build (default: all)")
    parser.add_argument(
        "--backend",
        default="torch",
        choices=["torch", "jax", "tensorflow"],
        help="KERAS_BACKEND of the kernel (guides that need one backend set it)",
    )
    args = parser.parse_args(argv)
    names = args.names or guide_names()
    unknown = sorted(set(names) - set(guide_names()))
    if unknown:
        parser.error(f"no guide named {', '.join(unknown)}; have {guide_names()}")
    for name in names:
        build(name, args.backend)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Fetching checkpoint files from the Hugging Face Hub or its local cache.

Everything goes through `huggingface_hub.hf_hub_download`, so downloads land in
(and are served from) the standard Hugging Face cache
(`models--org--name/{blobs, refs, snapshots/<commit>}`). `HF_HOME`,
`HF_HUB_CACHE` and `HF_HUB_OFFLINE` are read when a file is requested, not when
`huggingface_hub` was imported, so they can be set by the running program.
"""

import json
import os

TRUE_VALUES = {"1", "ON", "YES", "TRUE"}
DEFAULT_WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)


class SourceUnavailable(Exception):
    """A hub source is not cached locally and cannot be downloaded."""


def hub_cache_dir():
    """The Hugging Face hub cache (`$HF_HUB_CACHE`, else `$HF_HOME/hub`)."""
    for variable in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(variable):
            return os.path.expanduser(os.environ[variable])
    if os.environ.get("HF_HOME"):
        return os.path.join(os.path.expanduser(os.environ["HF_HOME"]), "hub")
    from huggingface_hub import constants

    return constants.HF_HUB_CACHE


def hub_offline():
    """Whether `HF_HUB_OFFLINE` (or `TRANSFORMERS_OFFLINE`) forbids downloads."""
    for variable in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(variable, "").upper() in TRUE_VALUES:
            return True
    return False


class HubSession:
    """Resolves files of several repositories, going offline after a network error.

    One failed connection is enough to know the Hub is unreachable; later files
    are then looked up in the local cache only instead of retrying each one.
    """

    def __init__(self, offline=None):
        self.offline = hub_offline() if offline is None else offline
        self.network_error = None

    def download(self, repo_id, filename, revision):
        """Local path of one file; `None` if the repository does not have it."""
        try:
            from huggingface_hub import hf_hub_download
            from huggingface_hub.errors import (
                EntryNotFoundError,
                HfHubHTTPError,
                HFValidationError,
                LocalEntryNotFoundError,
                RepositoryNotFoundError,
                RevisionNotFoundError,
            )
        except ImportError as error:
            raise SourceUnavailable(
                "huggingface_hub is not installed (pip install huggingface_hub)"
            ) from error
        try:
            return hf_hub_download(
                repo_id,
                filename,
                revision=revision,
                cache_dir=hub_cache_dir(),
                local_files_only=self.offline,
            )
        except LocalEntryNotFoundError as error:
            if not self.offline:
                self.network_error = error
                self.offline = True
            return None
        except EntryNotFoundError:
            return None
        except (
            RepositoryNotFoundError,
            RevisionNotFoundError,
            HFValidationError,
        ) as error:
            raise SourceUnavailable(
                f"the Hub has no {repo_id} at revision {revision}"
            ) from error
        except HfHubHTTPError as error:
            raise SourceUnavailable(f"the Hub refused {repo_id}: {error}") from error

    def fetch(self, repo_id, revision="main", files=DEFAULT_WEIGHT_FILES, config=None):
        """Resolve a checkpoint (the first of `files` that exists) and its config.

        Returns a dict with `weights` (local path), `config` (local path or
        None), `commit` and the `files` used. Raises `SourceUnavailable` naming
        what is missing and why.
        """
        revision = revision or "main"
        weights = used = None
        for name in files:
            path = self.download(repo_id, name, revision)
            if path is None:
                continue
            if name.endswith(".index.json"):
                with open(path) as file:
                    shards = sorted(set(json.load(file)["weight_map"].values()))
                if any(self.download(repo_id, s, revision) is None for s in shards):
                    continue
            weights, used = path, name
            break
        config_path = self.download(repo_id, config, revision) if config else None
        if weights is None or (config and config_path is None):
            wanted = " or ".join(files) + (f", {config}" if config else "")
            raise SourceUnavailable(f"{wanted}: {self._why(repo_id)}")
        return {
            "weights": weights,
            "config": config_path,
            "commit": _snapshot_commit(weights),
            "files": [used] + ([config] if config else []),
        }

    def _why(self, repo_id):
        if self.network_error is not None:
            return (
                f"not in the Hugging Face cache {hub_cache_dir()} and the Hub is "
                "unreachable"
            )
        if hub_offline() or self.offline:
            return (
                f"not in the Hugging Face cache {hub_cache_dir()} and HF_HUB_OFFLINE "
                "forbids downloading"
            )
        return f"{repo_id} does not have these files"


def _snapshot_commit(path):
    """The commit of a `.../snapshots/<commit>/<file>` path (else None)."""
    folder = os.path.dirname(path)
    if os.path.basename(os.path.dirname(folder)) == "snapshots":
        return os.path.basename(folder)
    return None

"""``pipeline push``: a finished build to a dataset repository on the Hugging Face Hub.

Contract: ``push(build, repo)`` checks that ``build`` is a finished build (its manifest.json is there), creates
the dataset repository if it does not exist (private when asked), and uploads every file of the build but
dot-files in one commit with ``huggingface_hub`` (its token: ``HF_TOKEN`` or ``hf auth login``; its endpoint:
``HF_ENDPOINT``, or ``endpoint``). The build's README.md is the dataset card, so the Hub shows it and
``load_dataset(repo)`` reads the train and eval records. Returns the commit's URL.
"""

from __future__ import annotations

from pathlib import Path

import orjson
from huggingface_hub import HfApi

from pipeline.io import output_folder


class PushError(ValueError):
    pass


def push(build: Path, repo: str, private: bool = False, token: str | None = None,
         endpoint: str | None = None) -> str:
    if not output_folder.is_build(build):
        raise PushError(f"{build}: not a finished build (no manifest.json); run `pipeline build` first")
    if not (build / "README.md").is_file():
        raise PushError(f"{build}: has no dataset card (README.md): it was built before cards; build it again")
    written = orjson.loads((build / output_folder.MANIFEST).read_bytes())
    api = HfApi(endpoint=endpoint, token=token)
    api.create_repo(repo, repo_type="dataset", private=private, exist_ok=True)
    commit = api.upload_folder(
        folder_path=build, repo_id=repo, repo_type="dataset", ignore_patterns=[".*", "**/.*"],
        commit_message=f"instruct-pipeline build {written['name']} (spec {written['spec_hash'][:12]})",
    )
    return str(commit.commit_url)

"""manifest.json: enough to reproduce a build and to compare two builds."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

MANIFEST_VERSION = 1


class InputFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: str
    path: str  # relative to the mix file, or a dataset id
    bytes: int | None
    sha256: str | None  # None for a Hub dataset (identified by its revision)


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int = MANIFEST_VERSION
    name: str
    seed: int
    spec: dict[str, Any]
    spec_hash: str
    inputs: list[InputFile]
    packages: dict[str, str]
    counts: dict[str, int]
    outputs: dict[str, str]  # file name -> sha256, every output file but the manifest itself
    output_bytes: dict[str, int] = {}  # file name -> size: checked before an unchanged build is trusted
    mix_file: str | None = None  # the mix file's absolute path: train.retention_eval resolves against its folder
    build_key: str | None = None  # flows/keys.py: the hash of all inputs, settings and code (None: built directly)

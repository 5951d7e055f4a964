"""instruct-pipeline: the curation stages (pure functions over polars DataFrames), io, and the CLI."""

__version__ = "0.1.0"

"""Contracts of instruct-pipeline: pydantic models and typed shapes, no logic."""

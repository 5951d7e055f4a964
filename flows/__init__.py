"""Prefect flows wrapping the pipeline's stages (issue #7): orchestration only, no stage logic here.

Not built yet: `pipeline build` runs the stages directly through `pipeline.build`.
"""

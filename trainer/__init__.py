"""The compact QLoRA trainer stage: ``qlora`` (train, generate, merge); the GPU memory estimate it checks before
loading a model is ``pipeline.memory`` (pure arithmetic, no torch).

torch, peft and bitsandbytes live here and only here: install the ``train`` extra to use it.
"""

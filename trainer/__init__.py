"""The compact QLoRA trainer stage: ``qlora`` (train, generate, merge) and ``memory`` (the GPU estimate).

torch, peft and bitsandbytes live here and only here: install the ``train`` extra to use it.
"""

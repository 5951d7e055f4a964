"""The compact QLoRA trainer stage (issue #8); torch, peft and bitsandbytes live here and only here.

Not built yet: install the `train` extra for its dependencies once it lands.
"""

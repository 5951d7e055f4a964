"""Load the tokenizer named by ``tokenize.tokenizer``, or by INSTRUCT_PIPELINE_TOKENIZER when it is set.

The variable is for offline machines and CI: it points every build at a local Hugging Face tokenizer folder
whatever the mix file names. A tokenizer that cannot be had stops the build before any data is read.
"""

from __future__ import annotations

import os
from typing import Any

ENV = "INSTRUCT_PIPELINE_TOKENIZER"


class TokenizerError(ValueError):
    """The tokenizer cannot be loaded; the message says how to point at a local folder."""


def tokenizer_source(name: str) -> str:
    return os.environ.get(ENV) or name


def load_tokenizer(name: str) -> Any:
    source = tokenizer_source(name)
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
    except Exception as err:  # transformers raises OSError, ValueError, HTTP and import errors here
        problem = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise TokenizerError(
            f"cannot load the tokenizer '{source}' ({type(err).__name__}: {problem}). Set tokenize.tokenizer to "
            f"a local Hugging Face tokenizer folder (tokenizer.json or tokenizer.model and tokenizer_config.json) "
            f"or set {ENV}=/path/to/that/folder. Meta's meta-llama/Llama-2-7b-hf is gated: without access, use a "
            "public copy of the same tokenizer such as NousResearch/Llama-2-7b-hf."
        ) from None
    if tokenizer.eos_token_id is None:
        raise TokenizerError(f"the tokenizer '{source}' has no EOS token; answers could not be terminated")
    return tokenizer

"""Load the tokenizer named by ``tokenize.tokenizer``, or by INSTRUCT_PIPELINE_TOKENIZER when it is set, and check
it against the template before any data is read.

The variable is for offline machines and CI: it points every build at a local Hugging Face tokenizer folder
whatever the mix file names. A tokenizer that cannot be had, or that cannot render the template, stops the build
before any data is read with one line (``TokenizerError``): a folder that does not exist, a Hub id that is neither
in the Hugging Face cache nor reachable (checked with one request, not the Hub client's retries: ~45 s offline),
a tokenizer without an EOS token, and ``template: chat_template`` with a tokenizer that has no chat template or
whose template fails on a one-exchange conversation. A Hub id found in the cache is used from there, offline.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

ENV = "INSTRUCT_PIPELINE_TOKENIZER"
HINT = (f"Set tokenize.tokenizer to a local Hugging Face tokenizer folder (tokenizer.json or tokenizer.model and "
        f"tokenizer_config.json) or set {ENV}=/path/to/that/folder. Meta's meta-llama/Llama-2-7b-hf is gated: "
        "without access, use a public copy of the same tokenizer such as NousResearch/Llama-2-7b-hf.")
PROBE = [{"role": "user", "content": "Say hi."}, {"role": "assistant", "content": "Hi!"}]


class TokenizerError(ValueError):
    """The tokenizer cannot be loaded or cannot render the template; the message says what to do."""


def tokenizer_source(name: str) -> str:
    return os.environ.get(ENV) or name


def load_tokenizer(name: str) -> Any:
    source = tokenizer_source(name)
    from transformers import AutoTokenizer

    folder = Path(source).expanduser()
    if not folder.exists() and _looks_like_a_path(source):
        raise TokenizerError(f"cannot load the tokenizer '{source}' (no such folder). {HINT}")
    try:
        if folder.exists():
            tokenizer = AutoTokenizer.from_pretrained(str(folder))
        else:
            tokenizer = _cached(AutoTokenizer, source) or _downloaded(AutoTokenizer, source)
    except TokenizerError:
        raise
    except Exception as err:  # transformers raises OSError, ValueError, HTTP and import errors here
        problem = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise TokenizerError(f"cannot load the tokenizer '{source}' ({type(err).__name__}: {problem}). "
                             f"{HINT}") from None
    if tokenizer.eos_token_id is None:
        raise TokenizerError(f"the tokenizer '{source}' has no EOS token; answers could not be terminated")
    return tokenizer


def check_template(tokenizer: Any, template: str, source: str) -> None:
    """``template: chat_template`` needs the tokenizer's own chat template, rendering a user and an assistant turn;
    the other templates are the project's own (pipeline/templates.py)."""
    if template != "chat_template":
        return
    if not getattr(tokenizer, "chat_template", None):
        raise TokenizerError(f"tokenize.template is chat_template, but the tokenizer '{source}' has no chat template: "
                             "choose alpaca or llama2-chat, or a tokenizer with a chat template (a *-chat model's)")
    try:
        tokenizer.apply_chat_template(PROBE, tokenize=True)
    except Exception as err:  # Jinja's TemplateError, or what the template raises itself
        raise TokenizerError(f"tokenize.template is chat_template, but the chat template of '{source}' fails on a "
                             f"user and an assistant turn ({type(err).__name__}: {err})") from None


def _looks_like_a_path(source: str) -> bool:
    """A Hub id is ``name`` or ``owner/name``; anything else that is not on disk was meant as a folder."""
    return source.startswith(("/", ".", "~")) or source.endswith("/") or source.count("/") > 1


def _cached(auto: Any, source: str) -> Any:
    try:
        return auto.from_pretrained(source, local_files_only=True)
    except OSError:
        return None


def _downloaded(auto: Any, source: str) -> Any:
    """From the Hub, once one request says it can be reached (the Hub client retries a dead network for ~45 s)."""
    import httpx

    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    try:
        httpx.head(f"{endpoint}/api/models/{source}", timeout=10)
    except httpx.HTTPError as err:
        raise TokenizerError(f"cannot load the tokenizer '{source}': it is not in the Hugging Face cache and "
                             f"{endpoint} cannot be reached ({type(err).__name__}: {err}). {HINT}") from None
    return auto.from_pretrained(source)

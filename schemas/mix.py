"""The mix spec (``mix.yaml``): what to read, and the policy of every stage.

Unknown keys are errors (``extra="forbid"``); ``pipeline.config`` turns them into messages that name the key
and the closest valid one. Paths are kept as written here and resolved against the mix file by the loader.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

SourceFormat = Literal["auto", "alpaca", "sharegpt", "openai", "self_instruct", "mt_bench"]
CANONICAL_FIELDS = ("instruction", "input", "output", "system", "history", "conversations", "messages")


def _numeric(annotation: Any) -> bool:
    """Whether a field takes numbers: int or float, alone, optional, or as a dict's values."""
    return annotation in (int, float) or any(_numeric(arg) for arg in get_args(annotation))


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*", mode="before")
    @classmethod
    def _booleans_are_not_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        """YAML's true and false are not numbers (pydantic would read ``size: true`` as 1); a whole number is
        still a valid float."""
        if info.field_name and _numeric(cls.model_fields[info.field_name].annotation):
            for key, item in value.items() if isinstance(value, dict) else [(None, value)]:
                if isinstance(item, bool):
                    where = "" if key is None else f" for '{key}'"
                    raise ValueError(f"expected a number{where}, got the boolean {str(item).lower()}")
        return value


class SourceSpec(Section):
    """One input: a file, a glob, a folder (of files, or an HF ``save_to_disk`` dataset) or a Hub dataset."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$", description="unique source name, used in ids")
    path: str | None = Field(None, description="file, glob or folder, relative to the mix file")
    hub: str | None = Field(None, description="Hugging Face dataset id (or a local dataset repo folder)")
    split: str = Field("train", description="split of a Hub dataset or a DatasetDict folder")
    revision: str | None = Field(None, description="Hub revision (branch, tag or commit)")
    format: SourceFormat = "auto"
    columns: dict[str, str] = Field(
        default_factory=dict,
        description="canonical field -> the source's key, e.g. {output: response} for GPTeacher-style data",
    )
    task: str | None = Field(None, description="task label; defaults to the source name")
    general: bool = Field(False, description="general instruction data, mixed in to keep general ability")
    languages: list[str] | None = Field(None, description="languages kept from this source (overrides filters)")
    lenient: bool = Field(
        False, description="recover the valid records of malformed JSON and quarantine the rest, instead of failing"
    )
    license: str | None = Field(
        None, description="the source's license as a Hub license id (e.g. cc-by-nc-4.0): the dataset card lists it"
    )

    @model_validator(mode="after")
    def _one_location(self) -> SourceSpec:
        if (self.path is None) == (self.hub is None):
            raise ValueError("give exactly one of 'path' or 'hub'")
        unknown = sorted(set(self.columns) - set(CANONICAL_FIELDS))
        if unknown:
            raise ValueError(f"columns: unknown canonical field(s) {unknown}; valid: {list(CANONICAL_FIELDS)}")
        return self

    @property
    def task_label(self) -> str:
        return self.task or self.name


class NormalizeSpec(Section):
    """Text clean-up applied to every text field before validation."""

    unicode_form: Literal["NFC", "NFKC", "none"] = "NFC"
    strip_control_chars: bool = True
    # An input equal to one of these (case-folded, punctuation and spaces removed) becomes empty.
    placeholder_inputs: list[str] = Field(
        default_factory=lambda: ["noinput", "na", "none", "null", "nil", "empty", "noinputrequired", "notapplicable"]
    )


class ValidateSpec(Section):
    require_input_key: bool = Field(
        False, description="reject Alpaca records with no 'input' key (by default it is filled with '' and counted)"
    )


class FiltersSpec(Section):
    """Languages (the language stage) and token bounds (the tokenize stage)."""

    languages: list[str] | None = Field(
        None, description="ISO 639-1 codes kept (e.g. [en, zh]); a source's own 'languages' overrides it"
    )
    min_tokens: int | None = Field(None, ge=1, description="quarantine records with fewer tokens (too_few_tokens)")
    max_tokens: int | None = Field(None, ge=1, description="quarantine records with more tokens (too_many_tokens)")


class QualitySpec(Section):
    """Heuristic quality rules (pipeline/quality.py); null or false turns a rule off."""

    min_output_chars: int | None = Field(1, ge=1, description="short_output: fewer characters in the output")
    max_chars: int | None = Field(None, ge=1, description="too_long_chars: instruction + input + output longer")
    refusals: bool = Field(True, description="refusal: 'As an AI language model...', '抱歉，我无法...'")
    placeholders: bool = Field(True, description="unfilled_placeholder: {{name}}, <NAME>, <nooutput>")
    unseen_content: bool = Field(True, description="needs_unseen_content: asks to open an image, video, link...")
    echo: bool = Field(True, description="echoes_prompt: the output repeats the instruction")
    max_repeated_ngram_ratio: float | None = Field(
        0.75, gt=0, le=1, description="repetitive_output: share of repeated word 3-grams in the output (>= 10)"
    )
    mojibake: bool = Field(True, description="mojibake: 'Ã©', 'â€™', U+FFFD left by a wrong decoding")


PiiType = Literal["email", "phone", "cn_id", "credit_card", "ip"]
PII_TYPES: tuple[PiiType, ...] = get_args(PiiType)


class PiiSpec(Section):
    """Personal data: flag (count only), redact with typed placeholders, or quarantine."""

    action: Literal["flag", "redact", "quarantine"] = "redact"
    types: list[PiiType] = Field(default_factory=lambda: list(PII_TYPES))
    redact_rejected: bool = Field(
        False, description="also redact the PII in rejected.parquet's original and detail (they keep the record as "
        "read by default)")


class DedupSpec(Section):
    """Exact and near-duplicate removal over all sources together; the earlier source in ``sources`` wins."""

    exact: bool = Field(True, description="remove records whose key is equal after folding case and punctuation")
    near: bool = Field(True, description="remove near-duplicates found by MinHash LSH")
    key: Literal["record", "prompt"] = Field(
        "record", description="record: history + instruction + input + output; prompt: without the output"
    )
    across_sources: bool = Field(True, description="false: a record is only compared with its own source")
    threshold: float = Field(0.8, gt=0, le=1, description="Jaccard similarity of shingle sets")
    ngram: int = Field(5, ge=1, description="shingle size in tokens (words, or characters of CJK/Thai text)")
    num_perm: int = Field(128, ge=16, le=1024)
    bands: int | None = Field(None, ge=1, description="LSH bands; by default chosen for recall at the threshold")
    rows: int | None = Field(None, ge=1, description="rows per band; bands x rows <= num_perm")
    verify: Literal["jaccard", "signature"] = Field(
        "jaccard", description="re-check each LSH candidate pair by true Jaccard, or by the signature estimate"
    )
    seed: int = Field(1, description="MinHash permutation seed (datasketch's default is 1)")
    against: list[str] = Field(
        default_factory=list,
        description="reference sets (earlier build folders or any readable dataset): records duplicating them "
        "are removed; the references themselves are never changed",
    )

    @model_validator(mode="after")
    def _banding_fits(self) -> DedupSpec:
        if (self.bands is None) != (self.rows is None):
            raise ValueError("give both 'bands' and 'rows', or neither")
        if self.bands is not None and self.rows is not None and self.bands * self.rows > self.num_perm:
            raise ValueError(f"bands x rows = {self.bands * self.rows} exceeds num_perm = {self.num_perm}")
        return self


class DecontaminateSpec(Section):
    """Evaluation-set leakage: records whose prompt shares an n-gram with, or nearly duplicates, an eval prompt."""

    against: list[str] = Field(default_factory=list, description="eval sets: any readable dataset or build folder")
    ngram: int = Field(13, ge=3, description="shared window in tokens (words, or characters of CJK text)")
    threshold: float = Field(0.8, gt=0, le=1, description="near-duplicate prompts: Jaccard of their shingles")


class MixtureSpec(Section):
    """Mixture balancing: how many records of each task and source go into train. Off unless ``size``,
    ``weights``, ``temperature`` or ``general_share`` is set; then every count is exact (largest remainder)."""

    size: int | None = Field(None, ge=1, description="records (or tokens) in train; default: all available")
    unit: Literal["records", "tokens"] = "records"
    weights: dict[str, float] = Field(
        default_factory=dict, description="task -> weight among the task (non-general) sources; unlisted: 0"
    )
    source_weights: dict[str, float] = Field(
        default_factory=dict, description="source -> weight within its task (or within the general share); "
        "default: proportional to the records each source has"
    )
    temperature: float | None = Field(
        None, gt=0, description="without weights: task i gets p_i proportional to n_i^(1/T) (1: natural sizes)"
    )
    general_share: float | None = Field(
        None, ge=0, le=1, description="share of sources marked general: true; null: they count as tasks"
    )
    max_repeats: float = Field(1.0, ge=1, description="upsampling cap: a source gives at most this x its records")
    sampling: Literal["random", "diverse"] = Field(
        "random", description="downsampling: seeded random, or spread across leading instruction words"
    )
    seed: int | None = Field(None, description="default: the mix's seed")
    min_general_share: float = Field(0.1, ge=0, le=1, description="guard: warn below this general share")
    max_task_share: float = Field(0.8, gt=0, le=1, description="guard: warn when one task exceeds this share")
    strict: bool = Field(False, description="turn the guards' warnings into errors")

    @property
    def active(self) -> bool:
        return bool(self.size or self.weights or self.temperature or self.general_share is not None)

    @model_validator(mode="after")
    def _weights_are_shares(self) -> MixtureSpec:
        for name, table in (("weights", self.weights), ("source_weights", self.source_weights)):
            negative = sorted(k for k, w in table.items() if w < 0)
            if negative:
                raise ValueError(f"{name}: negative weight for {negative}")
        if self.weights and self.temperature is not None:
            raise ValueError("give 'weights' or 'temperature', not both")
        return self


class SplitSpec(Section):
    """Train/eval split, stratified by task, after dedup and before any upsampling: a fraction in (0, 1) or a
    record count (>= 1)."""

    eval: float = Field(0.0, ge=0)
    seed: int | None = Field(None, description="default: the mix's seed")

    @model_validator(mode="after")
    def _fraction_or_count(self) -> SplitSpec:
        if self.eval >= 1 and self.eval != int(self.eval):
            raise ValueError(f"eval: {self.eval} is neither a fraction below 1 nor a whole number of records")
        return self


class TokenizeSpec(Section):
    """Tokenization into the training-ready ``tokenized/`` dataset (issue #5)."""

    enabled: bool = True
    tokenizer: str = Field(
        "NousResearch/Llama-2-7b-hf",
        description="hub id or local folder (INSTRUCT_PIPELINE_TOKENIZER overrides); a public copy of the "
        "LLaMA-2 tokenizer, since meta-llama/Llama-2-7b-hf is gated",
    )
    template: Literal["alpaca", "llama2-chat", "chat_template", "llamafactory-alpaca", "llamafactory-llama2"] = Field(
        "alpaca",
        description="alpaca (token-identical to axolotl's alpaca), llama2-chat (Meta's Llama-2-chat template), "
        "chat_template (the tokenizer's own), llamafactory-alpaca / llamafactory-llama2 (token-identical to "
        "LLaMA-Factory's alpaca / llama2 templates)",
    )
    system: str | None = Field(None, description="system prompt for records without one (template default if unset)")
    cutoff_len: int = Field(1024, ge=16)
    overflow: Literal["truncate", "drop"] = "drop"
    train_on_prompt: bool = False
    mask_history: bool = Field(False, description="train only the last answer of a multi-turn record")
    packing: bool = False
    shard_records: int = Field(
        100_000, ge=1,
        description="records per shard of tokenized/ (with their repeats): a split of more is written as "
        "Hub-style files data-00000-of-000NN.arrow, packed within each shard; the Dask runner tokenizes the "
        "shards on its workers",
    )


class OutputSpec(Section):
    dir: str = Field("out", description="output root, relative to the mix file; a build writes <dir>/<name>/")
    compression: Literal["zstd", "snappy", "lz4", "uncompressed"] = "zstd"
    compression_level: int | None = Field(
        1, description="zstd level; 1 writes 1M Alpaca records in 1.3 s / 82 MB, polars' default 3 in 2.1 s / 70 MB"
    )
    shard_rows: int | None = Field(
        None, ge=1,
        description="rows per file of train and eval: each split is written as Hub-style files "
        "train-00000-of-000NN.parquet (eval-...), which the Dask runner's workers write side by side; none: "
        "one train.parquet and one eval.parquet",
    )


class TrainSpec(Section):
    """The compact QLoRA trainer (``pipeline train``): the defaults of its command line."""

    method: Literal["qlora", "lora", "full"] = Field("qlora", description="qlora: 4-bit NF4 base + LoRA")
    base_model: str | None = Field(None, description="hub id or local folder of the model to fine-tune")
    learning_rate: float = Field(1e-4, gt=0, description="conservative: lower rates keep SFT stable")
    lora_r: int = Field(16, ge=1)
    lora_alpha: int = Field(32, ge=1)
    lora_dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] | Literal["all-linear"] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"]
    )
    epochs: float = Field(3.0, gt=0)
    max_steps: int | None = Field(None, ge=1, description="stop after this many optimizer steps (wins over epochs)")
    micro_batch_size: int = Field(4, ge=1)
    gradient_accumulation: int = Field(4, ge=1)
    warmup_ratio: float = Field(0.03, ge=0, lt=1)
    max_grad_norm: float = Field(1.0, gt=0)
    gradient_checkpointing: bool = True
    eval_steps: int = Field(50, ge=1, description="eval loss on the build's eval split every N steps")
    save_steps: int | None = Field(None, ge=1, description="checkpoint every N steps; default: every eval_steps")
    save_total_limit: int | None = Field(3, ge=1, description="checkpoints kept (the newest); null: all")
    seed: int | None = Field(None, description="default: the mix's seed")
    attn_implementation: Literal["sdpa", "eager", "flash_attention_2", "flex_attention"] | None = Field(
        None, description="default: flash_attention_2 on a GPU with the flash_attn package, else sdpa")
    retention_eval: list[str] = Field(
        default_factory=list, description="general held-out sets (files or folders, relative to the mix file), "
        "evaluated like the eval split but never trained on: the forgetting report's general loss")
    task_eval: list[str] = Field(
        default_factory=list, description="task held-out sets (like retention_eval): task groups of the report")
    max_forgetting: float | None = Field(
        None, gt=0, description="stop (keeping the best evaluated weights) when the general loss rises more than "
        "this share over the base model's, e.g. 0.05")
    report_to: list[str] = Field(default_factory=list, description="transformers loggers, e.g. [tensorboard]")


class MixSpec(Section):
    """A whole build: its name, seed, sources and stage policies."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
    seed: int = 0
    sources: list[SourceSpec] = Field(min_length=1)
    normalize: NormalizeSpec = NormalizeSpec()
    validate_: ValidateSpec = Field(ValidateSpec(), alias="validate")
    filters: FiltersSpec = FiltersSpec()
    quality: QualitySpec = QualitySpec()
    pii: PiiSpec = PiiSpec()
    dedup: DedupSpec = DedupSpec()
    decontaminate: DecontaminateSpec = DecontaminateSpec()
    mixture: MixtureSpec = MixtureSpec()
    split: SplitSpec = SplitSpec()
    tokenize: TokenizeSpec = TokenizeSpec()
    output: OutputSpec = OutputSpec()
    train: TrainSpec = TrainSpec()

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _unique_source_names(self) -> MixSpec:
        names = [s.name for s in self.sources]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"source names must be unique; repeated: {repeated}")
        return self

    @model_validator(mode="after")
    def _mixture_names_exist(self) -> MixSpec:
        mixture = self.mixture
        general = [s for s in self.sources if s.general]
        tasks = {s.task_label for s in self.sources if not (s.general and mixture.general_share is not None)}
        unknown = sorted(set(mixture.weights) - tasks)
        if unknown:
            raise ValueError(f"mixture.weights: unknown task(s) {unknown}; tasks: {sorted(tasks)}")
        unknown = sorted(set(mixture.source_weights) - set(names := [s.name for s in self.sources]))
        if unknown:
            raise ValueError(f"mixture.source_weights: unknown source(s) {unknown}; sources: {names}")
        if mixture.general_share is not None and not general:
            raise ValueError("mixture.general_share is set but no source has 'general: true'")
        if mixture.general_share is not None and len(general) == len(self.sources):
            raise ValueError("mixture.general_share is set but every source is general: mark the task sources "
                             "general: false (or drop general_share)")
        if mixture.unit == "tokens" and not self.tokenize.enabled:
            raise ValueError("mixture.unit: tokens counts each record's tokens with the tokenizer: set "
                             "tokenize.enabled: true, or use unit: records")
        if mixture.weights and not any(w > 0 for w in mixture.weights.values()):
            raise ValueError("mixture.weights: at least one task needs a positive weight")
        return self

"""report.json: what a build did, per stage and per source. ``version`` changes when the shape does."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from schemas.changes import ChangeReport

REPORT_VERSION = 6  # 2: dedup, duplicates per source; 3: split, mixture, advice; 4: quality, pii, decontamination;
# 5: profile (the train split: languages, lengths in characters and tokens, diversity, composition) and memory;
# 6: not_applied gone (every section's stage has landed), a source's key aliases


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StageCounts(Model):
    """One row of the funnel: records that reached a stage, passed it, and were quarantined by it."""

    stage: str
    source: str | None = Field(None, description="None for the all-sources row")
    input: int
    kept: int
    rejected: int
    reasons: dict[str, int] = Field(default_factory=dict)


class SourceSummary(Model):
    name: str
    task: str
    general: bool
    format: str
    files: int
    input: int
    kept: int
    rejected: int
    duplicates: int = 0
    reasons: dict[str, int] = Field(default_factory=dict)
    repairs: dict[str, int] = Field(default_factory=dict, description="fixes that lost nothing, by kind")
    aliases: dict[str, str] = Field(
        default_factory=dict, description="canonical field -> the key format: auto read it from (its alias table), "
        "e.g. {output: response}; keys that differ between files are joined with '+'. Explicit columns are not "
        "listed; the records read so are counted in repairs as alias:<field>=<key>")


class LedgerRow(Model):
    """Every input record has exactly one fate; ``balanced`` says the fates add up to the input."""

    source: str
    input: int
    kept: int
    rejected: int
    duplicate: int = 0
    sampled_out: int = 0
    balanced: bool


class TokenStats(Model):
    """Lengths in tokens of the examples kept, by task or by source; ``dropped`` were quarantined for length."""

    key: str
    count: int
    mean: float
    p50: int
    p95: int
    max: int
    truncated: int
    dropped: int


class TokenReport(Model):
    tokenizer: str
    template: str
    cutoff_len: int
    packing: bool
    train_tokens: int
    eval_tokens: int
    train_rows: int = Field(description="rows of tokenized/train: examples, or packs when packing")
    packing_efficiency: float | None = Field(None, description="real tokens / (rows x cutoff_len) when packed")
    by_task: list[TokenStats]
    by_source: list[TokenStats]


class DuplicateExample(Model):
    id: str
    kept_id: str
    kept_in: str
    kind: str
    similarity: float


class DedupReport(Model):
    """What the dedup stage removed and how it decided (settings, LSH banding, pairs checked)."""

    exact: bool
    near: bool
    key: str
    across_sources: bool
    threshold: float
    ngram: int
    num_perm: int
    bands: int | None = None
    rows: int | None = None
    verify: str
    references: list[str] = Field(default_factory=list, description="dedup.against, as written")
    reference_records: int = 0
    exact_removed: int
    near_removed: int
    candidate_pairs: int | None = Field(None, description="LSH candidate pairs before verification")
    verified_pairs: int | None = Field(None, description="pairs at or above the threshold after verification")
    clusters: int | None = Field(None, description="near-duplicate clusters of two or more records")
    largest_cluster: int | None = None
    by_source: dict[str, int] = Field(default_factory=dict, description="records removed, per source")
    cross_source: int = Field(0, description="records removed in favour of a record of another source")
    against_references: int = Field(0, description="records removed in favour of a reference record")
    examples: list[DuplicateExample] = Field(
        default_factory=list, description="the near-duplicates closest to the threshold, to judge it by"
    )


class MixtureTask(Model):
    task: str
    target: int
    achieved: int
    share: float = Field(description="achieved / all achieved")


class MixtureSource(Model):
    source: str
    task: str
    general: bool
    available: int = Field(description="records (or tokens) the source had after dedup and the split")
    target: int
    achieved: int
    shortfall: int = Field(description="target - achieved: what max_repeats did not allow")
    rows: int = Field(description="train rows from this source, repeats included")
    copies: int = Field(description="the most copies of any one record (1: no upsampling)")


class MixtureReport(Model):
    """Target vs achieved, per task and per source; every count exact (largest remainder)."""

    unit: str
    size: int = Field(description="target total")
    achieved: int
    seed: int
    sampling: str
    max_repeats: float
    general_share: float | None
    general_share_achieved: float
    tasks: list[MixtureTask]
    sources: list[MixtureSource]
    warnings: list[str] = Field(default_factory=list)


class SplitReport(Model):
    """The train/eval split and the checks that nothing is on both sides."""

    eval_setting: float = Field(description="split.eval as written: a fraction (< 1) or a count")
    eval: int
    train_records: int = Field(description="distinct records in train (repeats not counted)")
    by_task: dict[str, int]
    shared_ids: int = Field(description="records on both sides (must be 0)")
    shared_exact_keys: int = Field(description="train/eval pairs equal after folding case and punctuation")
    near_duplicates_across: int | None = Field(None, description="0 by construction when near dedup ran; "
                                               "None when it was off")
    note: str


class RuleCount(Model):
    count: int
    examples: list[str] = Field(description="up to three record ids")


class PiiReport(Model):
    action: str
    found: dict[str, int] = Field(default_factory=dict, description="matches per type (the PII itself never)")


class Distribution(Model):
    """Summary and histogram of a length. Bin k counts values in [edges[k], edges[k + 1]); the last bin is open."""

    count: int
    mean: float
    p50: int
    p90: int
    p95: int
    p99: int
    max: int
    edges: list[int]
    counts: list[int]


class LengthProfile(Model):
    prompt_chars: Distribution = Field(description="characters of earlier turns + instruction + input")
    output_chars: Distribution
    tokens: Distribution | None = Field(None, description="LLaMA-2 tokens of the whole example in its template")
    tokens_note: str = Field(description="where the token lengths come from, or why there are none")


class GroupCount(Model):
    key: str
    records: int
    share: float


class LanguageMix(Model):
    """The languages of one group of records (a source, a file), most frequent first."""

    key: str
    records: int
    languages: dict[str, int]
    top: str = Field(description="the most frequent language")
    top_share: float


class Diversity(Model):
    """How varied the instructions are: leading words (the verb of "Write a...", the first two characters of
    Chinese text) and word bigrams (characters for CJK) over a seeded sample."""

    instructions: int
    distinct_instructions: int = Field(description="distinct after folding case and outer punctuation and spaces")
    leading_words: int = Field(description="distinct leading words")
    top_leading_words: list[GroupCount]
    top10_share: float = Field(description="share of instructions starting with the 10 most frequent words")
    sample: int = Field(description="instructions the bigram measures read (seeded sample)")
    bigram_entropy: float = Field(description="Shannon entropy of the bigram distribution, bits")
    distinct_bigrams: float = Field(description="distinct / all bigrams (distinct-2)")


class DatasetProfile(Model):
    """What a set of records is: its languages, lengths, diversity and composition."""

    records: int
    languages: list[GroupCount]
    languages_by_source: list[LanguageMix]
    lengths: LengthProfile
    diversity: Diversity
    by_task: list[GroupCount]
    by_source: list[GroupCount]


class MemoryMethod(Model):
    """GPU memory (GB) to fine-tune with one method, part by part (pipeline/memory.py)."""

    method: str
    parameters: int
    trainable: int
    weights: float
    gradients: float
    optimizer: float
    activations: float
    overhead: float
    total: float


class MemoryReport(Model):
    model: str = Field(description="the size the estimate is for: 7B, a parameter count, or a config.json")
    model_from: str = Field(description="how the model was resolved from train.base_model (or the default)")
    seq_len: int = Field(description="tokenize.cutoff_len")
    micro_batch_size: int
    lora_r: int
    lora_alpha: int
    target_modules: list[str] | str
    gradient_checkpointing: bool
    chosen: str = Field(description="train.method")
    methods: list[MemoryMethod]
    assumptions: list[str]


class BuildReport(Model):
    version: int = REPORT_VERSION
    name: str
    spec_hash: str
    totals: dict[str, int]
    sources: list[SourceSummary]
    funnel: list[StageCounts]
    ledger: list[LedgerRow]
    dedup: DedupReport | None = None
    quality: dict[str, RuleCount] = Field(default_factory=dict, description="records quarantined per rule")
    pii: PiiReport | None = None
    decontamination: dict[str, RuleCount] = Field(default_factory=dict, description="per eval set")
    split: SplitReport | None = None
    mixture: MixtureReport | None = None
    advice: list[str] = Field(default_factory=list, description="which model to start from, for this data")
    tokens: TokenReport | None = None
    profile: DatasetProfile | None = Field(None, description="the train split as written (repeats included)")
    memory: MemoryReport | None = Field(None, description="GPU memory to fine-tune on this build")
    changes: ChangeReport | None = Field(None, description="against the previous version (scheduled builds)")


def json_schema() -> dict[str, Any]:
    """report.json's JSON Schema (committed as schemas/report.schema.json; a test keeps the two equal)."""
    return BuildReport.model_json_schema(mode="serialization")


if __name__ == "__main__":
    import json

    print(json.dumps(json_schema(), indent=2, sort_keys=True))

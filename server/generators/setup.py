"""Which generators a server offers, built from its settings (used by the composition root).

Registry: ``template`` always; every ``claude-*`` model through the Anthropic SDK; every
``openai:<model>`` through an OpenAI-compatible endpoint. Both prefixes are registered
even without a key, so a job that asks for a model whose key is missing is accepted and
then FAILED at once (before any setup) with reason MODEL_KEY_MISSING and a message
naming the variable to set - the issue asks for a failed job with a clear reason, not a
refused request or a crash. A rejected key fails the job on its first request
(MODEL_KEY_REJECTED).

Generators built by one registry share one ``ModelHealth`` and one observer (metrics);
each job gets its own generator and so its own retry budget.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from loguru import logger

from server.domain.spec import PluginSpec
from server.errors import FailedPrecondition, Unavailable
from server.generators import anthropic, openai_compat
from server.generators.anthropic import AnthropicGenerator
from server.generators.base import Generator, GeneratorError
from server.generators.describe import spec_from_description
from server.generators.health import ModelHealth, ModelObserver
from server.generators.model import ModelConfig, ModelGenerator
from server.generators.model_common import DEFAULT_PRICES, SUBMIT_SPEC, Ask, Prompt, parse_prices
from server.generators.openai_compat import OPENAI_PREFIX, OpenAICompatibleGenerator
from server.generators.prompts import DESCRIBE_SYSTEM, describe_prompt
from server.generators.registry import GeneratorRegistry
from server.generators.retry import Retry
from server.generators.template import TemplateGenerator
from server.settings import Settings, SettingsError

__all__ = [
    "CLAUDE_PREFIX",
    "Describer",
    "build_describer",
    "build_registry",
    "model_config",
    "model_generator",
]

CLAUDE_PREFIX = "claude-"
DESCRIBE_MAX_TOKENS = 8192
DESCRIBE_RETRY_BUDGET = 2  # CreatePlugin waits for the description: keep it short

# Turns a plain-English description into a spec (validated by the caller).
Describer = Callable[[str], Awaitable[PluginSpec]]


def model_config(settings: Settings) -> ModelConfig:
    """The model knobs, checked. Raises SettingsError naming the variable."""
    positive = {
        "max_output_tokens": settings.max_output_tokens,
        "model_request_timeout_s": settings.model_request_timeout_s,
        "model_retry_initial_s": settings.model_retry_initial_s,
        "model_retry_max_s": settings.model_retry_max_s,
        "model_degraded_after": settings.model_degraded_after,
    }
    for name, value in positive.items():
        if value <= 0:
            raise SettingsError(f"AUTON8N_{name.upper()} must be positive")
    for name in ("model_retry_budget", "model_max_continuations", "model_max_retry_after_s"):
        if getattr(settings, name) < 0:
            raise SettingsError(f"AUTON8N_{name.upper()} must not be negative")
    if not 0 <= settings.review_score_threshold <= 100:
        raise SettingsError("AUTON8N_REVIEW_SCORE_THRESHOLD must be between 0 and 100")
    try:
        overrides = parse_prices(settings.model_prices)
    except ValueError as exc:
        raise SettingsError(f"AUTON8N_MODEL_PRICES: {exc}") from exc
    return ModelConfig(
        max_output_tokens=settings.max_output_tokens,
        max_continuations=settings.model_max_continuations,
        retry=Retry(
            initial_s=settings.model_retry_initial_s,
            max_s=settings.model_retry_max_s,
            max_retry_after_s=settings.model_max_retry_after_s,
        ),
        retry_budget=settings.model_retry_budget,
        prices={**DEFAULT_PRICES, **overrides},
    )


def model_generator(
    settings: Settings,
    model: str,
    config: ModelConfig,
    health: ModelHealth,
    observer: ModelObserver | None,
) -> ModelGenerator:
    """A generator for a claude-* or openai:* model. Raises GeneratorError
    (MODEL_KEY_MISSING, MODEL_NOT_FOUND) when it cannot be built."""
    timeout = settings.model_request_timeout_s
    if model.startswith(CLAUDE_PREFIX):
        if not settings.anthropic_api_key:
            raise GeneratorError(
                f"model {model!r} needs an Anthropic API key: set ANTHROPIC_API_KEY on the "
                "server (or use model 'template', which works offline)",
                reason="MODEL_KEY_MISSING",
            )
        return AnthropicGenerator(
            model,
            config,
            api_key=settings.anthropic_api_key,
            base_url=settings.anthropic_base_url,
            timeout_s=timeout,
            health=health,
            observer=observer,
        )
    if model.startswith(OPENAI_PREFIX):
        if not (settings.openai_api_key or settings.openai_base_url):
            raise GeneratorError(
                f"model {model!r} needs an OpenAI-compatible endpoint: set "
                "OPENAI_API_KEY and/or OPENAI_BASE_URL on the server",
                reason="MODEL_KEY_MISSING",
            )
        bare = model[len(OPENAI_PREFIX) :]
        if not bare.strip():
            raise GeneratorError("name the model after 'openai:'", reason="MODEL_NOT_FOUND")
        return OpenAICompatibleGenerator(
            bare,
            config,
            api_key=settings.openai_api_key,
            base_url=settings.openai_base_url,
            timeout_s=timeout,
            health=health,
            observer=observer,
        )
    raise GeneratorError(f"no model generator for {model!r}", reason="MODEL_NOT_FOUND")


def build_registry(
    settings: Settings,
    *,
    health: ModelHealth | None = None,
    observer: ModelObserver | None = None,
) -> GeneratorRegistry:
    """``health``/``observer``: pass the server's to see model health and metrics."""
    config = model_config(settings)
    shared = health or ModelHealth(settings.model_degraded_after)
    # The SDKs of the configured providers are imported now, at start: generators are
    # built on the event loop (per job), where a first import would block it for seconds.
    if settings.anthropic_api_key:
        anthropic.sdk()
    if settings.openai_api_key or settings.openai_base_url:
        openai_compat.sdk()

    def make(model: str) -> Generator:
        return model_generator(settings, model, config, shared, observer)

    registry = GeneratorRegistry()
    registry.add_exact("template", lambda _model: TemplateGenerator())
    registry.add_prefix(CLAUDE_PREFIX, make)
    registry.add_prefix(OPENAI_PREFIX, make)
    return registry


def build_describer(
    settings: Settings,
    *,
    health: ModelHealth | None = None,
    observer: ModelObserver | None = None,
) -> Describer:
    """The model of ``settings.default_model`` when it is a configured model, else the
    offline heuristic. Model failures raise FailedPrecondition (key rejected) or
    Unavailable (retries spent); an unusable answer falls back to the heuristic."""
    model = settings.default_model
    config = model_config(settings)
    config = ModelConfig(
        max_output_tokens=min(config.max_output_tokens, DESCRIBE_MAX_TOKENS),
        retry=config.retry,
        retry_budget=min(config.retry_budget, DESCRIBE_RETRY_BUDGET),
        prices=config.prices,
    )
    shared = health or ModelHealth(settings.model_degraded_after)
    try:
        model_generator(settings, model, config, shared, observer)
    except GeneratorError:

        async def offline(description: str) -> PluginSpec:
            return spec_from_description(description)

        return offline

    async def describe(description: str) -> PluginSpec:
        generator = model_generator(settings, model, config, shared, observer)
        prompt = Prompt((DESCRIBE_SYSTEM,), (Ask(describe_prompt(description)),))
        try:
            answer = await generator.ask(prompt, SUBMIT_SPEC, config.max_output_tokens)
        except GeneratorError as exc:
            if exc.reason == "MODEL_UNAVAILABLE":
                raise Unavailable(str(exc), reason=exc.reason) from exc
            raise FailedPrecondition(str(exc), reason=exc.reason) from exc
        call = next((c for c in answer.calls if c.name == SUBMIT_SPEC.name), None)
        if call is not None and not answer.truncated:
            try:
                return PluginSpec.from_json(call.input)
            except (TypeError, ValueError, AttributeError) as exc:
                logger.warning("the model's spec was malformed ({}); using the heuristic", exc)
        else:
            logger.warning("the model gave no complete spec; using the offline heuristic")
        return spec_from_description(description)

    return describe

"""The model generator: prompts, tool calls, continuation, retries, usage - any provider.

``ModelGenerator`` implements ``base.Generator`` and ``review.Reviewer`` on top of a
provider ``ChatAdapter`` (Anthropic or OpenAI-compatible). One instance serves one job
run (the registry builds one per job), so its ``RetryBudget`` is the job's.

Cut-off answers (``stop_reason == "max_tokens"``): the generator continues. The tool call
a cut-off answer was in is never used (the adapter drops it: its input may be
incomplete); complete calls before it are kept. The conversation goes on with the
complete calls acknowledged and a note that the cut-off call was discarded, up to
``max_continuations`` times. If the answer is still cut off then, the iteration goes on
with what was complete and a ``max-tokens`` diagnostic, which the next iteration's
request shows the model.

Failures: a missing key never gets here (the registry fails the job at once); 401/403
-> GeneratorError MODEL_KEY_REJECTED; unknown model -> MODEL_NOT_FOUND; other 4xx ->
MODEL_REQUEST_REJECTED; transient failures are retried and, once the job's budget is
spent, -> MODEL_UNAVAILABLE.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from loguru import logger

from server.domain.results import Diagnostic, TokenUsage
from server.domain.spec import PluginSpec
from server.domain.states import Phase
from server.generators import prompts
from server.generators.base import GenerationRequest, GeneratorError
from server.generators.health import ModelHealth, ModelObserver, NullObserver, observe_usage
from server.generators.model_common import (
    SUBMIT_REVIEW,
    WRITE_FILES,
    Answer,
    Ask,
    ChatAdapter,
    Price,
    Prompt,
    Tool,
    estimate_cost,
    parse_review,
    parse_write_files,
)
from server.generators.retry import (
    FailureKind,
    ModelCallError,
    RetriesExhausted,
    Retry,
    RetryBudget,
)
from server.generators.review import NotedResult, Review

__all__ = ["ModelConfig", "ModelGenerator"]

REVIEW_MAX_TOKENS = 8192
_KEY_HINT = {"anthropic": "ANTHROPIC_API_KEY", "openai": "OPENAI_API_KEY"}


@dataclass(frozen=True)
class ModelConfig:
    """Knobs from Settings, shared by every generator of one registry."""

    max_output_tokens: int = 16000
    max_continuations: int = 2
    retry: Retry = field(default_factory=Retry)
    retry_budget: int = 6
    prices: Mapping[str, Price] = field(default_factory=dict)


class ModelGenerator:
    """Writes and reviews plugins through a model. Raises GeneratorError."""

    def __init__(
        self,
        adapter: ChatAdapter,
        config: ModelConfig,
        *,
        name: str,
        price_key: str,
        health: ModelHealth | None = None,
        observer: ModelObserver | None = None,
    ) -> None:
        self.name = name  # the job's model string, e.g. "claude-sonnet-5-5"
        self.adapter = adapter
        self.config = config
        self.budget = RetryBudget(config.retry_budget)
        self.health = health or ModelHealth()
        self.observer = observer or NullObserver()
        self._price_key = price_key
        self._log = logger.bind(provider=adapter.provider, model=adapter.model)
        self._price_noted = False

    # -- generate --------------------------------------------------------------

    async def generate(self, request: GenerationRequest) -> NotedResult:
        spec = request.spec
        fresh = not request.current_files
        if fresh or not request.diagnostics:
            text = prompts.generation_prompt(spec)
        else:
            text = prompts.repair_prompt(
                spec, request.iteration, request.current_files, request.diagnostics
            )
        system = (prompts.STATIC_SYSTEM, prompts.plugin_block(spec))
        turns: list[Ask | Answer] = [Ask(text)]
        files: dict[str, str] = dict(prompts.SEED_FILES) if fresh else {}
        deleted: list[str] = []
        notes: list[Diagnostic] = []
        usage = TokenUsage()
        limit = self.config.max_output_tokens
        for round_ in range(self.config.max_continuations + 1):
            answer = await self._ask(Prompt(system, tuple(turns)), WRITE_FILES, limit)
            usage += answer.usage
            complete = [c for c in answer.calls if c.name == WRITE_FILES.name]
            for call in complete:
                written, removed, problems = parse_write_files(call.input)
                files.update(written)
                deleted += removed
                notes += [_note(p, "tool-input") for p in problems]
            if not answer.truncated:
                if not complete:
                    notes.append(_no_call(answer))
                break
            self._log.warning("answer cut off at {} output tokens (round {})", limit, round_ + 1)
            if round_ == self.config.max_continuations:
                notes.append(_note(_cut_off_note(limit, round_ + 1), "max-tokens"))
                break
            turns += [
                Answer(tuple(complete), False, answer.stop_reason, TokenUsage()),
                Ask(_continue_note(limit), tuple((c.id, "received") for c in complete)),
            ]
        return NotedResult(files=files, deleted=tuple(deleted), usage=usage, notes=tuple(notes))

    # -- review ----------------------------------------------------------------

    async def review(self, spec: PluginSpec, files: Mapping[str, str]) -> Review:
        system = (prompts.STATIC_SYSTEM, prompts.plugin_block(spec))
        prompt = Prompt(system, (Ask(prompts.review_prompt(files)),))
        limit = min(self.config.max_output_tokens, REVIEW_MAX_TOKENS)
        answer = await self._ask(prompt, SUBMIT_REVIEW, limit)
        if answer.truncated:
            note = f"the review was cut off at {limit} output tokens; no verdict"
            return Review(0, False, usage=answer.usage, usable=False, note=note)
        call = next((c for c in answer.calls if c.name == SUBMIT_REVIEW.name), None)
        verdict = parse_review(call.input) if call else None
        if verdict is None:
            note = "the review had no usable submit_review call; no verdict"
            return Review(0, False, usage=answer.usage, usable=False, note=note)
        return Review(verdict.score, verdict.production_ready, verdict.issues, usage=answer.usage)

    # -- one call ----------------------------------------------------------------

    async def ask(self, prompt: Prompt, tool: Tool, max_tokens: int) -> Answer:
        """One model call with retries, health, metrics and cost (public for describe)."""
        return await self._ask(prompt, tool, max_tokens)

    async def _ask(self, prompt: Prompt, tool: Tool, max_tokens: int) -> Answer:
        provider = self.adapter.provider

        def failed(exc: ModelCallError) -> None:
            self.observer.model_request(exc.outcome)
            fatal = exc.kind is FailureKind.AUTH
            self.health.record_failure(provider, exc.message, fatal=fatal)

        def retrying(exc: ModelCallError, wait: float) -> None:
            self._log.warning("model request failed ({}); retry in {:.2f}s", exc.message, wait)

        try:
            answer = await self.config.retry.run(
                lambda: self.adapter.ask(prompt, tool, max_tokens),
                budget=self.budget,
                on_failure=failed,
                on_retry=retrying,
            )
        except RetriesExhausted as exc:
            raise GeneratorError(str(exc), reason="MODEL_UNAVAILABLE") from exc
        except ModelCallError as exc:
            raise self._fatal(exc) from exc
        self.health.record_success(provider)
        # "invalid": answered, but cut off or without the forced tool's call.
        usable = not answer.truncated and any(c.name == tool.name for c in answer.calls)
        self.observer.model_request("ok" if usable else "invalid")
        observe_usage(self.observer, answer.usage)
        usage, note = estimate_cost(self._price_key, answer.usage, self.config.prices)
        if note and not self._price_noted:
            self._price_noted = True
            self._log.info(note)
        return Answer(answer.calls, answer.truncated, answer.stop_reason, usage, answer.text)

    def _fatal(self, exc: ModelCallError) -> GeneratorError:
        provider = self.adapter.provider
        if exc.kind is FailureKind.AUTH:
            hint = _KEY_HINT.get(provider, "the API key")
            return GeneratorError(
                f"the {provider} API rejected the key ({exc.message}); check {hint}",
                reason="MODEL_KEY_REJECTED",
            )
        if exc.kind is FailureKind.NOT_FOUND:
            return GeneratorError(
                f"the {provider} API does not know model {self.adapter.model!r} ({exc.message})",
                reason="MODEL_NOT_FOUND",
            )
        return GeneratorError(
            f"the {provider} API refused the request ({exc.message})",
            reason="MODEL_REQUEST_REJECTED",
        )


def _note(message: str, code: str) -> Diagnostic:
    return Diagnostic(Phase.GENERATING, message, code=code)


def _no_call(answer: Answer) -> Diagnostic:
    said = f" It said: {answer.text.strip()[:300]}" if answer.text.strip() else ""
    return _note(
        f"the answer (stop reason {answer.stop_reason or 'none'}) had no write_files call, "
        f"so nothing was written. Always answer by calling write_files.{said}",
        "no-tool-call",
    )


def _continue_note(limit: int) -> str:
    return (
        f"Your answer was cut off at the output limit ({limit} tokens). The files of your "
        "complete write_files calls were received; the cut-off call was discarded and "
        "NONE of its files were written. Continue: send the remaining files in smaller "
        "write_files calls (fewer files per call), without repeating the received ones."
    )


def _cut_off_note(limit: int, rounds: int) -> str:
    return (
        f"your answer was cut off at the output limit ({limit} tokens) {rounds} time(s); "
        "each cut-off write_files call was discarded and none of its files were written. "
        "Write fewer and shorter files per write_files call."
    )

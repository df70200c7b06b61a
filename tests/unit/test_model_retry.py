"""Retry is a value: pure jittered backoff, retry-after as a floor, a per-job budget."""

from __future__ import annotations

import pytest

from server.generators.retry import (
    FailureKind,
    ModelCallError,
    RetriesExhausted,
    Retry,
    RetryBudget,
    failure_for_status,
    parse_retry_after,
)


def transient(retry_after: float | None = None) -> ModelCallError:
    return ModelCallError(
        "HTTP 529 overloaded_error: Overloaded",
        kind=FailureKind.TRANSIENT,
        status=529,
        retry_after_s=retry_after,
    )


@pytest.mark.parametrize("rand", [0.0, 0.3, 0.999])
def test_backoff_grows_exponentially_within_jitter_bounds(rand: float) -> None:
    retry = Retry(initial_s=1.0, max_s=30.0)
    for n, step in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (6, 30.0), (20, 30.0)]:
        delay = retry.delay(n, None, rand)
        assert step / 2 <= delay <= step, (n, delay)


def test_retry_after_is_a_floor_capped_by_max_retry_after() -> None:
    retry = Retry(initial_s=0.1, max_s=1.0, max_retry_after_s=60.0)
    assert retry.delay(1, 5.0, 0.5) == 5.0
    assert retry.delay(1, 600.0, 0.5) == 60.0
    assert retry.delay(5, 0.01, 0.5) >= 0.5  # a short retry-after does not shorten backoff


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after": "3"}, 3.0),
        ({"Retry-After": "1.5"}, 1.5),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:10 GMT"}, 10.0),
        ({"retry-after": "soon"}, None),
        ({}, None),
    ],
)
def test_parse_retry_after(headers: dict[str, str], seconds: float | None) -> None:
    now = 1445412480.0  # 2015-10-21 07:28:00 UTC
    assert parse_retry_after(headers, now=now) == seconds


@pytest.mark.parametrize(
    ("status", "kind", "outcome"),
    [
        (401, FailureKind.AUTH, "auth_error"),
        (403, FailureKind.AUTH, "auth_error"),
        (429, FailureKind.TRANSIENT, "rate_limited"),
        (529, FailureKind.TRANSIENT, "error"),
        (500, FailureKind.TRANSIENT, "error"),
        (503, FailureKind.TRANSIENT, "error"),
        (408, FailureKind.TRANSIENT, "error"),
        (404, FailureKind.NOT_FOUND, "error"),
        (400, FailureKind.REJECTED, "error"),
        (413, FailureKind.REJECTED, "error"),
    ],
)
def test_status_classification(status: int, kind: FailureKind, outcome: str) -> None:
    failure = failure_for_status(status, "x", None)
    assert (failure.kind, failure.outcome) == (kind, outcome)
    assert failure.retryable == (kind is FailureKind.TRANSIENT)


class Clock:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)


async def test_run_retries_until_success_and_spends_the_budget() -> None:
    outcomes: list[Exception | str] = [transient(2.0), transient(), "ok"]
    failures: list[ModelCallError] = []
    clock = Clock()

    async def call() -> str:
        item = outcomes.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    budget = RetryBudget(5)
    result = await Retry(initial_s=0.1, max_s=1.0).run(
        call, budget=budget, on_failure=failures.append, sleep=clock.sleep, rand=lambda: 0.5
    )
    assert result == "ok" and budget.used == 2 and len(failures) == 2
    assert clock.waits == [2.0, pytest.approx(0.15)]


async def test_budget_is_shared_by_the_calls_of_one_job() -> None:
    budget = RetryBudget(2)
    clock = Clock()

    async def always() -> str:
        raise transient()

    with pytest.raises(RetriesExhausted) as caught:
        await Retry(initial_s=0.01).run(always, budget=budget, sleep=clock.sleep)
    assert caught.value.attempts == 3 and budget.used == 2
    assert "retry budget (2 retries) is spent" in str(caught.value)
    assert "529 overloaded_error" in str(caught.value)
    with pytest.raises(RetriesExhausted) as again:  # the next call of the job: no retries left
        await Retry(initial_s=0.01).run(always, budget=budget, sleep=clock.sleep)
    assert again.value.attempts == 1 and len(clock.waits) == 2


async def test_non_retryable_failures_are_raised_at_once() -> None:
    clock = Clock()

    async def rejected() -> str:
        raise failure_for_status(401, "HTTP 401 authentication_error", None)

    with pytest.raises(ModelCallError) as caught:
        await Retry().run(rejected, budget=RetryBudget(5), sleep=clock.sleep)
    assert caught.value.kind is FailureKind.AUTH and clock.waits == []

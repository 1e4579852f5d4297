"""Specification of what the LLM backends share: prices, retry timing, secret values."""

from __future__ import annotations

import email.utils
import time

import pytest

from pytest_goblin.agent.backends.prices import (
    CACHE_READ_FACTOR,
    CACHE_WRITE_FACTOR,
    Price,
    price_for,
)
from pytest_goblin.agent.backends.retry import RetryPolicy, retry_after
from pytest_goblin.redact import environment_secrets, redact_known

# --- prices ----------------------------------------------------------------------------------


def test_a_listed_model_has_a_price_and_a_dated_id_finds_its_alias() -> None:
    price = price_for("claude-haiku-4-5", environ={})
    assert price is not None
    assert price_for("claude-haiku-4-5-20251001", environ={}) == price


def test_an_unlisted_model_has_no_price_rather_than_a_guess() -> None:
    assert price_for("Qwen/Qwen2.5-7B-Instruct", environ={}) is None


def test_the_price_variable_prices_any_model() -> None:
    assert price_for("Qwen/Qwen2.5-7B-Instruct", environ={"GOBLIN_LLM_PRICE": "0.2,0.6"}) == (
        Price(0.2, 0.6)
    )


def test_a_malformed_price_variable_says_the_expected_form() -> None:
    with pytest.raises(ValueError, match="INPUT,OUTPUT"):
        price_for("m", environ={"GOBLIN_LLM_PRICE": "cheap"})


def test_cost_weights_cache_writes_and_reads_against_the_input_price() -> None:
    price = Price(input=2.0, output=10.0)
    cost = price.cost(
        input_tokens=1000, output_tokens=100, cache_write_tokens=4000, cache_read_tokens=8000
    )
    expected_input = 1000 + 4000 * CACHE_WRITE_FACTOR + 8000 * CACHE_READ_FACTOR
    assert cost == pytest.approx((expected_input * 2.0 + 100 * 10.0) / 1e6)


# --- retry timing ----------------------------------------------------------------------------


def test_retry_after_in_seconds_milliseconds_or_as_a_date() -> None:
    assert retry_after({"retry-after": "7"}) == 7.0
    assert retry_after({"retry-after-ms": "250"}) == 0.25
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert retry_after({"retry-after": when}) == pytest.approx(30, abs=2)
    assert retry_after({}) is None


def test_the_server_asked_wait_is_honoured_up_to_the_cap() -> None:
    policy = RetryPolicy(max_wait_s=60.0)
    assert policy.delay(0, 7.0) == 7.0
    assert policy.delay(0, 3600.0) == 60.0


def test_without_retry_after_the_wait_doubles_with_jitter_up_to_the_maximum() -> None:
    policy = RetryPolicy(base_delay_s=0.5, max_delay_s=8.0)
    for attempt, full in [(0, 0.5), (1, 1.0), (2, 2.0), (6, 8.0)]:
        assert 0.75 * full <= policy.delay(attempt, None) <= full


# --- secret values ---------------------------------------------------------------------------


def test_values_of_secret_named_variables_are_secrets() -> None:
    environ = {
        "GOBLIN_QWEN_API_KEY": "vllm-key-1234",
        "HF_TOKEN": "hf_abcdefghijklmnopqrstuv",
        "GOBLIN_QWEN_MODEL": "Qwen/Qwen2.5-7B-Instruct",
        "SHORT_TOKEN": "EMPTY",
    }
    assert set(environment_secrets(environ)) == {"vllm-key-1234", "hf_abcdefghijklmnopqrstuv"}


def test_known_secret_values_are_redacted_anywhere_in_a_value() -> None:
    value = {"message": "401 for key vllm-key-1234", "items": ["x vllm-key-1234 y"]}
    assert redact_known(value, ["vllm-key-1234"]) == {
        "message": "401 for key <redacted>",
        "items": ["x <redacted> y"],
    }

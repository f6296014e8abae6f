"""A saga definition knows whether its steps can ever run side by side."""

from __future__ import annotations

from report_pipeline.saga import SagaDefinition, StepDefinition
from report_pipeline_tests.saga.conftest import CHAIN, FAN_OUT


def test_a_chain_runs_one_step_at_a_time() -> None:
    assert CHAIN.is_chain()


def test_branches_that_may_run_at_once_are_not_a_chain() -> None:
    assert not FAN_OUT.is_chain()


def test_a_single_step_is_a_chain() -> None:
    assert SagaDefinition("one", (StepDefinition("only"),)).is_chain()


def test_independent_steps_are_not_a_chain_even_declared_in_order() -> None:
    steps = (StepDefinition("first"), StepDefinition("second"))
    assert not SagaDefinition("two", steps).is_chain()


def test_a_redundant_dependency_keeps_a_chain_a_chain() -> None:
    steps = (
        StepDefinition("a"),
        StepDefinition("b", depends_on=("a",)),
        StepDefinition("c", depends_on=("a", "b")),
    )
    assert SagaDefinition("abc", steps).is_chain()


def test_a_step_that_skips_its_predecessor_breaks_the_chain() -> None:
    steps = (
        StepDefinition("a"),
        StepDefinition("b", depends_on=("a",)),
        StepDefinition("c", depends_on=("a",)),
    )
    assert not SagaDefinition("forked", steps).is_chain()

import doctest
import importlib

import pytest

MODULES = [
    "keras_ca2st.training.schedules",
    "keras_ca2st.training.optimizer",
    "keras_ca2st.training.losses",
    "keras_ca2st.training.metrics",
    "keras_ca2st.training.evaluation",
    "keras_ca2st.training.distribution",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    result = doctest.testmod(importlib.import_module(name), verbose=False)
    assert result.failed == 0

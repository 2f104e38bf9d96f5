"""The examples in the mixers' docstrings run and print what they claim."""

import doctest
import importlib

import pytest


@pytest.mark.parametrize(
    "module",
    [
        "augment._boxes",
        "augment.box_formats",
        "augment.regions",
        "augment.cutmix",
        "augment.saliency",
        "augment.saliencymix",
        "augment.puzzlemix",
        "augment.mixup",
        "augment.copypaste",
        "augment.dataset",
        "augment.sample",
    ],
)
def test_docstring_examples(module):
    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted > 0 and result.failed == 0

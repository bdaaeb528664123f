"""JSON read from a user or a bucket is bounded before it is parsed, and no message repeats a long value whole."""

import json

import pytest

from cicd_components.hyperparameters.rule import HyperparametersError, parse_hyperparameters
from cicd_components.untrusted import TooLarge, clip, depth, loads

KNOWN = {"learning_rate": "float", "hidden_units": "int"}


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("[" * 20_000 + "]" * 20_000, "nested more than 64 levels"),  # was a RecursionError
        ('{"hidden_units": ' + "9" * 5_000 + "}", "integer of 5000 digits"),  # was int()'s ValueError
        ('"' + "x" * (9 << 20) + '"', "bytes, more than"),
    ],
    ids=["20000-deep", "5000-digit-integer", "9-MB"],
)
def test_a_document_past_a_bound_is_refused_before_it_is_parsed(text, says):
    with pytest.raises(TooLarge, match=says):
        loads(text)


def test_brackets_inside_strings_are_not_depth_and_good_json_parses_as_json_does():
    text = '{"a": "[[[[{{{{\\"]]", "b": [1, [2, {"c": -3}]], "d": 1.5e300}'
    assert depth(text) == 4  # {, [, [, {
    assert loads(text) == json.loads(text)
    assert loads(text.encode()) == json.loads(text)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('{"hidden_units": ' + "[" * 20_000 + "]" * 20_000 + "}", "nested more than"),
        ('{"hidden_units": ' + "9" * 5_000 + "}", "5000 digits"),
    ],
    ids=["deep", "long-integer"],
)
def test_hyperparameters_past_a_bound_are_one_clipped_line(text, says):
    with pytest.raises(HyperparametersError, match=says) as caught:
        parse_hyperparameters(text, KNOWN)
    message = str(caught.value)
    assert "\n" not in message and len(message) < 400, message


def test_a_long_value_is_clipped_in_every_message():
    value = "x" * 120_000
    for text in (json.dumps({"hidden_units": value}), json.dumps({value: 1}), value):
        with pytest.raises(HyperparametersError) as caught:
            parse_hyperparameters(text, KNOWN)
        assert len(str(caught.value)) < 600 and "120" in str(caught.value), str(caught.value)[:300]


def test_clip_says_how_long_the_value_was():
    assert clip("short") == "short"
    assert clip("y" * 100) == "y" * 80 + "... (100 characters)"

"""vertex_labels: every label the chain and the registry uploader send meets Vertex AI's rules."""

import pytest

from cicd_components.labels import vertex_labels


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({"trainer_version": "0.1.0"}, {"trainer_version": "0-1-0"}),
        ({"Branch": "Feat/New_Model"}, {"branch": "feat-new_model"}),
        ({"commit": "a" * 70}, {"commit": "a" * 63}),
        ({"empty": ""}, {"empty": ""}),
    ],
)
def test_vertex_labels_sanitises_to_vertex_rules(given: dict[str, str], expected: dict[str, str]) -> None:
    assert vertex_labels(given) == expected


@pytest.mark.parametrize(("given", "message"), [({"1st": "x"}, "'1st'"), ({"a.b": "x", "A/B": "y"}, "'a-b'")])
def test_vertex_labels_rejects_unsalvageable_keys(given: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        vertex_labels(given)

"""``preprocessing_fn`` run through real TF Transform, checked against values worked out by hand."""

import ast
from collections import Counter

import numpy as np
import pytest
import tensorflow_transform as tft

SPECIES = ("Adelie", "Chinstrap", "Gentoo")
MEASUREMENTS = ("bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g")

# Every value is distinct, so each transformed row can be matched to its raw row whatever order Beam keeps.
ROWS = [
    {
        "species": "Adelie",
        "bill_length_mm": 39.1,
        "bill_depth_mm": 18.7,
        "flipper_length_mm": 181,
        "body_mass_g": 3750,
    },
    {
        "species": "Chinstrap",
        "bill_length_mm": 46.5,
        "bill_depth_mm": 17.9,
        "flipper_length_mm": 192,
        "body_mass_g": 3500,
    },
    {
        "species": "Gentoo",
        "bill_length_mm": 46.1,
        "bill_depth_mm": 13.2,
        "flipper_length_mm": 211,
        "body_mass_g": 4500,
    },
    # An empty cell, as CsvExampleGen writes it: the feature is there with no value.
    {
        "species": "Adelie",
        "bill_length_mm": None,
        "bill_depth_mm": 17.4,
        "flipper_length_mm": 186,
        "body_mass_g": 3800,
    },
    # An integer measurement absent altogether.
    {"species": "Gentoo", "bill_length_mm": 50.0, "bill_depth_mm": 16.3, "flipper_length_mm": 230},
]


def expected_z_scores(key: str) -> np.ndarray:
    """What TFT should compute: impute the mean of the present values, then z-score with the population std."""
    values = np.array([row.get(key) for row in ROWS], dtype=object)
    missing = np.array([v is None for v in values])
    present = values[~missing].astype(np.float64)
    imputed = np.where(missing, present.mean(), values).astype(np.float64)
    return (imputed - imputed.mean()) / imputed.std()  # np.std is the population std, as tft.var is.


@pytest.fixture(scope="module")
def transformed(run_transform, read_transformed, tmp_path_factory):
    transform_output, pattern = run_transform(ROWS, tmp_path_factory.mktemp("preprocessing"))
    return tft.TFTransformOutput(str(transform_output)), read_transformed(pattern)


def test_module_files_stand_alone(module_files):
    # TFX imports each file by path, and on Vertex AI from a lone gs:// copy: no sibling or package imports.
    for path in module_files:
        imported = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                assert node.level == 0, f"{path.name} has a relative import (from {'.' * node.level})"
                imported.add(node.module)
        roots = {name.split(".")[0] for name in imported}
        assert "cicd_trainer" not in roots, f"{path.name} imports cicd_trainer"
        assert {"preprocessing", "model"}.isdisjoint(roots), f"{path.name} imports its sibling"


def test_outputs_are_the_model_inputs_and_label(transformed):
    _, rows = transformed
    assert len(rows) == len(ROWS)
    expected = {f"{key}_xf" for key in MEASUREMENTS} | {"species_xf"}
    assert all(set(row) == expected for row in rows)


def test_measurements_are_imputed_then_z_scored(transformed):
    tf_transform_output, rows = transformed
    vocabulary = [v.decode() for v in tf_transform_output.vocabulary_by_name("species")]
    # Match each output row to its raw row by the (distinct) transformed values, whatever order Beam kept.
    expected = sorted(
        (tuple(expected_z_scores(key)[i] for key in MEASUREMENTS), vocabulary.index(ROWS[i]["species"]))
        for i in range(len(ROWS))
    )
    actual = sorted((tuple(row[f"{key}_xf"] for key in MEASUREMENTS), row["species_xf"]) for row in rows)
    for (want_z, want_label), (got_z, got_label) in zip(expected, actual, strict=True):
        np.testing.assert_allclose(got_z, want_z, rtol=1e-5, atol=1e-6)
        assert got_label == want_label


def test_a_missing_measurement_becomes_the_mean(transformed):
    # Imputed with the mean, the missing value sits at the centre: its z-score is exactly 0.
    _, rows = transformed
    assert sum(row["bill_length_mm_xf"] == pytest.approx(0.0, abs=1e-6) for row in rows) == 1
    assert sum(row["body_mass_g_xf"] == pytest.approx(0.0, abs=1e-6) for row in rows) == 1


def test_species_ids_follow_the_written_vocabulary(transformed):
    # The model names its predictions from this file, so the ids in the data must index into it.
    tf_transform_output, rows = transformed
    vocabulary = [v.decode() for v in tf_transform_output.vocabulary_by_name("species")]
    assert sorted(vocabulary) == list(SPECIES)
    assert Counter(vocabulary[row["species_xf"]] for row in rows) == Counter(row["species"] for row in ROWS)

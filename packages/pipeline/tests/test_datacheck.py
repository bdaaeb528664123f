"""The data check names each problem as file:line, in seconds and without TFX; harmless oddities pass."""

from pathlib import Path

import pytest

from cicd_pipeline.datacheck import check_data_root, schema_columns

ROOT = Path(__file__).resolve().parents[3]
SCHEMA = ROOT / "packages" / "trainer" / "src" / "cicd_trainer" / "schema" / "schema.pbtxt"
SHIPPED = ROOT / "data" / "penguins" / "penguins.csv"
HEADER = "species,bill_length_mm,bill_depth_mm,flipper_length_mm,body_mass_g"


def folder(tmp_path: Path, **files: bytes) -> Path:
    root = tmp_path / "data"
    root.mkdir()
    for name, data in files.items():
        (root / name.replace("__", ".")).write_bytes(data)
    return root


def rows(*lines: str) -> bytes:
    return ("\n".join([HEADER, *lines]) + "\n").encode()


def test_the_schema_names_the_columns():
    assert schema_columns(SCHEMA) == HEADER.split(",")


def test_the_shipped_data_passes():
    report = check_data_root(SHIPPED.parent, SCHEMA)
    assert report.ok and report.files == 1 and report.rows == 277, report.format()


@pytest.mark.parametrize(
    "data",
    [
        SHIPPED.read_bytes().replace(b"\n", b"\r\n"),  # CRLF line endings
        SHIPPED.read_bytes() + b"\n".join(SHIPPED.read_bytes().splitlines()[1:]) + b"\n",  # repeated rows
    ],
    ids=["crlf", "repeated-rows"],
)
def test_harmless_oddities_pass(tmp_path, data):
    assert check_data_root(folder(tmp_path, penguins__csv=data), SCHEMA).ok


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"p__csv": rows("Adelie,39.1,18.7,181,3750", "Chinstrap,50.2")}, "data/p.csv:3: not 5 fields"),
        (
            {
                "p__csv": rows("Adelie,39.1,18.7,181,3750", "Gentoo,45.2,14.8,212,5200").replace(
                    b"Gentoo", b"Gent\xe9o"
                )
            },
            "data/p.csv:3: not UTF-8",
        ),
        (
            {"p__csv": b"\xef\xbb\xbf" + rows("Adelie,39.1,18.7,181,3750")},
            "data/p.csv:1: starts with a UTF-8 byte-order mark",
        ),
        (
            {"p__csv": rows("Adelie,39.1,18.7,181,3750"), "README__md": b"# notes\n"},
            "data/README.md: not a CSV file",
        ),
        ({"p__csv": rows()}, "data/p.csv: a header and no rows"),
        (
            {"p__csv": b"species,bill_length,body_mass_g\nAdelie,39.1,3750\n"},
            "does not match the schema's columns",
        ),
        ({"p__csv": b""}, "data/p.csv: empty"),
        ({}, "no CSV file"),
    ],
    ids=[
        "truncated-row",
        "latin-1-byte",
        "byte-order-mark",
        "readme-beside",
        "header-only",
        "wrong-header",
        "empty",
        "no-files",
    ],
)
def test_each_problem_is_named_by_file_and_line(tmp_path, files, expected):
    report = check_data_root(folder(tmp_path, **files), SCHEMA)
    assert not report.ok and expected in report.format(), report.format()


def test_a_subfolder_is_named_and_its_files_are_not_read(tmp_path):
    root = folder(tmp_path, p__csv=rows("Adelie,39.1,18.7,181,3750"))
    (root / "2024").mkdir()
    (root / "2024" / "q.csv").write_bytes(rows("Adelie,1"))
    report = check_data_root(root, SCHEMA)
    assert not report.ok and "data/2024: a folder inside the data root" in report.format()
    assert "q.csv" not in report.format() and report.rows_by_file == (("p.csv", 1),)


def test_rows_are_counted_per_file(tmp_path):
    report = check_data_root(
        folder(tmp_path, a__csv=rows("Adelie,39.1,18.7,181,3750"), b__csv=rows(*["Gentoo,1,2,3,4"] * 3)),
        SCHEMA,
    )
    assert report.ok and report.rows_by_file == (("a.csv", 1), ("b.csv", 3)) and report.rows == 4


def test_files_with_different_headers_are_named(tmp_path):
    other = b"species,bill_depth_mm,bill_length_mm,flipper_length_mm,body_mass_g\nAdelie,18.7,39.1,181,3750\n"
    report = check_data_root(folder(tmp_path, a__csv=rows("Adelie,39.1,18.7,181,3750"), b__csv=other), SCHEMA)
    assert "data/b.csv: a header other than data/a.csv's" in report.format()


def test_many_bad_rows_are_counted_not_all_listed(tmp_path):
    report = check_data_root(folder(tmp_path, p__csv=rows(*["Adelie,1"] * 40)), SCHEMA)
    assert "and 35 more: not 5 fields like the header" in report.format() and "(40 row(s))" in report.format()


@pytest.mark.parametrize("target", ["outside.csv", "/proc/self/environ"])
def test_a_link_is_refused_and_never_read(tmp_path, target):
    """A link reads bytes from outside the data folder; its content must not reach a message (issue 16)."""
    outside = tmp_path / "outside.csv"
    outside.write_bytes(rows("Adelie,39.1,18.7,181,3750").replace(b"species", b"SECRET_TOKEN"))
    root = folder(tmp_path, p__csv=rows("Adelie,39.1,18.7,181,3750"))
    (root / "linked.csv").symlink_to(outside if target == "outside.csv" else target)
    report = check_data_root(root, SCHEMA)
    assert not report.ok
    assert "data/linked.csv: a link" in report.format()
    assert "SECRET_TOKEN" not in report.format()
    assert report.files == 1  # the real file only


def test_a_linked_folder_is_refused_and_not_walked(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "x.csv").write_bytes(rows("Adelie,39.1,18.7,181,3750"))
    root = folder(tmp_path, p__csv=rows("Adelie,39.1,18.7,181,3750"))
    (root / "more").symlink_to(elsewhere, target_is_directory=True)
    report = check_data_root(root, SCHEMA)
    assert "data/more: a link" in report.format()
    assert "x.csv" not in report.format()


def test_a_large_file_is_read_in_a_stream(tmp_path):
    """Memory does not grow with the file: only the first few bad line numbers are kept, all are counted."""
    bad = ["Adelie,1"] * 10_000
    report = check_data_root(
        folder(tmp_path, p__csv=rows(*(["Adelie,39.1,18.7,181,3750"] * 50_000 + bad))), SCHEMA
    )
    assert report.rows == 60_000
    assert "data/p.csv:50002, data/p.csv:50003" in report.format() and "and 9995 more" in report.format()

"""The catalog CSV: headers and mappings, per-row validation with line numbers, prices, tags, encodings."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from orchestrator.errors import BadRequest, InvalidInput
from orchestrator.ingest.csv_rows import (
    CatalogRow,
    ColumnMapping,
    RowError,
    iter_catalog_rows,
    parse_catalog_csv,
    parse_price,
)

HEADER = "id,name,image,link,brand,price,tags,category\n"


def _csv(*lines: str, header: str = HEADER) -> bytes:
    return (header + "".join(line + "\n" for line in lines)).encode("utf-8")


def _one(data: bytes, **kwargs) -> CatalogRow:
    rows, errors = parse_catalog_csv(data, **kwargs)
    assert errors == [] and len(rows) == 1
    return rows[0]


def _errors(data: bytes, **kwargs) -> list[RowError]:
    return parse_catalog_csv(data, **kwargs)[1]


def test_parse_reads_every_field_of_the_original_layout():
    row = _one(_csv('A1,Red Dress,https://img.example.com/a1.jpg,https://shop.example.com/A1,Acme,"12,900",red|dress,Dress'))

    assert (row.product_id, row.name, row.image) == ("A1", "Red Dress", "https://img.example.com/a1.jpg")
    assert (row.link, row.brand, row.price) == ("https://shop.example.com/A1", "Acme", 12900.0)
    assert row.tags == ("red", "dress") and row.category == "dress" and row.line == 2
    assert len(row.row_hash) == 64


def test_parse_handles_korean_text_in_utf8_with_and_without_bom():
    line = "K1,검은색 원피스,k1.jpg,,스냅핏,39000원,검은색|원피스,dress"
    plain = _one(_csv(line))
    with_bom = _one(b"\xef\xbb\xbf" + _csv(line))

    assert plain.name == "검은색 원피스" and plain.brand == "스냅핏" and plain.tags == ("검은색", "원피스")
    assert with_bom == plain


def test_parse_refuses_a_non_utf8_file_naming_the_encoding():
    data = _csv("K1,검은색 원피스,k1.jpg,,,,,top").decode("utf-8").encode("cp949")

    with pytest.raises(BadRequest, match="not valid UTF-8.*line 2"):
        parse_catalog_csv(data)


def test_parse_refuses_a_non_utf8_file_on_disk_while_streaming(tmp_path):
    path = tmp_path / "catalog.csv"
    path.write_bytes(_csv("K1,검은색 원피스,k1.jpg,,,,,top").decode("utf-8").encode("cp949"))

    with pytest.raises(BadRequest, match="UTF-8"):
        parse_catalog_csv(path)


def test_parse_names_the_missing_required_column_and_the_headers_found():
    with pytest.raises(BadRequest) as caught:
        parse_catalog_csv(_csv("A1,x", header="id,title_ko\n"))

    message = caught.value.message
    assert "'image'" in message and "headers found: 'id', 'title_ko'" in message


def test_parse_refuses_an_empty_file():
    with pytest.raises(BadRequest, match=r"headers found: \(none\)"):
        parse_catalog_csv(b"")


def test_parse_accepts_common_header_aliases_case_insensitively():
    header = " Product_ID ,Product_Name,IMAGE_URL,Product_Link,Brand,Price,Tags,Category\n"

    row = _one(_csv("P1,Jeans,https://i.example.com/p1.png,https://s.example.com/p1,,,,bottom", header=header))

    assert (row.product_id, row.name, row.image, row.link) == (
        "P1", "Jeans", "https://i.example.com/p1.png", "https://s.example.com/p1")


def test_parse_uses_an_explicit_mapping_for_another_layout():
    mapping = ColumnMapping(product_id="sku", image="img", name="title")

    row = _one(_csv("S-9,Hoodie,https://i.example.com/s9.jpg", header="sku,title,img\n"), mapping=mapping)

    assert (row.product_id, row.name, row.brand, row.price, row.tags) == ("S-9", "Hoodie", "", None, ())


def test_parse_refuses_a_mapping_that_names_an_absent_optional_column():
    with pytest.raises(BadRequest, match="'cost'"):
        parse_catalog_csv(_csv("A,b,c.jpg", header="id,name,image\n"), mapping=ColumnMapping(price="cost"))


def test_parse_reads_tab_separated_files_with_a_mapping_delimiter():
    data = "id\tname\timage\nT1\tShirt, blue\tt1.jpg\n".encode()

    assert _one(data, mapping=ColumnMapping(delimiter="\t")).name == "Shirt, blue"


@pytest.mark.parametrize("suffix,text", [
    (".json", json.dumps({"product_id": "sku", "image": "img"})),
    (".toml", 'product_id = "sku"\nimage = "img"\n'),
])
def test_column_mapping_loads_from_json_and_toml_files(tmp_path, suffix, text):
    path = tmp_path / f"mapping{suffix}"
    path.write_text(text, encoding="utf-8")

    assert ColumnMapping.from_file(path) == ColumnMapping(product_id="sku", image="img")


def test_column_mapping_file_with_an_unknown_key_is_invalid_input(tmp_path):
    path = tmp_path / "mapping.json"
    path.write_text(json.dumps({"sku": "product_id"}), encoding="utf-8")

    with pytest.raises(InvalidInput, match="sku"):
        ColumnMapping.from_file(path)


def test_parse_reports_missing_required_values_with_their_line_numbers():
    rows, errors = parse_catalog_csv(_csv(
        "A1,Shirt,a1.jpg,,,,,top",
        ",No id,x.jpg,,,,,top",
        "A3,,a3.jpg,,,,,top",
        "A4,No image,,,,,,top",
    ))

    assert [r.product_id for r in rows] == ["A1"]
    assert [(e.line, e.message) for e in errors] == [
        (3, "missing product_id"), (4, "missing name"), (5, "missing image")]
    assert str(errors[1]) == "line 4 (id 'A3'): missing name"


def test_parse_keeps_the_first_row_of_a_duplicate_id_and_reports_the_later_ones():
    rows, errors = parse_catalog_csv(_csv(
        "D1,First,d1.jpg,,,,,top",
        "D2,Other,d2.jpg,,,,,top",
        "D1,Second,d1b.jpg,,,,,top",
    ))

    assert [(r.product_id, r.name) for r in rows] == [("D1", "First"), ("D2", "Other")]
    assert len(errors) == 1 and errors[0].line == 4 and "duplicate id (first on line 2)" in errors[0].message


def test_parse_lets_a_valid_row_take_an_id_whose_first_row_was_invalid():
    rows, errors = parse_catalog_csv(_csv("D1,Bad,d1.jpg,,,-5,,top", "D1,Good,d1.jpg,,,5,,top"))

    assert [r.name for r in rows] == ["Good"] and "negative" in errors[0].message


def test_parsing_the_same_file_twice_gives_identical_rows_and_hashes():
    data = _csv("A1,Shirt,a1.jpg,,,100,a|b,top", "A1,Dup,a1.jpg,,,,,top", "B1,Skirt,b1.jpg,,,,,bottom")

    assert parse_catalog_csv(data) == parse_catalog_csv(data)


def test_row_hash_changes_when_a_field_changes_and_ignores_whitespace_and_tag_case():
    base = _one(_csv("A1,Shirt,a1.jpg,,Acme,100,red|top,top"))
    spaced = _one(_csv("A1 , Shirt ,a1.jpg,, Acme ,100, RED | Top ,TOP"))
    repriced = _one(_csv("A1,Shirt,a1.jpg,,Acme,101,red|top,top"))

    assert spaced.row_hash == base.row_hash
    assert repriced.row_hash != base.row_hash


@pytest.mark.parametrize("text,expected", [
    ("12900", 12900.0), ("12,900", 12900.0), ("₩12,900", 12900.0), ("￦ 12,900", 12900.0),
    ("12900원", 12900.0), ("12,900 원", 12900.0), ("$19.99", 19.99), ("19.99 USD", 19.99),
    ("1,234,567.5", 1234567.5), ("0", 0.0), ("", None), ("  ", None),
])
def test_parse_price_accepts_common_price_formats(text, expected):
    assert parse_price(text) == expected


@pytest.mark.parametrize("text", ["-100", "₩-12,900", "-$5", "abc", "12,90", "1.299,00", "12.9.9", "nan", "1e5", "free"])
def test_parse_price_rejects_negatives_and_garbage(text):
    with pytest.raises(ValueError, match="negative|not a number"):
        parse_price(text)


def test_parse_reports_a_bad_price_as_a_row_error_and_keeps_parsing():
    rows, errors = parse_catalog_csv(_csv("A1,Shirt,a1.jpg,,,lots,,top", "A2,Shirt,a2.jpg,,,7,,top"))

    assert [r.product_id for r in rows] == ["A2"]
    assert errors[0].line == 2 and "price 'lots' is not a number" in errors[0].message


def test_parse_splits_tags_on_pipes_commas_and_semicolons_and_deduplicates():
    row = _one(_csv('A1,Shirt,a1.jpg,,,,"Red| Blue ,red;;  summer   sale ",top'))

    assert row.tags == ("red", "blue", "summer sale")


def test_parse_normalises_categories_and_accepts_unknown_ones_by_default():
    assert _one(_csv("A1,Shirt,a1.jpg,,,,, Outer ")).category == "outer"
    assert _one(_csv("A1,Bag,a1.jpg,,,,,accessories")).category == "accessories"


def test_parse_rejects_categories_outside_the_allowed_set():
    rows, errors = parse_catalog_csv(
        _csv("A1,Shirt,a1.jpg,,,,,TOP", "A2,Bag,a2.jpg,,,,,bag", "A3,Thing,a3.jpg,,,,,"),
        allowed_categories=["top", "Bottom"],
    )

    assert [r.product_id for r in rows] == ["A1"]
    assert "category 'bag' is not one of bottom, top" in errors[0].message
    assert "missing category" in errors[1].message


def test_parse_rejects_links_that_are_not_http_urls():
    errors = _errors(_csv("A1,Shirt,a1.jpg,javascript:alert(1),,,,top"))

    assert "is not an http(s) URL" in errors[0].message


def test_parse_rejects_image_references_with_other_url_schemes():
    errors = _errors(_csv("A1,Shirt,file:///etc/passwd,,,,,top", "A2,Shirt,ftp://h/a.jpg,,,,,top"))

    assert len(errors) == 2 and all("only http(s) URLs or local paths" in e.message for e in errors)


def test_parse_resolves_relative_image_paths_against_the_csv_folder(tmp_path):
    path = tmp_path / "shop" / "catalog.csv"
    path.parent.mkdir()
    path.write_bytes(_csv("A1,Shirt,images/a1.jpg,,,,,top", "A2,Shirt,/abs/a2.jpg,,,,,top",
                          "A3,Shirt,https://i.example.com/a3.jpg,,,,,top"))

    rows, _ = parse_catalog_csv(path)

    assert rows[0].image == str(tmp_path / "shop" / "images" / "a1.jpg")
    assert rows[1].image == "/abs/a2.jpg" and rows[2].image == "https://i.example.com/a3.jpg"


def test_row_hash_does_not_depend_on_where_the_csv_lives(tmp_path):
    data = _csv("A1,Shirt,images/a1.jpg,,,,,top")
    for folder in ("one", "two"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "c.csv").write_bytes(data)

    first = parse_catalog_csv(tmp_path / "one" / "c.csv")[0][0]
    second = parse_catalog_csv(tmp_path / "two" / "c.csv")[0][0]

    assert first.image != second.image and first.row_hash == second.row_hash


def test_parse_leaves_relative_paths_of_uploaded_bytes_as_written_unless_given_a_base_dir(tmp_path):
    data = _csv("A1,Shirt,images/a1.jpg,,,,,top")

    assert _one(data).image == "images/a1.jpg"
    assert _one(data, base_dir=tmp_path).image == str(tmp_path / "images" / "a1.jpg")


def test_parse_reports_records_with_the_wrong_number_of_fields():
    rows, errors = parse_catalog_csv(_csv("A1,Shirt, blue,a1.jpg,,,,,top", "A2,Shirt,a2.jpg"))

    assert rows == []
    assert [e.line for e in errors] == [2, 3] and "9 fields but the header has 8" in errors[0].message


def test_line_numbers_count_physical_lines_of_multiline_fields_and_blank_lines():
    rows, errors = parse_catalog_csv(_csv('A1,"Two\nline name",a1.jpg,,,,,top', "", "A2,,a2.jpg,,,,,top"))

    assert rows[0].line == 2 and rows[0].name == "Two\nline name"
    assert errors[0].line == 5


def test_parse_reports_malformed_quoting_as_bad_request_with_a_line():
    with pytest.raises(BadRequest, match="malformed CSV near line 3"):
        parse_catalog_csv(_csv("A1,Shirt,a1.jpg,,,,,top", 'A2,"Sh"irt,a2.jpg,,,,,top'))


def test_parse_reads_text_and_binary_streams_without_closing_them():
    data = _csv("A1,검은색 원피스,a1.jpg,,,,,dress")
    binary = io.BytesIO(b"\xef\xbb\xbf" + data)
    text = io.StringIO(data.decode("utf-8"), newline="")

    assert parse_catalog_csv(binary)[0][0].name == parse_catalog_csv(text)[0][0].name == "검은색 원피스"
    assert not binary.closed and not text.closed


def test_iter_catalog_rows_checks_the_header_before_the_first_next():
    with pytest.raises(BadRequest, match="missing required column"):
        iter_catalog_rows(b"sku,title\n1,2\n")


def test_iter_catalog_rows_streams_a_large_file_lazily(tmp_path):
    path = tmp_path / "big.csv"
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write(HEADER)
        for i in range(20_000):
            out.write(f"P{i},Product {i},img/{i}.jpg,,,{i},,top\n")

    stream = iter_catalog_rows(path)
    first = next(stream)
    count = 1 + sum(1 for _ in stream)

    assert isinstance(first, CatalogRow) and first.product_id == "P0" and count == 20_000


def test_to_product_carries_the_row_fields():
    product = _one(_csv("A1,Shirt,a1.jpg,,Acme,100,a|b,top")).to_product()

    assert (product.product_id, product.brand, product.price, product.tags) == ("A1", "Acme", 100.0, ["a", "b"])
    assert product.embedding is None and product.source_hash


def test_parse_reports_a_malformed_url_without_crashing():
    errors = _errors(_csv("A1,Shirt,http://[bad,http://[bad,,,,top"))

    assert len(errors) == 1 and errors[0].line == 2
    assert "link 'http://[bad' is not an http(s) URL" in errors[0].message
    assert "image URL 'http://[bad' is malformed" in errors[0].message


def test_a_spreadsheet_export_with_bom_crlf_quoted_newlines_and_formulas_parses_as_data():
    """What Excel writes: BOM, CRLF, a quoted field with a line break, cells a spreadsheet would run as formulas.
    The formulas stay text (they are data here; the admin page quotes them in its error report)."""
    data = ("\ufeffid,name,image,link,brand,price,tags,category\r\n"
            'F1,"Two-line\r\nname",f1.jpg,,"=HYPERLINK(""https://evil.example"")",1000,,top\r\n'
            "F1,duplicate,f2.jpg,,,,,top\r\n"
            "@SUM(A1),ok,f3.jpg,,,,,top\r\n").encode()
    rows, errors = parse_catalog_csv(data)
    assert [r.product_id for r in rows] == ["F1", "@SUM(A1)"]
    assert rows[0].name == "Two-line\r\nname" or rows[0].name == "Two-line\nname"
    assert rows[0].brand == '=HYPERLINK("https://evil.example")'
    assert [(e.product_id, "duplicate id" in e.message) for e in errors] == [("F1", True)]
    assert errors[0].line == 4  # physical lines: the quoted break counts

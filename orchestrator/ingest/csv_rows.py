"""The crawled catalog CSV: column mapping, per-row validation with line numbers, normalised rows.

Format (the original crawl): one header line, then one product per record, UTF-8 (a BOM is fine):

    id,name,image,link,brand,price,tags,category
    A1,검은색 원피스,images/a1.jpg,https://shop.example.com/p/A1,스냅핏,"₩39,000",black|dress,dress

Rules, decided once and applied everywhere:
- Headers are matched case-insensitively, ignoring surrounding spaces; each field has a few accepted
  aliases (see `DEFAULT_ALIASES`), tried in order; a `ColumnMapping` names other headers explicitly.
- `id`, `name` and `image` are required columns and required values; the other columns may be absent.
  When two headers have the same name, the first is used.
- Duplicate ids: the first valid row with an id wins; every later row with that id is reported as a
  `RowError` and skipped. This is streaming-friendly and deterministic, so importing the same file twice
  gives the same rows (idempotent). Ids are compared exactly (case-sensitive, after trimming spaces).
- Prices: "12900", "12,900", "₩12,900", "12900원", "$19.99", "19.99 USD" are accepted (the currency is
  dropped); negatives and anything else are row errors; an empty price is None.
- Tags: split on any of `|`, `,`, `;`; trimmed, lower-cased, empty ones dropped, duplicates removed.
- Category: trimmed and lower-cased; any value is accepted unless `allowed_categories` is given.
- Image: an http(s) URL is kept as is; anything else is a local path, resolved against `base_dir`
  (default: the CSV's folder for a path source; left as written for uploaded bytes/streams).
- Link: empty or an http(s) URL (a `javascript:` link would end up in the shop's HTML).
- A record with a different number of fields than the header is a row error (an unquoted comma
  would otherwise shift every later column silently); blank lines are skipped.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.domain import Product
from orchestrator.errors import BadRequest, InvalidInput

FIELDS = ("product_id", "name", "image", "link", "brand", "price", "tags", "category")
REQUIRED_FIELDS = ("product_id", "name", "image")

DEFAULT_ALIASES: dict[str, tuple[str, ...]] = {
    "product_id": ("id", "product_id", "productid", "product id", "sku"),
    "name": ("name", "product_name", "product name", "title"),
    "image": ("image", "image_url", "image url", "img", "img_url", "image_path", "image_link"),
    "link": ("link", "url", "product_link", "product link", "product_url", "product url"),
    "brand": ("brand", "brand_name", "brand name"),
    "price": ("price", "sale_price"),
    "tags": ("tags", "tag", "keywords"),
    "category": ("category", "product_category", "categories"),
}
"""Headers tried for each field, in order, when the mapping does not name one (case-insensitive)."""

_MAX_ID_CHARS = 200


class ColumnMapping(BaseModel):
    """Which CSV header holds each product field; None means "the first of DEFAULT_ALIASES present".

    Example, for a layout with `sku` and `img` columns (JSON or TOML file with the same keys):

        ColumnMapping(product_id="sku", image="img")
        ColumnMapping.from_file(Path("mapping.toml"))   # product_id = "sku"\\nimage = "img"

    A header named explicitly must exist, even for an optional field. `delimiter` is the field
    separator (e.g. "\\t" for TSV); `tag_separators` are the characters tags are split on.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    product_id: str | None = None
    name: str | None = None
    image: str | None = None
    link: str | None = None
    brand: str | None = None
    price: str | None = None
    tags: str | None = None
    category: str | None = None
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    tag_separators: str = Field(default="|,;", min_length=1)

    @classmethod
    def from_file(cls, path: Path) -> ColumnMapping:
        """Loads a mapping from a .json or .toml file of `field = "header"` pairs.

        raises: InvalidInput for an unknown key, a wrong type or an unreadable file.
        """
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
            raw = tomllib.loads(text) if path.suffix.lower() == ".toml" else json.loads(text)
            return cls.model_validate(raw)
        except (OSError, UnicodeDecodeError, ValueError, tomllib.TOMLDecodeError) as exc:
            # pydantic's ValidationError is a ValueError; its message lists every bad key.
            raise InvalidInput(f"invalid column mapping {path}: {exc}") from None

    def resolve(self, headers: list[str]) -> dict[str, int]:
        """Column index of each field present in `headers` (absent optional fields are left out).

        raises: BadRequest naming the missing column(s) and the headers found.
        """
        index: dict[str, int] = {}
        for position, header in enumerate(headers):
            index.setdefault(_header_key(header), position)
        columns: dict[str, int] = {}
        missing: list[str] = []
        for field in FIELDS:
            explicit = getattr(self, field)
            candidates = (explicit,) if explicit is not None else DEFAULT_ALIASES[field]
            found = next((index[_header_key(c)] for c in candidates if _header_key(c) in index), None)
            if found is not None:
                columns[field] = found
            elif explicit is not None or field in REQUIRED_FIELDS:
                missing.append(repr(explicit) if explicit is not None else " or ".join(map(repr, candidates[:4])))
        if missing:
            raise BadRequest(
                f"CSV is missing required column(s) {', '.join(missing)}; "
                f"headers found: {', '.join(repr(h) for h in headers) or '(none)'}"
            )
        return columns


@dataclass(frozen=True)
class CatalogRow:
    """One valid CSV record, normalised.

    image: an http(s) URL, or a local path (resolved against the base folder when there is one).
    price: in the CSV's currency units, currency symbol dropped; None when empty.
    tags: lower-cased, unique, in CSV order.
    row_hash: sha256 hex of the normalised fields, with the image as written in the CSV (so moving
        the CSV and its images to another folder does not change it); equal rows hash equally.
    line: 1-based line number where the record starts in the file (the header is line 1).
    """

    product_id: str
    name: str
    image: str
    link: str
    brand: str
    price: float | None
    tags: tuple[str, ...]
    category: str
    row_hash: str
    line: int

    def to_product(self) -> Product:
        """A `Product` with this row's fields (not yet embedded nor classified)."""
        return Product(
            product_id=self.product_id, name=self.name, image=self.image, link=self.link,
            brand=self.brand, price=self.price, tags=list(self.tags), category=self.category,
            source_hash=self.row_hash,
        )


@dataclass(frozen=True)
class RowError:
    """Why one CSV record was skipped. `message` lists every problem of the record."""

    line: int
    product_id: str | None
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}" + (f" (id {self.product_id!r})" if self.product_id else "")
        return f"{where}: {self.message}"


CsvSource = Path | str | bytes | TextIO | io.BufferedIOBase


def parse_catalog_csv(
    source: CsvSource,
    mapping: ColumnMapping | None = None,
    allowed_categories: Iterable[str] | None = None,
    *,
    base_dir: Path | None = None,
) -> tuple[list[CatalogRow], list[RowError]]:
    """Parses a whole catalog CSV: the valid rows, and one error per skipped record, both in file order.

    source: a path (str or Path), the file's bytes, or an open text or binary stream (not closed here).
    raises: BadRequest for a missing required header, a non-UTF-8 file or malformed CSV quoting.
    """
    rows: list[CatalogRow] = []
    errors: list[RowError] = []
    for item in iter_catalog_rows(source, mapping, allowed_categories, base_dir=base_dir):
        (rows if isinstance(item, CatalogRow) else errors).append(item)
    return rows, errors


def iter_catalog_rows(
    source: CsvSource,
    mapping: ColumnMapping | None = None,
    allowed_categories: Iterable[str] | None = None,
    *,
    base_dir: Path | None = None,
) -> Iterator[CatalogRow | RowError]:
    """Streams `CatalogRow`s and `RowError`s in file order, holding one record (plus the ids seen).

    The header is read and checked when this is called, so a missing column raises BadRequest here,
    not at the first `next()`. Encoding and quoting errors later in the file raise BadRequest then.
    """
    mapping = mapping or ColumnMapping()
    if base_dir is None and isinstance(source, (str, Path)):
        base_dir = Path(source).resolve().parent
    stream, owned = _open_text(source)
    try:
        reader = csv.reader(stream, delimiter=mapping.delimiter, strict=True)
        headers = [h.strip().lstrip("\ufeff") for h in _next_record(reader) or []]
        columns = mapping.resolve(headers)
    except BaseException:
        _close(stream, owned)
        raise
    validator = _RowValidator(mapping, columns, len(headers), allowed_categories, base_dir)
    return _records(reader, stream, owned, validator)


def _records(reader, stream: TextIO, owned: bool, validator: _RowValidator) -> Iterator[CatalogRow | RowError]:
    try:
        while True:
            line = reader.line_num + 1
            record = _next_record(reader, line)
            if record is None:
                return
            if any(cell.strip() for cell in record):
                yield validator.validate(record, line)
    finally:
        _close(stream, owned)


def _next_record(reader, line: int = 1) -> list[str] | None:
    try:
        return next(reader)
    except StopIteration:
        return None
    except UnicodeDecodeError:
        raise _not_utf8(f"at or after line {line}") from None
    except csv.Error as exc:
        raise BadRequest(f"malformed CSV near line {line}: {exc}") from None


def _not_utf8(where: str) -> BadRequest:
    return BadRequest(
        f"the CSV is not valid UTF-8 (undecodable bytes {where}): save it with UTF-8 encoding "
        "(files exported as CP949/EUC-KR, e.g. by Excel, must be converted)"
    )


def _open_text(source: CsvSource) -> tuple[TextIO, bool]:
    """A text stream over `source` and whether this module owns (must close) it."""
    if isinstance(source, (str, Path)):
        try:
            return open(source, encoding="utf-8-sig", newline=""), True
        except OSError as exc:
            raise BadRequest(f"cannot read the CSV {source}: {exc.strerror or exc}") from None
    if isinstance(source, bytes):
        try:
            return io.StringIO(source.decode("utf-8-sig"), newline=""), True
        except UnicodeDecodeError as exc:
            line = source.count(b"\n", 0, exc.start) + 1
            raise _not_utf8(f"on line {line}") from None
    if isinstance(source.read(0), bytes):
        # A caller's binary stream (an upload): decode it incrementally, and leave closing it to the caller.
        return io.TextIOWrapper(io.BufferedReader(_Unclosable(source)), encoding="utf-8-sig", newline=""), True
    return source, False


class _Unclosable(io.RawIOBase):
    """Passes reads through to a caller's binary stream; closing this does not close that stream."""

    def __init__(self, inner) -> None:
        self._inner = inner

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._inner.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _close(stream, owned: bool) -> None:
    if owned:
        stream.close()


class _RowValidator:
    """Turns one raw record into a CatalogRow or a RowError; remembers ids for duplicate detection."""

    def __init__(self, mapping: ColumnMapping, columns: dict[str, int], width: int,
                 allowed_categories: Iterable[str] | None, base_dir: Path | None) -> None:
        self._columns = columns
        self._width = width
        self._tag_split = re.compile("[" + re.escape(mapping.tag_separators) + "]")
        self._allowed = (None if allowed_categories is None
                         else frozenset(normalise_category(c) for c in allowed_categories))
        self._base_dir = base_dir
        self._first_line: dict[str, int] = {}

    def validate(self, record: list[str], line: int) -> CatalogRow | RowError:
        cell = {field: record[i].strip() if i < len(record) else "" for field, i in self._columns.items()}
        product_id = cell.get("product_id") or None
        if len(record) != self._width:
            return RowError(line, product_id, f"record has {len(record)} fields but the header has "
                                              f"{self._width} (an unquoted delimiter, or a missing field?)")
        problems = self._field_problems(cell)
        price = _checked(parse_price, cell.get("price", ""), problems)
        image = _checked(self._image, cell["image"], problems) if cell.get("image") else ""
        if not problems and product_id in self._first_line:
            problems.append(f"duplicate id (first on line {self._first_line[product_id]}); this row is skipped")
        if problems:
            return RowError(line, product_id, "; ".join(problems))
        self._first_line[product_id] = line
        fields = dict(product_id=product_id, name=cell["name"], link=cell.get("link", ""),
                      brand=cell.get("brand", ""), price=price, tags=self._tags(cell.get("tags", "")),
                      category=normalise_category(cell.get("category", "")))
        return CatalogRow(image=image, row_hash=_row_hash(fields, cell["image"]), line=line, **fields)

    def _field_problems(self, cell: dict[str, str]) -> list[str]:
        """Missing required values, an over-long id, a category outside the allowed set, a non-http link."""
        problems = [f"missing {field}" for field in REQUIRED_FIELDS if not cell.get(field)]
        if len(cell.get("product_id", "")) > _MAX_ID_CHARS:
            problems.append(f"id is longer than {_MAX_ID_CHARS} characters")
        category = normalise_category(cell.get("category", ""))
        if self._allowed is not None and category not in self._allowed:
            allowed = ", ".join(sorted(self._allowed))
            problems.append(f"category {category!r} is not one of {allowed}" if category
                            else f"missing category ({allowed})")
        link = cell.get("link", "")
        if link and not _is_http_url(link):
            problems.append(f"link {link!r} is not an http(s) URL")
        return problems

    def _tags(self, text: str) -> tuple[str, ...]:
        cleaned = (" ".join(tag.split()).lower() for tag in self._tag_split.split(text))
        return tuple(dict.fromkeys(tag for tag in cleaned if tag))

    def _image(self, ref: str) -> str:
        scheme = _scheme(ref)
        if scheme in ("http", "https"):
            if not _is_http_url(ref):
                raise ValueError(f"image URL {ref!r} is malformed")
            return ref
        if len(scheme) > 1:  # one letter is a Windows drive ("C:\\images\\a.jpg"), not a scheme
            raise ValueError(f"image {ref!r}: only http(s) URLs or local paths are supported")
        if self._base_dir is None or Path(ref).is_absolute():
            return ref
        return str(self._base_dir / ref)


_SCHEME = re.compile(r"^([a-z][a-z0-9+.-]*):", re.IGNORECASE)


def _scheme(text: str) -> str:
    """The lower-cased URL scheme `text` starts with ("" when none); never raises, unlike urlsplit."""
    match = _SCHEME.match(text)
    return match[1].lower() if match else ""


def _is_http_url(text: str) -> bool:
    """An absolute http(s) URL with a host that parses (a `javascript:` link would end up in HTML)."""
    try:
        parts = urlsplit(text)
    except ValueError:  # e.g. an unclosed "[" in the host
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.hostname)


def _checked(parse, value: str, problems: list[str]):
    try:
        return parse(value)
    except ValueError as exc:
        problems.append(str(exc))
        return None


_CURRENCY = r"(?:[₩￦$€£¥]|KRW|USD|EUR|JPY|원)"
_PRICE = re.compile(
    rf"^{_CURRENCY}?\s*(?P<sign>-)?\s*{_CURRENCY}?\s*"
    r"(?P<number>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)"
    rf"\s*{_CURRENCY}?$",
    re.IGNORECASE,
)


def parse_price(text: str) -> float | None:
    """"12,900", "₩12,900", "12900원", "$19.99" → a float; "" → None.

    raises: ValueError (with a message for the row report) for a negative or unreadable price.
    """
    text = text.strip()
    if not text:
        return None
    match = _PRICE.match(text)
    if match is None:
        raise ValueError(f"price {text!r} is not a number (e.g. 12900, 12,900, ₩12,900, 12900원, $19.99)")
    if match["sign"]:
        raise ValueError(f"price {text!r} is negative")
    return float(match["number"].replace(",", ""))


def _header_key(header: str) -> str:
    """How headers are compared: BOM and surrounding spaces dropped, inner spaces collapsed, lower case."""
    return " ".join(header.lstrip("\ufeff").split()).lower()


def normalise_category(text: str) -> str:
    """Trimmed, lower-cased, inner whitespace collapsed: " Top " → "top"."""
    return " ".join(text.split()).lower()


def _row_hash(fields: dict, image_as_written: str) -> str:
    payload = dict(fields, tags=list(fields["tags"]), image=image_as_written, version=1)
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()


"""A synthetic demo catalog: rendered garment product photos plus a CSV in the original crawl's layout.

No real catalog ships with snapfit, so `make demo` imports one of these. Each product photo is a flat
garment (8 kinds in 4 categories) in one of 12 named colours and 4 patterns (printed in a tone of the garment's own
colour), centred on a white or light background with a soft shadow, like a shop's product shot (a white garment on
light grey). Each kind has the parts a shopper tells it by at thumbnail size: a shirt's collar, placket and cuffs,
a jacket's open front and pocket flaps, a hoodie's hood, drawstrings and kangaroo pocket. Names and tags say the
colour, pattern and garment (English, or Korean for about a third of the products), so a text search such as
"red dress" has a ground truth. A fraction of rows get a non-product photo instead (a busy scene, noise, or a
person-like figure outdoors), tagged "non-product": the try-on classifier should reject them.

Everything is deterministic for a seed (same files, byte for byte, with the same Pillow version).
"""

from __future__ import annotations

import csv
import math
import os
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

CSV_COLUMNS = ("id", "name", "image", "link", "brand", "price", "tags", "category")
# beside catalog.csv: which photos show a product (usable for try-on) and which do not, for train-classifier
TRYON_LABELS_NAME = "tryon_labels.csv"

GARMENTS: dict[str, tuple[str, str, str]] = {
    # kind: (category, English name, Korean name)
    "t-shirt": ("top", "T-Shirt", "티셔츠"),
    "shirt": ("top", "Shirt", "셔츠"),
    "hoodie": ("top", "Hoodie", "후드티"),
    "jeans": ("bottom", "Jeans", "청바지"),
    "skirt": ("bottom", "Skirt", "스커트"),
    "shorts": ("bottom", "Shorts", "반바지"),
    "dress": ("dress", "Dress", "원피스"),
    "jacket": ("outer", "Jacket", "재킷"),
}

COLOURS: dict[str, tuple[tuple[int, int, int], str]] = {
    "red": ((200, 30, 40), "빨간색"),
    "blue": ((40, 90, 200), "파란색"),
    "navy": ((25, 35, 85), "남색"),
    "black": ((28, 28, 30), "검은색"),
    "white": ((246, 246, 243), "흰색"),
    "grey": ((128, 128, 132), "회색"),
    "green": ((40, 140, 70), "초록색"),
    "yellow": ((240, 200, 40), "노란색"),
    "pink": ((240, 150, 185), "분홍색"),
    "beige": ((215, 195, 160), "베이지"),
    "brown": ((115, 72, 40), "갈색"),
    "purple": ((120, 60, 160), "보라색"),
}

PATTERNS: dict[str, tuple[str, str]] = {
    # pattern: (English adjective, Korean word); a solid garment's name has no pattern word
    "solid": ("", ""),
    "stripes": ("Striped", "스트라이프"),
    "dots": ("Polka-Dot", "도트"),
    "checks": ("Checked", "체크"),
}

BRANDS = ("Snapwear", "Northline", "Urban Loom", "Pebble & Co",
          "스냅핏", "하늘상회", "모노톤", "서울데님")
NON_PRODUCT_KINDS = ("scene", "noise", "person")

_BASE_PRICE_KRW = {"t-shirt": 19000, "shirt": 35000, "hoodie": 49000, "jeans": 59000,
                   "skirt": 39000, "shorts": 29000, "dress": 69000, "jacket": 99000}
_SIZES_PX = (256, 320, 384)
_BACKGROUNDS = ((255, 255, 255), (250, 250, 250), (245, 244, 240), (240, 242, 245))
_LIGHT_GARMENT = 690  # a colour whose R + G + B is above this gets a darker background (white, not beige)

# Garment outlines in a unit square (x right, y down), drawn at ~70 % of the photo.
_OUTLINES: dict[str, list[tuple[float, float]]] = {
    "t-shirt": [(.36, .15), (.64, .15), (.86, .28), (.78, .43), (.70, .38), (.70, .86), (.30, .86),
                (.30, .38), (.22, .43), (.14, .28)],
    "shirt": [(.37, .13), (.63, .13), (.80, .22), (.88, .72), (.79, .74), (.71, .38), (.71, .87),
              (.29, .87), (.29, .38), (.21, .74), (.12, .72), (.20, .22)],
    "hoodie": [(.36, .22), (.64, .22), (.81, .29), (.88, .76), (.79, .78), (.71, .44), (.71, .88),
               (.29, .88), (.29, .44), (.21, .78), (.12, .76), (.19, .29)],
    "jacket": [(.36, .12), (.64, .12), (.82, .21), (.89, .75), (.79, .77), (.72, .38), (.73, .90),
               (.27, .90), (.28, .38), (.21, .77), (.11, .75), (.18, .21)],
    "jeans": [(.30, .12), (.70, .12), (.75, .88), (.56, .88), (.50, .36), (.44, .88), (.25, .88)],
    "shorts": [(.28, .25), (.72, .25), (.79, .64), (.55, .67), (.50, .46), (.45, .67), (.21, .64)],
    "skirt": [(.35, .20), (.65, .20), (.81, .80), (.19, .80)],
    "dress": [(.40, .10), (.60, .10), (.64, .22), (.58, .42), (.79, .89), (.21, .89), (.42, .42),
              (.36, .22)],
}


@dataclass(frozen=True)
class CatalogQuery:
    """A search the demo catalog has a ground truth for: a colour and a garment, in English or Korean."""

    text: str  # "red dress", "빨간색 원피스"
    colour: str  # a key of COLOURS
    garment: str  # a key of GARMENTS
    language: str  # "en" or "ko"

    def matches(self, tags: list[str]) -> bool:
        """Whether a product with these tags (the CSV's tags column split on "|") answers the query: a product
        photo (not "non-product") of this colour and garment, in any pattern."""
        return "non-product" not in tags and self.colour in tags and self.garment in tags


def colour_garment_queries() -> list[CatalogQuery]:
    """Every colour x garment query, in English ("red dress") and in Korean ("빨간색 원피스"): 2 x 12 x 8."""
    return [CatalogQuery(f"{colour} {garment}" if language == "en" else f"{colour_ko} {garment_ko}", colour, garment,
                         language)
            for language in ("en", "ko") for garment, (_, _, garment_ko) in GARMENTS.items()
            for colour, (_, colour_ko) in COLOURS.items()]


def capped_recall(ranked: list[str], relevant: set[str], k: int = 10) -> float:
    """Recall@k of a ranking, out of what k results can hold: |relevant in the top k| / min(k, |relevant|)."""
    if not relevant:
        raise ValueError("a query without a relevant product has no recall")
    return len(set(ranked[:k]) & relevant) / min(k, len(relevant))


@dataclass(frozen=True)
class _Item:
    index: int
    product_id: str
    garment: str
    colour: str
    pattern: str
    non_product: str | None  # None for a product photo, else one of NON_PRODUCT_KINDS


def generate_catalog(out_dir: Path, count: int, seed: int = 0, non_product_fraction: float = 0.1) -> Path:
    """Writes `count` photos under `out_dir/images/`, `out_dir/catalog.csv` and, for `snapfit train-classifier`,
    `out_dir/tryon_labels.csv` (image,label: usable for product photos, unusable for the others); returns the
    catalog's path.

    The CSV has the original columns (id, name, image, link, brand, price, tags, category), UTF-8,
    image paths relative to the CSV, tags separated by "|". Prices are KRW in mixed spellings
    ("29900", "29,900", "₩29,900", "29,900원"), as crawled shops write them.
    """
    if count < 0 or not 0.0 <= non_product_fraction <= 1.0:
        raise ValueError(f"count must be >= 0 (got {count}) and non_product_fraction in [0, 1] "
                           f"(got {non_product_fraction})")
    out_dir = Path(out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    items = _plan(count, seed, non_product_fraction)
    csv_path = out_dir / "catalog.csv"
    partial = csv_path.with_suffix(".csv.partial")
    labels: list[tuple[str, str]] = []
    with partial.open("w", encoding="utf-8", newline="") as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for item in items:
            rng = random.Random(f"{seed}:{item.index}")
            image_name = _render_photo(item, rng, seed, out_dir / "images")
            writer.writerow(_csv_row(item, rng, f"images/{image_name}"))
            labels.append((f"images/{image_name}", "unusable" if item.non_product else "usable"))
    _write_labels(out_dir / TRYON_LABELS_NAME, labels)
    os.replace(partial, csv_path)
    return csv_path


STAMP_NAME = "generator.stamp"  # beside catalog.csv: what generated it (see ensure_catalog)


def ensure_catalog(out_dir: Path, count: int, seed: int = 0) -> tuple[Path, bool]:
    """`out_dir/catalog.csv` of `count` products, generated unless the one there came from this very generator
    (this module's code, Pillow's and numpy's versions, count and seed, as recorded in `out_dir/generator.stamp`):
    a catalog drawn by an older version would teach the demo's models other photos. Returns (csv path, whether it
    was generated now)."""
    out_dir = Path(out_dir)
    stamp_path, csv_path = out_dir / STAMP_NAME, out_dir / "catalog.csv"
    stamp = _generator_stamp(count, seed)
    if csv_path.exists() and stamp_path.exists() and stamp_path.read_text() == stamp:
        return csv_path, False
    stamp_path.unlink(missing_ok=True)
    if (out_dir / "images").is_dir():  # photos of another version could differ in name as well as in content
        for old in (out_dir / "images").iterdir():
            old.unlink()
    generate_catalog(out_dir, count, seed)
    stamp_path.write_text(stamp)
    return csv_path, True


def _generator_stamp(count: int, seed: int) -> str:
    import hashlib

    import PIL

    digest = hashlib.sha256(Path(__file__).read_bytes())
    digest.update(f"{PIL.__version__} {np.__version__} {count} {seed}".encode())
    return digest.hexdigest()


def _write_labels(path: Path, labels: list[tuple[str, str]]) -> None:
    """The try-on-readiness ground truth, in the layout `snapfit train-classifier` reads (image,label)."""
    with path.open("w", encoding="utf-8", newline="") as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(("image", "label"))
        writer.writerows(labels)


def _plan(count: int, seed: int, non_product_fraction: float) -> list[_Item]:
    """Garment, colour and pattern cycle so that any 24 consecutive rows cover every garment,
    colour and pattern. Row i is a non-product photo when the sequence i * fraction (shifted by an offset drawn
    from the seed) crosses an integer there: evenly spread, and a row's content never depends on `count`, so a
    smaller catalog is a prefix of a larger one (README examples name rows of the demo catalog)."""
    garments, colours, patterns = list(GARMENTS), list(COLOURS), list(PATTERNS)
    offset = random.Random(seed).random()
    items = []
    for i in range(count):
        crosses = math.floor((i + 1) * non_product_fraction + offset) > math.floor(i * non_product_fraction + offset)
        non_product = NON_PRODUCT_KINDS[i % len(NON_PRODUCT_KINDS)] if crosses else None
        items.append(_Item(
            index=i, product_id=f"SF-{i + 1:06d}", garment=garments[i % 8],
            colour=colours[(i + i // 24) % 12], pattern=patterns[(i // 3 + i // 96) % 4],
            non_product=non_product,
        ))
    return items


def _csv_row(item: _Item, rng: random.Random, image: str) -> list[str]:
    category, garment_en, garment_ko = GARMENTS[item.garment]
    colour_ko = COLOURS[item.colour][1]
    pattern_en, pattern_ko = PATTERNS[item.pattern]
    korean = rng.random() < 0.33
    if item.non_product:
        name = f"룩북 사진 {item.index + 1}" if korean else f"Lookbook Photo {item.index + 1}"
        tags = ["non-product", item.non_product, category]
    else:
        words = [colour_ko, pattern_ko, garment_ko] if korean else [item.colour.title(), pattern_en, garment_en]
        name = " ".join(w for w in words if w)
        tags = [item.colour, item.pattern, item.garment, category] + ([colour_ko, garment_ko] if korean else [])
    price = _BASE_PRICE_KRW[item.garment] + 1000 * rng.randrange(0, 30) + rng.choice((0, 900))
    return [item.product_id, name, image, f"https://shop.example.com/products/{item.product_id}",
            rng.choice(BRANDS), _price_text(price, rng), "|".join(dict.fromkeys(tags)), category]


def _price_text(price: int, rng: random.Random) -> str:
    grouped = f"{price:,}"
    return rng.choice((str(price), grouped, f"₩{grouped}", f"{grouped}원"))


def _render_photo(item: _Item, rng: random.Random, seed: int, folder: Path) -> str:
    """Renders and saves one photo; returns its file name (JPEG or PNG, chosen per item)."""
    size = rng.choice(_SIZES_PX)
    if item.non_product == "noise":
        image = _noise_photo(size, np.random.default_rng([seed, item.index]))
    elif item.non_product == "scene":
        image = _scene_photo(size, rng)
    elif item.non_product == "person":
        image = _person_photo(size, rng, COLOURS[item.colour][0])
    else:
        image = _product_photo(size, rng, item)
    if rng.random() < 0.6:
        name = f"{item.product_id}.jpg"
        image.save(folder / name, "JPEG", quality=90)
    else:
        name = f"{item.product_id}.png"
        image.save(folder / name, "PNG", compress_level=1)
    return name


def _product_photo(size: int, rng: random.Random, item: _Item) -> Image.Image:
    """A garment centred on a light background with a soft drop shadow. returns: size x size RGB."""
    scale = rng.uniform(0.88, 1.04) * size
    dx, dy = rng.uniform(-0.03, 0.03) * size, rng.uniform(-0.03, 0.03) * size
    centre = size / 2
    points = [(centre + (x - 0.5) * scale + dx, centre + (y - 0.5) * scale + dy) for x, y in _OUTLINES[item.garment]]
    mask = Image.new("L", (size, size), 0)
    ImageDraw.Draw(mask).polygon(points, fill=255)
    if item.garment == "hoodie":
        ImageDraw.Draw(mask).ellipse(_hood_box(points), fill=255)

    base = COLOURS[item.colour][0]
    background = rng.choice(_BACKGROUNDS)
    if sum(base) > _LIGHT_GARMENT:
        # shops shoot white garments on grey, so that their edges show
        background = tuple(c - 40 for c in background)
    photo = Image.new("RGB", (size, size), background)
    photo.paste((90, 90, 90), mask=_soft_shadow(mask))
    photo.paste(_pattern_fill(size, rng, base, item.pattern), mask=mask)
    _draw_details(ImageDraw.Draw(photo), item.garment, points, base, max(1, size // 128))
    return photo


def _soft_shadow(mask: Image.Image) -> Image.Image:
    """`mask` shifted down-right, blurred and faded to 22 %; blurred at 1/4 size, which is 10x cheaper."""
    size = mask.width
    small = mask.resize((size // 4, size // 4), Image.Resampling.BILINEAR)
    small = small.transform(small.size, Image.Transform.AFFINE, (1, 0, -size * 0.004, 0, 1, -size * 0.005))
    small = small.filter(ImageFilter.GaussianBlur(size * 0.005)).point(lambda v: v * 0.22)
    return small.resize(mask.size, Image.Resampling.BILINEAR)


def _hood_box(points: list[tuple[float, float]]) -> tuple[float, float, float, float]:
    (left, top), (right, _) = points[0], points[1]
    mid, span = (left + right) / 2, right - left
    return mid - span * 0.42, top - span * 0.45, mid + span * 0.42, top + span * 0.2


def _pattern_fill(size: int, rng: random.Random, base: tuple[int, int, int], pattern: str) -> Image.Image:
    fill = Image.new("RGB", (size, size), base)
    draw = ImageDraw.Draw(fill)
    # tonal: a lighter or darker tone of the garment's own colour, so that a pattern never shows another colour of
    # the catalog (navy stripes on a "white" shirt would make it half navy to any eye)
    ink = _tint(base, 0.35) if sum(base) < 360 else _shade(base, 0.72)
    step = rng.choice((12, 16, 20)) * size // 320
    if pattern == "stripes":
        for offset in range(0, size, step):
            draw.rectangle((0, offset, size, offset + step // 3), fill=ink)
    elif pattern == "dots":
        radius = max(2, step // 5)
        for row, y in enumerate(range(0, size + step, step)):
            for x in range((row % 2) * step // 2, size + step, step):
                draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=ink)
    elif pattern == "checks":
        band = Image.new("L", (size, size), 0)
        bands = ImageDraw.Draw(band)
        for offset in range(0, size, step * 2):
            bands.rectangle((offset, 0, offset + step - 1, size), fill=90)
            bands.rectangle((0, offset, size, offset + step - 1), fill=90)
        fill.paste(ink, mask=band)
    return fill


def _draw_details(draw: ImageDraw.ImageDraw, garment: str, points: list[tuple[float, float]],
                  base: tuple[int, int, int], width: int) -> None:
    """Outline plus the parts that tell garments apart at thumbnail size, as on a shop's photo: a shirt's pointed
    collar, placket and cuffs; a jacket's open front and pocket flaps; a hoodie's hood opening, drawstrings,
    kangaroo pocket and hem band; a T-shirt's or dress's neckline; a waistband on bottoms."""
    line = _shade(base, 0.6)
    draw.line(points + points[:1], fill=line, width=width, joint="curve")
    (left, top), (right, _) = points[0], points[1]
    mid = (left + right) / 2
    span = right - left
    bottom = points[7][1] if garment in ("shirt", "hoodie", "jacket") else None  # their hem: points 6 and 7
    if garment in ("t-shirt", "dress"):
        draw.arc((mid - span * 0.3, top - span * 0.25, mid + span * 0.3, top + span * 0.25), 0, 180, line, width)
    elif garment == "shirt":
        collar = top + span * 0.45
        draw.rectangle((mid - span * 0.05, collar, mid + span * 0.05, bottom), fill=line)
        for k in range(1, 6):
            y = collar + (bottom - collar) * k / 6
            radius = span * 0.035
            draw.ellipse((mid - radius, y - radius, mid + radius, y + radius), fill=_shade(line, 0.5))
        for side, edge in ((-1, left), (1, right)):
            draw.polygon([(edge, top), (mid, top + span * 0.3), (mid + side * span * 0.12, collar)], fill=line)
        # sleeve ends (outer, inner corner) and the shoulder and armpit above them, right then left
        for end, above in (((3, 4), (2, 5)), ((10, 9), (11, 8))):
            _band(draw, [points[i] for i in end], [points[i] for i in above], 0.12, line)
    elif garment == "jacket":
        opening = top + span * 1.7
        draw.polygon([(left, top), (mid, opening), (right, top)], fill=(45, 45, 50) if sum(base) > 300
                     else (225, 225, 222))
        for side, edge in ((-1, left), (1, right)):
            draw.polygon([(edge, top), (mid + side * span * 0.08, opening), (edge + side * span * 0.25,
                                                                             top + span * 0.5)], fill=line)
            flap_x = mid + side * span * 0.75
            flap_y = top + (bottom - top) * 0.62
            draw.rectangle((flap_x - span * 0.28, flap_y, flap_x + span * 0.28, flap_y + span * 0.14), fill=line)
        draw.line([(mid, opening), (mid, bottom)], fill=line, width=width * 2)
    elif garment == "hoodie":
        hood = _hood_box(points)
        inset = (hood[2] - hood[0]) * 0.18
        draw.ellipse((hood[0] + inset, hood[1] + inset, hood[2] - inset, hood[3] - inset), fill=_shade(base, 0.45))
        for side in (-1, 1):
            draw.line([(mid + side * span * 0.15, top + span * 0.1), (mid + side * span * 0.15, top + span * 0.7)],
                      fill=line, width=width * 2)
        pocket = (mid - span * 0.6, bottom - span * 0.65, mid + span * 0.6, bottom - span * 0.22)
        draw.polygon([(pocket[0] + span * 0.15, pocket[1]), (pocket[2] - span * 0.15, pocket[1]),
                      (pocket[2], pocket[3]), (pocket[0], pocket[3])], fill=_shade(base, 0.8), outline=line)
        hem_left, hem_right = points[8][0], points[7][0]
        draw.rectangle((hem_left, bottom - span * 0.16, hem_right, bottom), fill=line)
    elif garment in ("jeans", "shorts", "skirt"):
        draw.line([(left, top + span * 0.08), (right, top + span * 0.08)], fill=line, width=width)


def _band(draw: ImageDraw.ImageDraw, edge: list[tuple[float, float]], towards: list[tuple[float, float]],
          depth: float, fill: tuple[int, int, int]) -> None:
    """Fills the strip along `edge` (two points) reaching `depth` of the way to `towards` (two points): a cuff."""
    inner = [(e[0] + (t[0] - e[0]) * depth, e[1] + (t[1] - e[1]) * depth) for e, t in zip(edge, towards)]
    draw.polygon([edge[0], edge[1], inner[1], inner[0]], fill=fill)


def _noise_photo(size: int, rng: np.random.Generator) -> Image.Image:
    """Coloured noise, slightly blurred: nothing a shopper would buy."""
    pixels = rng.integers(0, 256, (size // 4, size // 4, 3), dtype=np.uint8)
    return Image.fromarray(pixels, "RGB").resize((size, size), Image.Resampling.BILINEAR)


def _scene_photo(size: int, rng: random.Random) -> Image.Image:
    """A busy scene: dozens of overlapping coloured shapes on a gradient, edge to edge."""
    photo = _gradient(size, _random_colour(rng), _random_colour(rng))
    draw = ImageDraw.Draw(photo)
    for _ in range(rng.randrange(40, 80)):
        x, y = rng.uniform(-0.1, 1.0) * size, rng.uniform(-0.1, 1.0) * size
        w, h = rng.uniform(0.05, 0.35) * size, rng.uniform(0.05, 0.35) * size
        shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        shape((x, y, x + w, y + h), fill=_random_colour(rng))
    return photo


def _person_photo(size: int, rng: random.Random, clothes: tuple[int, int, int]) -> Image.Image:
    """A person-like figure outdoors (sky, ground, trees): a model shot rather than a product shot."""
    photo = _gradient(size, (120, 170, 230), (200, 225, 250))
    draw = ImageDraw.Draw(photo)
    horizon = size * rng.uniform(0.55, 0.7)
    draw.rectangle((0, horizon, size, size), fill=(90, 130, 70))
    for _ in range(rng.randrange(2, 6)):
        x = rng.uniform(0, size)
        draw.rectangle((x - size * 0.015, horizon - size * 0.2, x + size * 0.015, horizon), fill=(90, 60, 30))
        crown = (x - size * 0.08, horizon - size * 0.35, x + size * 0.08, horizon - size * 0.15)
        draw.ellipse(crown, fill=(40, 110, 50))
    cx, unit = size * rng.uniform(0.35, 0.65), size / 10
    skin = rng.choice(((240, 200, 170), (200, 150, 110), (140, 95, 60)))
    draw.ellipse((cx - unit * 0.6, unit * 1.0, cx + unit * 0.6, unit * 2.3), fill=skin)
    draw.polygon([(cx - unit, unit * 2.6), (cx + unit, unit * 2.6), (cx + unit * 0.8, unit * 5.6),
                  (cx - unit * 0.8, unit * 5.6)], fill=clothes)
    for side in (-1, 1):
        arm = [(cx + side * unit, unit * 2.8), (cx + side * unit * 1.7, unit * 5.0)]
        leg = [(cx + side * unit * 0.4, unit * 5.6), (cx + side * unit * 0.55, unit * 8.8)]
        draw.line(arm, fill=skin, width=int(unit * 0.35))
        draw.line(leg, fill=(40, 40, 60), width=int(unit * 0.5))
    return photo


def _gradient(size: int, top: tuple[int, int, int], bottom: tuple[int, int, int]) -> Image.Image:
    t = np.linspace(0.0, 1.0, size, dtype=np.float32)[:, None, None]
    rows = (1 - t) * np.array(top, np.float32) + t * np.array(bottom, np.float32)
    return Image.fromarray(np.repeat(rows, size, axis=1).astype(np.uint8), "RGB")


def _random_colour(rng: random.Random) -> tuple[int, int, int]:
    return rng.randrange(256), rng.randrange(256), rng.randrange(256)


def _tint(colour: tuple[int, int, int], amount: float) -> tuple[int, int, int]:
    """`colour` moved `amount` (0..1) of the way to white."""
    return tuple(int(c + (255 - c) * amount) for c in colour)


def _shade(colour: tuple[int, int, int], factor: float) -> tuple[int, int, int]:
    """`colour` darkened by `factor` (0..1); near-black colours are lightened instead so seams show."""
    if sum(colour) < 120:
        return tuple(min(255, int(c + 70)) for c in colour)
    return tuple(int(c * factor) for c in colour)


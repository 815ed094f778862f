"""Per-vector metadata in compact numpy arrays, and `ProductFilter` -> FAISS `IDSelector`.

Every vector in the index has a slot: an int64 vector id allocated in increasing order and never reused by
the same table. Slot `i` holds the vector's product id, its category and brand (as int32 codes into small
vocabularies), its price and try-on flag, and whether it is still alive. A filter becomes a boolean mask over
the slots with a few vectorised comparisons (about 1 ms per million slots) and then an `IDSelectorBitmap`, so
FAISS skips non-matching vectors *inside* the search instead of us over-fetching and filtering afterwards.

Not thread-safe on its own: `FaissIndex` guards it with its readers-writer lock.
"""

from __future__ import annotations

from collections.abc import Sequence

import faiss
import numpy as np

from orchestrator.domain import Product, ProductFilter

_NO_PRICE = np.nan  # None prices are NaN: every comparison with NaN is False, so a price range excludes them


class Vocabulary:
    """Strings <-> dense int32 codes (categories, brands); codes are never reassigned."""

    def __init__(self, words: Sequence[str] = ()):
        self.words: list[str] = list(words)
        self._codes = {w: i for i, w in enumerate(self.words)}

    def code(self, word: str) -> int:
        """The code of `word`, adding it when new."""
        code = self._codes.get(word)
        if code is None:
            code = self._codes[word] = len(self.words)
            self.words.append(word)
        return code

    def known_codes(self, words: frozenset[str]) -> np.ndarray:
        """int32 codes of those `words` already in the vocabulary (unknown words match nothing)."""
        return np.array([self._codes[w] for w in words if w in self._codes], dtype=np.int32)


class SlotTable:
    """Metadata of every slot, in arrays of length `n_slots` (capacity grows by doubling).

    alive: n_slots bool; category/brand: n_slots int32 codes; price: n_slots float64 (NaN = no price);
    tryon_ready: n_slots bool; product_ids: n_slots list of str ("" for a retired slot).
    """

    def __init__(self) -> None:
        self.n_slots = 0
        self.product_ids: list[str] = []
        self.categories = Vocabulary()
        self.brands = Vocabulary()
        self._alive = np.zeros(0, dtype=bool)
        self._category = np.zeros(0, dtype=np.int32)
        self._brand = np.zeros(0, dtype=np.int32)
        self._price = np.zeros(0, dtype=np.float64)
        self._tryon = np.zeros(0, dtype=bool)

    @property
    def alive(self) -> np.ndarray:
        """n_slots bool view: True where the slot holds a product's current vector."""
        return self._alive[: self.n_slots]

    @property
    def n_alive(self) -> int:
        return int(np.count_nonzero(self.alive))

    def append(self, products: Sequence[Product]) -> np.ndarray:
        """Allocates one new live slot per product; returns their ids, Nx int64."""
        start, n = self.n_slots, len(products)
        self._reserve(start + n)
        end = start + n
        self._alive[start:end] = True
        self._category[start:end] = [self.categories.code(p.category) for p in products]
        self._brand[start:end] = [self.brands.code(p.brand) for p in products]
        self._price[start:end] = [_NO_PRICE if p.price is None else float(p.price) for p in products]
        self._tryon[start:end] = [bool(p.tryon_ready) for p in products]
        self.product_ids.extend(p.product_id for p in products)
        self.n_slots = end
        return np.arange(start, end, dtype=np.int64)

    def retire(self, slots: np.ndarray) -> None:
        """Marks `slots` (int64) dead; their product ids are forgotten."""
        self._alive[slots] = False
        for s in slots.tolist():
            self.product_ids[s] = ""

    def mask(self, product_filter: ProductFilter | None) -> np.ndarray:
        """n_slots bool: live slots whose metadata passes `product_filter` (same rules as `ProductFilter.matches`)."""
        keep = self.alive.copy()
        if product_filter is None:
            return keep
        f, n = product_filter, self.n_slots
        if f.categories is not None:
            keep &= np.isin(self._category[:n], self.categories.known_codes(f.categories))
        if f.brands is not None:
            keep &= np.isin(self._brand[:n], self.brands.known_codes(f.brands))
        if f.min_price is not None:
            keep &= self._price[:n] >= f.min_price
        if f.max_price is not None:
            keep &= self._price[:n] <= f.max_price
        if f.tryon_ready is not None:
            keep &= self._tryon[:n] == f.tryon_ready
        return keep

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Everything as plain arrays (no pickling): strings are UTF-8 bytes plus int64 end offsets."""
        n = self.n_slots
        arrays = {
            "alive": self._alive[:n],
            "category": self._category[:n],
            "brand": self._brand[:n],
            "price": self._price[:n],
            "tryon_ready": self._tryon[:n],
        }
        for name, words in (("product_ids", self.product_ids), ("categories", self.categories.words),
                            ("brands", self.brands.words)):
            arrays[f"{name}_utf8"], arrays[f"{name}_ends"] = _pack_strings(words)
        return arrays

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> SlotTable:
        """Inverse of `to_arrays`; raises ValueError when the arrays are inconsistent."""
        table = cls()
        n = len(arrays["alive"])
        product_ids = _unpack_strings(arrays["product_ids_utf8"], arrays["product_ids_ends"])
        if any(len(arrays[k]) != n for k in ("category", "brand", "price", "tryon_ready")) or len(product_ids) != n:
            raise ValueError("metadata arrays have different lengths")
        table.categories = Vocabulary(_unpack_strings(arrays["categories_utf8"], arrays["categories_ends"]))
        table.brands = Vocabulary(_unpack_strings(arrays["brands_utf8"], arrays["brands_ends"]))
        for codes, vocab in ((arrays["category"], table.categories), (arrays["brand"], table.brands)):
            if n and (codes.min() < 0 or codes.max() >= len(vocab.words)):
                raise ValueError("metadata codes point outside their vocabulary")
        table._reserve(n)
        table._alive[:n] = arrays["alive"]
        table._category[:n] = arrays["category"]
        table._brand[:n] = arrays["brand"]
        table._price[:n] = arrays["price"]
        table._tryon[:n] = arrays["tryon_ready"]
        table.product_ids = product_ids
        table.n_slots = n
        return table

    def _reserve(self, capacity: int) -> None:
        if capacity <= len(self._alive):
            return
        new = max(capacity, 2 * len(self._alive), 1024)
        for name in ("_alive", "_category", "_brand", "_price", "_tryon"):
            old = getattr(self, name)
            grown = np.zeros(new, dtype=old.dtype)
            grown[: len(old)] = old
            setattr(self, name, grown)


def bitmap_selector(mask: np.ndarray) -> faiss.IDSelectorBitmap:
    """An IDSelector admitting the vector ids i with mask[i] True (mask: N bool over slots).

    The selector keeps a reference to its bitmap (ceil(N/8) uint8), so the caller need not.
    """
    return faiss.IDSelectorBitmap(np.packbits(mask, bitorder="little"))


def _pack_strings(words: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    encoded = [w.encode("utf-8") for w in words]
    ends = np.cumsum([len(b) for b in encoded], dtype=np.int64)
    return np.frombuffer(b"".join(encoded), dtype=np.uint8), ends


def _unpack_strings(utf8: np.ndarray, ends: np.ndarray) -> list[str]:
    data = utf8.tobytes()
    if len(ends) and (ends[-1] != len(data) or np.any(np.diff(ends) < 0) or ends[0] < 0):
        raise ValueError("string offsets do not match the string bytes")
    starts = np.concatenate(([0], ends[:-1])).tolist()
    return [data[s:e].decode("utf-8") for s, e in zip(starts, ends.tolist())]

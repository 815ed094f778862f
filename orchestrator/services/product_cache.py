"""Products' metadata in memory, so a search's hits need no catalog round trip.

A search ranks product ids in FAISS and then needs each hit's name, photo, price and the rest. Asking the store
for them every time cost about 0.5 ms for 20 hits from SQLite on a 2-core EPYC (a thread hop and a query;
MongoDB adds a network round trip). `ProductMetadataCache` keeps the products it has read (metadata only, never
an embedding), at most `max_products`, the least recently used out first; `max_products` 0 turns it off.
`preload` fills it from a scan of the store when a replica starts, so a catalog that fits is served from
memory from the first search on.

Freshness. `ProductService` invalidates a product the moment it changes it here, and the follower invalidates
every product the store's change log names when it applies another replica's changes (within
`catalog.sync_interval_s`: the delay with which that replica's vectors and filters reach this index too). A log
that cannot answer (the index is rebuilt) empties the cache. A read that raced an invalidation is not kept:
every invalidation starts a new epoch, and a store read begun in an earlier epoch returns its products without
caching them, so a stale read never outlives the invalidation that followed it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable

from orchestrator.domain import Product
from orchestrator.metrics import PRODUCT_CACHE_LOOKUPS

StoreRead = Callable[[list[str]], Awaitable[dict[str, Product]]]
"""async (product ids) -> {product id: Product} for those stored, metadata only."""


class ProductMetadataCache:
    """A bounded LRU of products by id in front of `read` (the store's metadata read). Used from one event loop."""

    def __init__(self, read: StoreRead, max_products: int):
        if max_products < 0:
            raise ValueError("max_products must be 0 (off) or more")
        self._read = read
        self.max_products = max_products
        self._products: OrderedDict[str, Product] = OrderedDict()
        self._epoch = 0

    def __len__(self) -> int:
        return len(self._products)

    async def get_many(self, product_ids: list[str]) -> dict[str, Product]:
        """The products among `product_ids` that the store holds (unknown ids are absent), read from the store
        only for those not cached. The products are shared with the cache: read them, never change them."""
        found: dict[str, Product] = {}
        missing: list[str] = []
        for product_id in dict.fromkeys(product_ids):
            product = self._products.get(product_id)
            if product is None:
                missing.append(product_id)
            else:
                self._products.move_to_end(product_id)
                found[product_id] = product
        if found:
            PRODUCT_CACHE_LOOKUPS.labels(result="hit").inc(len(found))
        if not missing:
            return found
        PRODUCT_CACHE_LOOKUPS.labels(result="miss").inc(len(missing))
        epoch = self._epoch
        read = await self._read(missing)
        if epoch == self._epoch and self.max_products:
            self._keep(read.values())
        found.update(read)
        return found

    async def preload(self, pages: AsyncIterator[list[Product]]) -> int:
        """Fills the free room from `pages` (e.g. the store read in product id order), behind the products already
        held, which stay (a search's hits remain the most recently used); returns how many it kept. A page whose
        read overlapped an invalidation is skipped: it may hold a product as it was before that change."""
        kept = 0
        while len(self._products) < self.max_products:
            epoch = self._epoch
            page = await anext(pages, None)
            if page is None:
                break
            if epoch != self._epoch:
                continue
            for product in page:
                if len(self._products) >= self.max_products:
                    break
                if product.product_id not in self._products:
                    self._products[product.product_id] = product
                    self._products.move_to_end(product.product_id, last=False)
                    kept += 1
        return kept

    def invalidate(self, product_ids: Iterable[str]) -> None:
        """Forgets these products (changed or deleted); a store read already under way will not cache them."""
        self._epoch += 1
        for product_id in product_ids:
            self._products.pop(product_id, None)

    def clear(self) -> None:
        """Forgets every product (the catalog was rebuilt, or its change log could not say what changed)."""
        self._epoch += 1
        self._products.clear()

    def _keep(self, products: Iterable[Product]) -> None:
        for product in products:
            self._products[product.product_id] = product
            self._products.move_to_end(product.product_id)
        while len(self._products) > self.max_products:
            self._products.popitem(last=False)

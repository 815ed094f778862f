"""Storage behind the services: the product catalog (SQLite embedded default, MongoDB in production).

`catalog_store` is the contract both backends implement (services depend on its `CatalogStore` protocol),
`sqlite_store` and `mongo_store` the backends, `factory.open_catalog_store(url)` picks one.
"""

"""HTTP API: thin routers over services, one problem table, one auth dependency."""

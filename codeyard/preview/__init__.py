"""Port previews: a block of ports per run, listener detection, and the proxy to them."""

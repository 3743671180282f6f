"""SQL by aggregate: one module per aggregate, async functions taking a connection or pool."""

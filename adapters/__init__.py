"""Provider adapters: one module per provider behind `adapters.base.Adapter`; see `adapters.registry`."""

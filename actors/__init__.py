"""Ray actors that own state (provider adapters, ingestion), and the plain async pipeline they drive."""

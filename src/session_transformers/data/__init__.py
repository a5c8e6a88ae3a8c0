"""Session data: the schema, readers and writers, real-data loaders and the synthetic store."""

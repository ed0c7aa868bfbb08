"""Stage ingest's library: the dataset adapters that turn a release on disk into the manifest."""

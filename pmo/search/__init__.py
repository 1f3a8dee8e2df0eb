"""Japanese full-text search: analyzer, the engine behind one interface, indexing queue and rebuild."""

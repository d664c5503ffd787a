"""The registry: model references, the versioned and verified store, locks, publishing, promotion, provenance, the result cache and listings."""

"""The registry: references, the verified store, signing, locks, publishing, promotion, the cache."""

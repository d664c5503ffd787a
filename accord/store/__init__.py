"""The artifact store: model references and the versioned, verified registry."""

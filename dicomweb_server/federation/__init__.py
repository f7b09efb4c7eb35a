"""Peer archives: the registry, outbound credentials, the federated search, retrieval and import."""

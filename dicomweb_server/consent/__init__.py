"""What a requester may see: authorizations and the one policy applied on every read."""

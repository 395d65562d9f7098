"""Sign-in: bearer tokens (JWT) and the local issuer's password store."""

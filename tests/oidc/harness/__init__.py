"""The OIDC suite's harness: run preparation, keys, and the authorization server's client side."""

"""Switchboard's LocalStack plugins."""

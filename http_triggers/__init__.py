"""Thin HTTP functions: parse and validate, call the domain or the durable client, answer."""

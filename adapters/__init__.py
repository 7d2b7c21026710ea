"""Adapters: the only code that talks to Azure Tables, Microsoft Graph and jinja2."""

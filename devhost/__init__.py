"""The local host for this Functions app: HTTP functions, Durable engine, virtual clock.

``python -m devhost`` runs it; ``devhost.testing.DevhostProcess`` runs it for tests.
"""

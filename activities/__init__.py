"""Thin activity functions: JSON in, one port call, JSON out. No clients built at import time."""

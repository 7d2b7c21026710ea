"""Benchmarks. ``make bench`` runs them all; each quotes ratios against a baseline of its own run."""

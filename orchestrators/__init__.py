"""Deterministic orchestrations. They carry out what ``appointments.lifecycle`` decides."""

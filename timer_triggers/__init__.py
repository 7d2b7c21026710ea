"""Timer functions: the retention sweeps."""

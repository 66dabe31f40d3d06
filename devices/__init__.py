"""Device targets: profiles, the latency runner, reports. Imports no torch."""

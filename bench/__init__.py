"""Load and latency benchmarks of the gateway (`make bench`); see bench/README.md."""

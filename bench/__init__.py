"""sor's benchmarks: `python -m bench` prints one table of figures against same-run baselines."""

"""Developer tools: the synthetic trace generator (gentrace) and the benchmark harness (bench)."""

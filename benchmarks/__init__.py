"""Benchmarks, run by ``just bench``: each reports ratios against a baseline measured in the same
run, on the same image and runtime, and the targets the issues name."""

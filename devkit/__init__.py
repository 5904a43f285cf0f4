"""Development support shared by the tests, the benchmarks and the scripts (never shipped).

- ``devkit.backend_process``: the backend as its own ``corral serve`` process;
- ``devkit.engine``: cleaning the engine up after a run, by its ``corral.instance`` label;
- ``devkit.second_engine``: a second ``dockerd`` beside the machine's own, to stop, restart or
  stand in for another host without touching the engine everyone else uses;
- ``devkit.waiting``: waiting on a condition with a deadline (never a bare sleep);
- ``devkit.users``: a user stored straight in a backend's database, and its JWT;
- ``devkit.fake_api``: the console's stand-in for ``corral.client`` with fixed answers.

The tests' fixtures (``tests/conftest.py``) are built on these; benchmarks and scripts import
these and nothing from ``tests/``.
"""

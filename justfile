# Corral's tasks. On a fresh machine, start with `scripts/dev <recipe>`: it makes .venv first.

set shell := ["bash", "-euo", "pipefail", "-c"]

venv := ".venv/bin"

# Show the recipes.
default:
    @just --list

# Start the Docker engine with gVisor and import the default image (root; safe to re-run).
engine:
    bash scripts/engine.sh

# Build corral/debian:bookworm with debootstrap, then the image of every role in the catalog
# (needs the engine; each step keeps what is already up to date).
images: engine
    bash scripts/images.sh
    {{venv}}/corral roles prepare

# Open the console on the embedded backend.
run *ARGS: engine
    {{venv}}/corral {{ARGS}}

# Run the backend headless.
serve *ARGS: engine
    {{venv}}/corral serve {{ARGS}}

# The whole test suite against the real engine, on SQLite and then on PostgreSQL (the throwaway
# cluster of `just postgres`); ARGS go to pytest on both passes (`--db sqlite`: that pass alone).
test *ARGS: images
    bash scripts/test.sh {{ARGS}}

# Format, lint, type-check, then test.
check: images
    {{venv}}/ruff format .
    {{venv}}/ruff check --fix .
    {{venv}}/mypy
    bash scripts/test.sh

# Lint and type-check only (no engine needed).
lint:
    {{venv}}/ruff format --check .
    {{venv}}/ruff check .
    {{venv}}/mypy

# Benchmarks: ratios against a baseline measured in the same run.
bench *ARGS: images
    {{venv}}/python -m benchmarks {{ARGS}}

# PNG pictures of the real console (needs the engine; installs Chromium to render them).
screenshots: engine
    command -v chromium >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    {{venv}}/python scripts/screenshots.py

# A throwaway PostgreSQL on loopback (installs Debian's package when missing); prints its URL.
postgres *ARGS:
    bash scripts/postgres.sh {{ARGS}}

# The scale-out shape on this machine: PostgreSQL, a second dockerd, two replicas on both engines
# (`just cluster up [--replicas N]`, `just cluster down`; docs/scale-out.md).
cluster *ARGS: engine
    {{venv}}/python scripts/cluster.py {{ARGS}}

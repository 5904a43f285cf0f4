#!/usr/bin/env bash
# The whole suite on both databases: SQLite (the embedded default), then PostgreSQL (the throwaway
# cluster of scripts/postgres.sh, started here when it is not running), each pass with the same
# pytest arguments. Both run whatever the first gives; the exit code fails when either failed.
#
# One pass only when the arguments or the environment choose the database:
#   scripts/test.sh --db sqlite tests/test_auth.py     CORRAL_TEST_DB=postgres scripts/test.sh
set -uo pipefail
cd "$(dirname "$0")/.."

pytest=.venv/bin/pytest
for arg in "$@"; do
  case $arg in --db | --db=*) exec "$pytest" "$@" ;; esac
done
[ -n "${CORRAL_TEST_DB:-}" ] && exec "$pytest" "$@"

say() { printf '\n[test] %s\n' "$*" >&2; }

say "pass 1 of 2: SQLite"
t0=$SECONDS
"$pytest" --db sqlite "$@"
sqlite=$?
sqlite_s=$((SECONDS - t0))

say "pass 2 of 2: PostgreSQL (scripts/postgres.sh)"
t0=$SECONDS
if bash scripts/postgres.sh >/dev/null; then
  "$pytest" --db postgres "$@"
  postgres=$?
else
  say "the throwaway PostgreSQL did not start (see above)"
  postgres=1
fi
postgres_s=$((SECONDS - t0))

verdict() { if [ "$1" = 0 ]; then echo passed; else echo "FAILED (exit $1)"; fi; }
say "SQLite: $(verdict $sqlite) in ${sqlite_s}s; PostgreSQL: $(verdict $postgres) in ${postgres_s}s"
[ "$sqlite" = 0 ] || exit "$sqlite"
exit "$postgres"

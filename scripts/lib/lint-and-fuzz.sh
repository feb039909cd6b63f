#!/usr/bin/env bash
# scripts/test's checks that need no VM and no test binary: clippy (warnings are errors) and
# 20 s of fuzzing per target (scripts/fuzz, which first installs cargo-fuzz if needed and
# builds the targets). A full run starts this beside the test suites at the lowest CPU
# priority: the VM tests boot one guest at a time and leave the second core mostly idle,
# and these are minutes of compiling. Clippy uses a target directory of its own so that it
# never holds the test build's lock.
set -euo pipefail
cd "$(dirname "$0")/../.."
started=$SECONDS
CARGO_TARGET_DIR=target/clippy cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "lint-and-fuzz: clippy clean ($((SECONDS - started)) s)" >&2
started=$SECONDS
scripts/fuzz 20
echo "lint-and-fuzz: fuzz done ($((SECONDS - started)) s)" >&2

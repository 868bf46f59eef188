#!/usr/bin/env bash
# Passes when compiling $2.. fails with a diagnostic containing $1.
# Usage: expect_failure.sh "expected text" compiler args... source.cpp
set -u
expected=$1
shift
output=$("$@" -fsyntax-only 2>&1)
status=$?
if [ $status -eq 0 ]; then
  echo "compiled, but must not: $*"
  exit 1
fi
if ! grep -qF -- "$expected" <<<"$output"; then
  echo "failed to compile, but without the expected diagnostic \"$expected\":"
  echo "$output" | head -20
  exit 1
fi
echo "refused as expected: $expected"

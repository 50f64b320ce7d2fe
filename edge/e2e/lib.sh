# Shared by the edge's end-to-end scripts: a check that counts and names what failed.
passed=0 failed=0

check() { # check NAME EXPECTED ACTUAL
  if [ "$2" == "$3" ]; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "FAIL: $1: expected $2, got $3" >&2
  fi
}

finish() { # finish NAME: the summary line, and the exit status
  echo "$1: $passed checks passed, $failed failed"
  [ "$failed" -eq 0 ]
}

#!/bin/sh
# Stands in for memleak-bpfcc: the first start in a run dies (a transient
# failure), every later one is the real memleak. $FAKE_MEMLEAK_STATE is a
# file the trial names; it exists once the first start has failed.
# $REAL_MEMLEAK is the real one.
if [ ! -e "$FAKE_MEMLEAK_STATE" ]; then
    : > "$FAKE_MEMLEAK_STATE"
    echo "Traceback: a transient failure (a fake memleak for leaklab's trial)" >&2
    exit 1
fi
exec "$REAL_MEMLEAK" "$@"

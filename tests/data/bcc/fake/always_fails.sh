#!/bin/sh
# Stands in for memleak-bpfcc: dies at once with an error of its own, as a
# failed BPF load does. The bcc backend must retry, then show these words.
echo "Attaching to pid $2, Ctrl+C to quit."
echo "bpf: Failed to load program: Cannot allocate memory (a fake memleak for leaklab's trial)" >&2
exit 1

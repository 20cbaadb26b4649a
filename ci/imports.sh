#!/usr/bin/env bash
# Prints the folder-level import picture of src/ (which folder uses which)
# and the cycles between folders. See ci/imports.py.
exec /usr/bin/python3 "$(dirname "$0")/imports.py" "$@"

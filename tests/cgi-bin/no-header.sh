#!/bin/sh
# Exits before writing anything.
exit 3

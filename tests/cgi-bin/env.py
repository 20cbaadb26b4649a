#!/usr/bin/python3
"""Answers with its environment and request body, as JSON."""
import json
import os
import sys

body = sys.stdin.buffer.read()
sys.stdout.write("Content-Type: application/json\r\n\r\n")
sys.stdout.write(json.dumps({"env": dict(os.environ), "body": body.decode("latin-1"), "argv": sys.argv, "cwd": os.getcwd()}))

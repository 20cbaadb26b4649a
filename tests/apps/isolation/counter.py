"""A module both apps import: its globals are what isolation is about."""

visitors = []

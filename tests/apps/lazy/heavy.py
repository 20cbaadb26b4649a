"""A module that takes a moment to import, as large ones do."""
import time

time.sleep(0.05)
VALUE = 42

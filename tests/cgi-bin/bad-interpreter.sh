#!/nonexistent/interpreter
# Executable, but exec fails: its interpreter does not exist.

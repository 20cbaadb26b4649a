import os
print("Content-Type: text/plain")
print()
print("interpreted, PATH_INFO=%s" % os.environ.get("PATH_INFO", ""))

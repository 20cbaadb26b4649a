TEXT = "tree v1"

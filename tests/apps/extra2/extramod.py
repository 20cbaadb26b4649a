WHERE = "extra2"

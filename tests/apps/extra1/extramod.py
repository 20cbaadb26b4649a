WHERE = "extra1"

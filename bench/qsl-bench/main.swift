print("qsl")

print("sprof")

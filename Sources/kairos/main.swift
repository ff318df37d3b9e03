print("kairos")

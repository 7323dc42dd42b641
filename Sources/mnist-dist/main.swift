print("mnist-dist")

"""Scripts that rebuild the guard's shipped model files from the datasets in the repository."""

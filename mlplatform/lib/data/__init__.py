"""Data stage: landed files, the dataset contract (validation), label rows and the demo dataset."""

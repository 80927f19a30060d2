"""Feature stage: feature engineering, the Feast definitions, offline/online writes and the training set."""

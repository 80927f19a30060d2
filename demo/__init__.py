"""The demo project: the `credit` pipeline of `make demo`, declared in `defs/credit/defs.yaml` as any user's."""

"""Software-defined assets, one module per layer; each module builds its assets from a spec (helpers in `_shared`)."""

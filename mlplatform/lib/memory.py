"""Returning freed memory to the OS between large steps (glibc and Arrow keep freed pages otherwise)."""


def release_freed_memory() -> None:
    """Hand freed heap and Arrow pool memory back to the OS; the peak of the next step starts lower."""
    import ctypes

    import pyarrow as pa

    pa.default_memory_pool().release_unused()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass

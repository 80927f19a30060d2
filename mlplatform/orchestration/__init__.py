"""Running the platform outside the daemon: freshness and the rebuild plan, the in-process loop, the runner."""

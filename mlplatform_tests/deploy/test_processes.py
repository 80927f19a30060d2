"""Ports for servers started later: free now, and outside the range outgoing connections take theirs from."""

import socket

from mlplatform.deploy.processes import LOWEST_PORT, ephemeral_ports, free_port


def test_a_free_port_is_bindable_and_below_the_ephemeral_range():
    low, high = ephemeral_ports()
    assert 1024 <= low <= high
    ports = {free_port() for _ in range(20)}
    assert len(ports) > 1  # chosen at random, so two pickers rarely agree
    for port in ports:
        assert LOWEST_PORT <= port < low
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))


def test_a_port_someone_listens_on_is_never_chosen(monkeypatch):
    import random

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", free_port()))
        taken.listen()
        busy, other = taken.getsockname()[1], free_port()
        monkeypatch.setattr(random, "sample", lambda population, k: [busy, other])  # the busy port comes up first
        assert free_port() == other

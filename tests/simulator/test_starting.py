"""Starting the simulator: python -m coalesce_simulator and running_simulator()."""

from __future__ import annotations

import pytest
import requests

from coalesce_simulator import SimulatorServer, running_simulator
from coalesce_simulator.__main__ import main

# --- python -m coalesce_simulator -----------------------------------------------------------


def test_it_serves_from_the_command_line(monkeypatch, capsys):
    started = {}

    def fake_serve_forever(self, poll_interval=0.5):
        started["state"] = self.state
        raise KeyboardInterrupt  # what Ctrl-C does

    monkeypatch.setattr(SimulatorServer, "serve_forever", fake_serve_forever)
    monkeypatch.setenv("COALESCE_SIMULATOR_TOKEN", "env-token")

    main(["--port", "0", "--misbehave", "e1=http429"])

    state = started["state"]
    assert capsys.readouterr().out.strip() == (
        f"Coalesce simulator listening on {state.base_url} (token: env-token)"
    )
    assert state.behaviour_for("e1") == "http429"
    assert state.closing.is_set()  # the server was closed on the way out


def test_it_refuses_a_malformed_misbehave_option(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--port", "0", "--misbehave", "e1=explode"])

    assert exit_info.value.code == 2
    assert "ENV_ID=MODE" in capsys.readouterr().err


def test_the_command_line_passes_the_run_duration(monkeypatch, capsys):
    started_with = {}

    def fake_serve_forever(self, poll_interval=0.5):
        started_with["state"] = self.state
        raise KeyboardInterrupt

    monkeypatch.setattr(SimulatorServer, "serve_forever", fake_serve_forever)

    main(["--port", "0", "--run-seconds", "0.5"])

    assert started_with["state"].run_seconds == 0.5
    with pytest.raises(SystemExit):
        main(["--port", "0", "--run-seconds", "-1"])
    assert "--run-seconds" in capsys.readouterr().err


# --- running_simulator() ---------------------------------------------------------------------


def test_running_simulator_serves_on_a_free_loopback_port_until_the_block_ends():
    with running_simulator(token="t", run_seconds=1) as server:
        assert server.base_url.startswith("http://127.0.0.1:")
        assert server.state.run_seconds == 1
        response = requests.get(
            f"{server.base_url}/api/v1/runs", headers={"Authorization": "Bearer t"}, timeout=5
        )
        assert response.status_code == 200

    assert server.state.closing.is_set()  # a "timeout" hang would have ended too
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{server.base_url}/api/v1/runs", timeout=1)

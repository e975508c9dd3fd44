"""txzserver.ctl.Control with a fake supervisord XML-RPC proxy: exit codes and start order."""

import io
import xmlrpc.client

import pytest
from supervisor.xmlrpc import Faults

from txzserver import ctl
from txzserver.ctl import Control, CtlError

PROGRAMS = [("instance", 30), ("zeo", 10), ("broker", 20)]  # as in config/supervisord.conf


class Supervisor:
    def __init__(self, states=None, unreachable=False, spawn_error=()):
        self.states = dict(states or {name: "RUNNING" for name, _ in PROGRAMS})
        self.unreachable = unreachable
        self.spawn_error = spawn_error
        self.calls = []

    def _check(self):
        if self.unreachable:
            raise ConnectionRefusedError(111, "Connection refused")

    def getAllProcessInfo(self):
        self._check()
        return [{"name": n, "group": n, "statename": self.states[n],
                 "description": "pid 1, uptime 0:00:01" if self.states[n] == "RUNNING" else "Not started"}
                for n, _ in sorted(PROGRAMS)]

    def getAllConfigInfo(self):
        return [{"name": n, "group": n, "process_prio": p} for n, p in PROGRAMS]

    def stopProcess(self, name, wait):
        self.calls.append(("stop", name))
        if self.states[name] != "RUNNING":
            raise xmlrpc.client.Fault(Faults.NOT_RUNNING, "NOT_RUNNING")
        self.states[name] = "STOPPED"
        return True

    def startProcess(self, name, wait):
        self.calls.append(("start", name))
        if name in self.spawn_error:
            raise xmlrpc.client.Fault(Faults.SPAWN_ERROR, f"SPAWN_ERROR: {name}")
        self.states[name] = "RUNNING"
        return True

    def tailProcessStdoutLog(self, name, offset, length):
        if name == "zeo":
            raise xmlrpc.client.Fault(Faults.NO_FILE, "NO_FILE")
        return ["txzserver ready\n", 16, False]


class Proxy:
    def __init__(self, supervisor):
        self.supervisor = supervisor


def control(**kwargs):
    fake = Supervisor(**kwargs)
    return Control(Proxy(fake), out=io.StringIO()), fake


def test_status_is_0_when_all_run_and_3_otherwise():
    c, fake = control()
    assert c.status() == ctl.OK
    assert "instance                 RUNNING    pid 1" in c.out.getvalue()
    fake.states["broker"] = "FATAL"
    assert c.status() == ctl.NOT_RUNNING
    assert c.status(["instance"]) == ctl.OK


def test_unknown_program_is_a_usage_error():
    c, _ = control()
    with pytest.raises(CtlError) as info:
        c.status(["nosuch"])
    assert info.value.status == ctl.USAGE and "known: broker, instance, zeo" in str(info.value)


def test_unreachable_supervisord_is_4():
    c, _ = control(unreachable=True)
    with pytest.raises(CtlError) as info:
        c.status()
    assert info.value.status == ctl.UNREACHABLE


def test_restart_stops_in_reverse_priority_and_starts_by_priority():
    c, fake = control()
    assert c.restart() == ctl.OK
    assert fake.calls == [("stop", "instance"), ("stop", "broker"), ("stop", "zeo"),
                          ("start", "zeo"), ("start", "broker"), ("start", "instance")]


def test_a_failed_start_is_1_and_stopping_a_stopped_program_is_fine():
    c, fake = control(states={"instance": "STOPPED", "zeo": "RUNNING", "broker": "RUNNING"},
                      spawn_error=("instance",))
    assert c.stop(["instance"]) == ctl.OK and fake.calls == []
    assert c.start() == ctl.FAILED
    assert "instance: ERROR (SPAWN_ERROR: instance)" in c.out.getvalue()


def test_tail_reads_the_instance_log_or_says_there_is_none():
    c, _ = control()
    assert c.tail() == ctl.OK and c.out.getvalue() == "txzserver ready\n"
    assert c.tail("zeo") == ctl.FAILED


def test_find_config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(ctl.ENV, raising=False)
    monkeypatch.setattr(ctl, "CANDIDATES", ("etc/supervisord.conf",))
    with pytest.raises(CtlError) as info:
        ctl.find_config()
    assert info.value.status == ctl.USAGE
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "supervisord.conf").write_text("[supervisord]\n")
    assert ctl.find_config() == str(tmp_path / "etc" / "supervisord.conf")
    with pytest.raises(CtlError, match="no such supervisord.conf"):
        ctl.find_config(str(tmp_path / "missing.conf"))

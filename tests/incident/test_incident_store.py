"""The incident record on disk: concurrent appends lose nothing, a torn last line is skipped and repaired, corruption is named."""

from __future__ import annotations

import json
import multiprocessing
import os

import pytest

from ppdoctor.incident import IncidentError, IncidentLog, TargetIncidents, target_identity
from ppdoctor.config import AwsTarget, KubeTarget, NlbTarget, TargetConfig

N = 1000


def _writer(path: str, tag: str, start: multiprocessing.Event) -> None:  # type: ignore[valid-type]
    log = IncidentLog(path)
    start.wait(30)
    for i in range(N):
        log.append("note", f"{tag} {i}", {"tag": tag, "i": i}, by=tag)


def test_two_processes_appending_1000_entries_each_lose_none(tmp_path):
    path = tmp_path / "one.jsonl"
    ctx = multiprocessing.get_context("fork")
    start = ctx.Event()
    procs = [ctx.Process(target=_writer, args=(str(path), tag, start)) for tag in ("a", "b")]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    result = IncidentLog(path).read()
    assert result.problems == []
    entries = result.entries
    assert len(entries) == 2 * N
    for tag in ("a", "b"):
        assert [e["data"]["i"] for e in entries if e["data"]["tag"] == tag] == list(range(N))  # none lost, in order
    times = [e["at"] for e in entries]
    assert all(b > a for a, b in zip(times, times[1:]))  # strictly increasing across both writers
    assert len({e["eid"] for e in entries}) == 2 * N


def test_torn_last_line_is_skipped_then_cut_off_and_kept_by_the_next_append(tmp_path):
    log = IncidentLog(tmp_path / "i.jsonl")
    for i in range(3):
        log.append("note", f"n{i}")
    with open(log.path, "ab") as f:
        f.write(b'{"v":1,"at":17,"kind":"change","summ')  # a crash mid-write
    result = log.read()
    assert [e["summary"] for e in result.entries] == ["n0", "n1", "n2"]
    assert [p.kind for p in result.problems] == ["torn"] and result.problems[0].line == 4
    assert "interrupted" in str(result.problems[0])
    log.entries()  # a torn line is not corruption
    log.append("note", "after the crash")
    result = log.read()
    assert result.problems == []
    assert [e["summary"] for e in result.entries][:3] == ["n0", "n1", "n2"]
    assert result.entries[3]["data"]["torn_fragment"].startswith('{"v":1,"at":17,"kind":"change"')
    assert result.entries[4]["summary"] == "after the crash"


def test_whole_entry_lacking_only_its_newline_is_kept(tmp_path):
    log = IncidentLog(tmp_path / "i.jsonl")
    log.append("note", "first")
    with open(log.path, "ab") as f:
        f.write(json.dumps({"at": 1e10, "kind": "note", "summary": "no newline"}).encode())
    assert [e["summary"] for e in log.read().entries] == ["first", "no newline"]
    log.append("note", "next")
    entries = log.entries()
    assert [e["summary"] for e in entries] == ["first", "no newline", "next"]
    assert entries[2]["at"] > 1e10


def test_corrupt_line_names_file_and_line_and_the_rest_stays_readable(tmp_path):
    log = IncidentLog(tmp_path / "i.jsonl")
    log.append("note", "one")
    with open(log.path, "ab") as f:
        f.write(b"garbage that is not json\n")
    log.append("note", "three")
    result = log.read()
    assert [e["summary"] for e in result.entries] == ["one", "three"]
    assert [(p.kind, p.line) for p in result.corrupt] == [("corrupt", 2)]
    with pytest.raises(IncidentError) as err:
        log.entries()
    assert str(log.path) in str(err.value) and "line 2" in str(err.value)


def test_current_new_and_close(tmp_path):
    target = TargetIncidents("k", "label", base=tmp_path)
    assert target.current(create=False) is None
    first = target.current(meta={"instance": "arn-1"})
    assert target.current(meta={"instance": "arn-1"}).path == first.path
    second, closed = target.new(note="next one", meta={"instance": "arn-1"})
    assert closed.path == first.path and second.path != first.path
    infos = {i.id: i for i in target.infos()}
    assert not infos[first.id].open and infos[first.id].close_note == "next one" and infos[second.id].open
    assert target.find(second.id).path == second.path
    with pytest.raises(IncidentError):
        target.find("nope")
    # the NLB was recreated under the same name: the old incident ends, a new one starts
    third = target.current(meta={"instance": "arn-2"})
    assert third.path != second.path
    assert not {i.id: i for i in target.infos()}[second.id].open


def test_target_identity_is_stable_across_addresses_and_differs_by_listener():
    base = TargetConfig(
        name="prod",
        nlb=NlbTarget(name="edge", arn="arn:1", address="10.0.0.1:443", listener_port=443),
        aws=AwsTarget(region="eu-west-1"),
        kubernetes=KubeTarget(context="prod"),
    )
    moved = TargetConfig(
        name="prod2",
        nlb=NlbTarget(name="edge", arn="arn:2", address="10.9.9.9:443", listener_port=443),
        aws=AwsTarget(region="eu-west-1"),
        kubernetes=KubeTarget(context="prod"),
    )
    other = TargetConfig(
        name="prod",
        nlb=NlbTarget(name="edge", listener_port=80),
        aws=AwsTarget(region="eu-west-1"),
        kubernetes=KubeTarget(context="prod"),
    )
    k1, label, inst = target_identity(base)
    assert target_identity(moved)[0] == k1 and inst == "arn:1" and "edge" in label
    assert target_identity(other)[0] != k1
    from_arn = TargetConfig(
        nlb=NlbTarget(arn="arn:aws:elasticloadbalancing:eu-west-1:123:loadbalancer/net/edge/abc", listener_port=443),
        aws=AwsTarget(region="eu-west-1"),
        kubernetes=KubeTarget(context="prod"),
    )
    assert target_identity(from_arn)[0] == k1
    assert target_identity(TargetConfig(path="/etc/x.toml"))[1] == "config /etc/x.toml"
    assert os.sep not in k1


def test_incident_and_report_stay_light():
    """The record and the report are engine: no textual/rich; `incident list` loads no AWS/Kubernetes client."""
    from tests.unit.test_import_hygiene import HEAVY, _cli, _loaded_after

    loaded = _loaded_after("import ppdoctor.incident, ppdoctor.incident.cli, ppdoctor.report, ppdoctor.session")
    assert not {"textual", "rich"} & loaded
    loaded = _loaded_after(_cli(["incident", "list"]))
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))

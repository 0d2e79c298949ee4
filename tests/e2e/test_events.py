"""Live job events over SSE, read with a real HTTP client while a real worker runs a job that reports progress."""

import json
import threading

import requests

from .stack import wait_until


def read_events(stack, job_id, key="alice", timeout=60):
    """Open the stream and collect (event, data) pairs in a thread until the server ends it."""
    events, opened = [], threading.Event()

    def read():
        with stack.http.get(
            f"{stack.base_url}/api/job/{job_id}/events",
            headers={"Authorization": f"Bearer {stack.keys[key]}", "Accept": "text/event-stream"},
            stream=True, timeout=timeout,
        ) as response:
            events.append(("status", response.status_code, response.headers.get("Content-Type")))
            opened.set()
            name = None
            for line in response.iter_lines(decode_unicode=True):
                if line.startswith("event: "):
                    name = line[len("event: "):]
                elif line.startswith("data: "):
                    events.append((name, json.loads(line[len("data: "):])))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    return events, opened, reader


def test_the_stream_shows_state_and_progress_as_they_change_then_the_final_job(stack):
    gate = stack.gate()
    job = stack.add("waits_for_gate", {"gate": str(gate)}, {"delay": 1500})
    events, opened, reader = read_events(stack, job["id"])
    assert opened.wait(10)
    assert events[0] == ("status", 200, "text/event-stream")
    # the job as it is when the stream opens, then its changes as the worker makes them
    wait_until(lambda: ("progress", {"id": job["id"], "progress": 50}) in events, 30, f"progress 50 in {events}", stack)
    gate.touch()
    reader.join(30)
    assert not reader.is_alive(), "the stream ends once the job has finished"
    names = [event[0] for event in events[1:]]
    assert names[0] == "job" and events[1][1]["state"] == "delayed"
    assert names[-1] == "finished"
    final = events[-1][1]
    assert (final["id"], final["state"], final["progress"], final["returnvalue"]["gate"]) == (job["id"], "completed", 100, str(gate))
    states = [data["state"] for name, data in events[1:] if name == "state"]
    assert states == ["waiting", "active", "completed"]
    progress = [data["progress"] for name, data in events[1:] if name == "progress"]
    assert progress[-1] == 100 and 50 in progress


def test_a_finished_job_streams_its_final_json_at_once(stack):
    done = stack.wait_for(stack.add("noop", {"n": 1})["id"])
    events, opened, reader = read_events(stack, done["id"])
    reader.join(15)
    assert [event[0] for event in events[1:]] == ["job", "finished"]
    assert events[-1][1]["returnvalue"] == {"data": {"n": 1}}


def test_a_deleted_job_ends_its_stream(stack):
    job = stack.add("noop", {}, {"delay": 60_000})
    events, opened, reader = read_events(stack, job["id"])
    wait_until(lambda: len(events) >= 2, 10, "the first event", stack)
    assert stack.request("DELETE", f"/api/job/{job['id']}").status_code == 204
    reader.join(15)
    assert [event[0] for event in events[1:]] == ["job", "removed"]


def test_only_the_owner_with_job_read_may_watch(stack):
    job = stack.add("noop", {}, {"delay": 60_000})
    url = f"{stack.base_url}/api/job/{job['id']}/events"
    assert stack.http.get(url, timeout=10).status_code == 401
    other = stack.http.get(url, headers={"Authorization": f"Bearer {stack.keys['bob']}"}, timeout=10)
    assert (other.status_code, other.json()["error"]["code"]) == (404, "not_found")
    stack.keys["alice-create-only"] = stack.manage("create_api_key", "alice", "--scopes", "job.create").strip()
    forbidden = stack.http.get(url, headers={"Authorization": f"Bearer {stack.keys['alice-create-only']}"}, timeout=10)
    assert (forbidden.status_code, forbidden.json()["error"]["message"]) == (403, "Your API key does not have the 'job.read' scope.")
    assert stack.request("DELETE", f"/api/job/{job['id']}").status_code == 204


def test_many_watchers_tie_up_no_thread(stack):
    """More open streams than the web processes have threads (2 × 8): the API still answers."""
    job = stack.add("noop", {}, {"delay": 60_000})
    sessions, streams = [], []
    for _ in range(24):
        session = requests.Session()
        sessions.append(session)
        streams.append(session.get(f"{stack.base_url}/api/job/{job['id']}/events",
                                   headers={"Authorization": f"Bearer {stack.keys['alice']}"}, stream=True, timeout=30))
    assert all(stream.status_code == 200 for stream in streams)
    assert stack.get(job["id"])["state"] == "delayed"
    assert stack.add("noop")["state"] == "waiting"
    for stream, session in zip(streams, sessions):
        stream.close()
        session.close()
    assert stack.request("DELETE", f"/api/job/{job['id']}").status_code == 204

"""The queue between the watches and the worker: each change handled, none twice at once."""

import threading

from arc_bridge.workqueue import WorkQueue


def test_a_key_added_many_times_before_it_is_handled_is_handled_once():
    queue = WorkQueue()
    for key in ("a", "b", "a", "a"):
        queue.add(key)
    assert [queue.get(0), queue.get(0), queue.get(0)] == ["a", "b", None]


def test_a_key_added_while_it_is_handled_is_handled_again_after_and_not_meanwhile():
    queue = WorkQueue()
    queue.add("a")
    assert queue.get(0) == "a"
    queue.add("a")  # a new event while the worker handles the old one
    assert queue.get(0) is None  # a second worker must not take it now
    queue.done("a")
    assert queue.get(0) == "a"
    queue.done("a")
    assert queue.get(0) is None


def test_a_waiting_worker_wakes_for_a_key():
    queue = WorkQueue()
    got = []
    worker = threading.Thread(target=lambda: got.append(queue.get(timeout=10)))
    worker.start()
    queue.add("a")
    worker.join(timeout=10)
    assert got == ["a"]

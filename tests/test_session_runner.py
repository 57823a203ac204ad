"""The session's job runner (``session.jobs``) alone: what it publishes, its generations, its chunk sizes."""

from __future__ import annotations

import math
import threading
from types import SimpleNamespace

import pytest

from latent_widgets.session.runner import CHUNK_SECONDS, JobRunner


def owner() -> SimpleNamespace:
    return SimpleNamespace(busy=(), errors=(), progress={})


def test_a_job_is_busy_while_it_runs_and_its_error_is_published_and_raised_once() -> None:
    o = owner()
    jobs = JobRunner(o, asynchronous=True)
    started, release = threading.Event(), threading.Event()

    def slow() -> None:
        started.set()
        release.wait(10)

    jobs.model_lane.submit("slow", slow)
    assert started.wait(10) and o.busy == ("slow",)
    jobs.map_lane.submit("boom", lambda: 1 / 0)
    release.set()
    with pytest.raises(ZeroDivisionError):
        jobs.wait(10)
    assert o.busy == () and [type(e) for e in o.errors] == [ZeroDivisionError]
    assert "in the session's 'boom' job" in o.errors[0].__notes__
    jobs.wait(10)  # raised once
    jobs.clear_errors()
    assert o.errors == ()
    jobs.close()


def test_the_newest_request_of_a_kind_wins_and_an_older_result_is_not_shown() -> None:
    jobs = JobRunner(owner(), asynchronous=False)
    a, b = jobs.next_generation("decode"), jobs.next_generation("decode")
    other = jobs.next_generation("place")
    assert not jobs.is_newest("decode", a) and jobs.is_newest("decode", b) and jobs.is_newest("place", other)
    shown: list[int] = []
    jobs.show_newest(b, lambda: shown.append(b))
    jobs.show_newest(a, lambda: shown.append(a))  # older than what is on display
    assert shown == [b]


def test_progress_is_published_at_its_ends_and_at_most_twice_a_second_between() -> None:
    o = owner()
    jobs = JobRunner(o, asynchronous=False)
    jobs.set_progress("predict", 0, 10)
    jobs.set_progress("predict", 3, 10)  # within half a second of the last
    assert o.progress == {"predict": (0, 10)}
    jobs.set_progress("predict", 10, 10)
    assert o.progress == {"predict": (10, 10)}
    jobs.end_progress("predict")
    assert o.progress == {}


def test_chunk_rows_is_a_power_of_two_of_about_a_quarter_second() -> None:
    inline, lanes = JobRunner(owner(), asynchronous=False), JobRunner(owner(), asynchronous=True)
    assert inline.chunk_rows(0.01) == 32 and lanes.chunk_rows(math.inf, cap=16) == 16
    assert lanes.chunk_rows(CHUNK_SECONDS / 5) == 4 and lanes.chunk_rows(10.0) == 1 and lanes.chunk_rows(1e-9) == 32

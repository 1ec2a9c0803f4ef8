"""A CPU worker's torch threads (`profiler.cpu_threads`): pinned inside, nested and concurrent
holders leave the process's count as it was, and CPU pixels do not depend on that count."""

from __future__ import annotations

import threading

import pytest

torch = pytest.importorskip("torch")

from profiler.cpu_threads import CPU_WORKER_THREADS, worker_threads  # noqa: E402


@pytest.fixture
def two_threads():
    """The process at 2 torch threads (a count other than a worker's), restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(CPU_WORKER_THREADS + 1)
    yield CPU_WORKER_THREADS + 1
    torch.set_num_threads(before)


def _count_in_new_thread() -> int:
    seen = []
    t = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
    t.start()
    t.join()
    return seen[0]


def test_pinned_inside_nested_and_only_on_cpu(two_threads):
    with worker_threads("cuda"):
        assert torch.get_num_threads() == two_threads
    with worker_threads("cpu"):
        with worker_threads("cpu"):
            assert torch.get_num_threads() == CPU_WORKER_THREADS
        assert torch.get_num_threads() == CPU_WORKER_THREADS  # the inner exit keeps the pin
    assert torch.get_num_threads() == two_threads
    assert _count_in_new_thread() == two_threads


def test_overlapping_holders_restore_the_process_count(two_threads):
    """A enters, B enters, A leaves, B leaves: B stays pinned after A left, and threads that
    start afterwards get the count before A entered (B must not restore A's pin)."""
    a_in, b_in, a_out, b_checked = (threading.Event() for _ in range(4))
    seen = {}

    def a():
        with worker_threads("cpu"):
            a_in.set()
            b_in.wait()
        a_out.set()

    def b():
        a_in.wait()
        with worker_threads("cpu"):
            b_in.set()
            a_out.wait()
            seen["b after a left"] = torch.get_num_threads()
            b_checked.set()

    threads = [threading.Thread(target=f) for f in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == {"b after a left": CPU_WORKER_THREADS}
    assert torch.get_num_threads() == two_threads
    assert _count_in_new_thread() == two_threads


def test_cpu_pixels_do_not_depend_on_the_process_thread_count(tmp_path):
    """The sharding test's images (a CPU pipeline draws some of them differently with 1 and 2
    threads) written at either count: the same bytes."""
    pytest.importorskip("diffusers")
    from profiler.generate import generate_images
    from profiler.sharding import PipelineSource

    prompts = ("a cat", "a red car next to a river", "an old man running", "a castle", "a boat")
    settings = {"images_per_prompt": 2, "steps": 1, "resolution": 32, "batch_size": 3, "seed": 7}
    pipe = PipelineSource("tiny:1:8", "fp32").load("cpu")
    before = torch.get_num_threads()
    try:
        for count in (1, 2):
            torch.set_num_threads(count)
            generate_images(pipe, prompts, tmp_path / str(count), progress=False, **settings)
    finally:
        torch.set_num_threads(before)
    one, two = tmp_path / "1", tmp_path / "2"
    names = sorted(p.name for p in one.iterdir())
    assert len(names) == 10
    assert all((one / n).read_bytes() == (two / n).read_bytes() for n in names)

"""The warm launcher's own parts, in real processes (the whole of it runs under the production
profile in tests/integration/test_faults.py)."""

import subprocess
import sys
import textwrap

from tasks.settings import ROOT


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, capture_output=True, text=True, timeout=60
    )


def test_a_run_ends_after_its_threads_and_exit_handlers_with_its_own_status(tmp_path):
    done = tmp_path / "done"
    result = _run(
        f"""
        import atexit, threading, time
        from ops.launcher import _exit
        def late():
            time.sleep(0.3)
            open({str(done)!r}, "a").write("thread\\n")
        threading.Thread(target=late).start()
        atexit.register(lambda: open({str(done)!r}, "a").write("atexit\\n"))
        print("flushed", end="")
        _exit(3)
        """
    )
    assert result.returncode == 3
    assert result.stdout == "flushed"
    assert done.read_text() == "thread\natexit\n"  # the thread first, as at interpreter shutdown


def test_exit_statuses_follow_the_interpreters_rules():
    from ops.launcher import _exit_status

    assert _exit_status(None) == 0
    assert _exit_status(0) == 0
    assert _exit_status(2) == 2


def test_warming_starts_no_thread_and_shares_one_verified_tls_context():
    result = _run(
        """
        import sys, threading
        sys.argv = ["launcher"]
        from ops.launcher import preload
        assert preload() == [], preload()
        assert threading.active_count() == 1, threading.enumerate()
        import prefect.client.orchestration as o
        a = o.ssl.create_default_context(cafile=o.certifi.where())
        assert a is o.ssl.create_default_context(cafile=o.certifi.where())
        unverified = o.ssl.create_default_context()
        assert unverified is not o.ssl.create_default_context()  # made afresh: Prefect alters it
        print("ok")
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_a_cache_that_depends_only_on_files_survives_into_the_child_and_the_others_are_cleared():
    result = _run(
        """
        import sys
        sys.argv = ["launcher"]
        from ops.launcher import _clear_project_caches, preload
        preload()
        from tasks.calendar import _busdaycal
        from tasks.domain.policy import get_policy
        get_policy()
        _clear_project_caches()
        assert _busdaycal.cache_info().currsize == 1
        assert get_policy.cache_info().currsize == 0
        print("ok")
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"

"""Login: the limiter on a fake clock, and the real page's /login route over HTTP on loopback."""

from __future__ import annotations

import logging
import threading
import time

import httpx
import pytest
from fastapi import HTTPException

from advisor.feedback import FeedbackStore
from advisor.web.app import build_ui, serve
from advisor.web.login import Login, LoginLimiter, LoginLocked, client_address
from tests.conftest import free_port


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def fail(limiter: LoginLimiter, user: str, address: str | None = None, times: int = 1) -> None:
    for _ in range(times):
        assert limiter.attempt(user, address, lambda: False) is False


def test_a_name_is_locked_after_its_failures_until_the_window_passes():
    clock = Clock()
    limiter = LoginLimiter(attempts=3, window=60, clock=clock)
    for _ in range(3):
        fail(limiter, "ann")
        clock.now += 10
    assert limiter.wait("ann") == pytest.approx(30)  # the first failure leaves the window at 60
    with pytest.raises(LoginLocked) as locked:
        limiter.attempt("ann", None, lambda: True)  # the right password too
    assert locked.value.retry_after == pytest.approx(30)
    assert limiter.wait("bob") == 0  # other names are not touched
    clock.now += 30
    assert limiter.wait("ann") == 0
    assert limiter.attempt("ann", None, lambda: True) is True


def test_the_window_slides_and_refused_attempts_do_not_extend_it():
    clock = Clock()
    limiter = LoginLimiter(attempts=2, window=60, clock=clock)
    fail(limiter, "ann")
    clock.now += 50
    fail(limiter, "ann")
    checked = []
    with pytest.raises(LoginLocked):  # refused without looking at the password
        limiter.attempt("ann", None, lambda: checked.append(1) or True)
    assert checked == []
    clock.now += 10  # the first failure has left the window: one more try
    fail(limiter, "ann")
    assert limiter.wait("ann") == pytest.approx(50)


def test_a_success_clears_the_names_failures_but_not_the_addresss():
    clock = Clock()
    limiter = LoginLimiter(attempts=3, window=60, clock=clock)
    fail(limiter, "ann", "10.0.0.1", times=2)
    assert limiter.attempt("ann", "10.0.0.1", lambda: True) is True
    fail(limiter, "ann", "10.0.0.2", times=2)
    assert limiter.wait("ann", "10.0.0.2") == 0
    fail(limiter, "bob", "10.0.0.1")  # the address's third failure: a valid login does not reset it
    assert limiter.wait("carol", "10.0.0.1") == pytest.approx(60)


def test_an_address_trying_many_names_is_locked():
    clock = Clock()
    limiter = LoginLimiter(attempts=3, window=60, clock=clock)
    for user in ("ann", "bob", "carol"):
        fail(limiter, user, "10.0.0.1")
    with pytest.raises(LoginLocked):
        limiter.attempt("dave", "10.0.0.1", lambda: True)
    assert limiter.attempt("dave", "10.0.0.2", lambda: True) is True
    assert limiter.wait("dave") == 0  # without an address only the name counts


def test_expired_failures_are_forgotten():
    clock = Clock()
    limiter = LoginLimiter(attempts=3, window=60, clock=clock)
    for n in range(100):
        fail(limiter, f"user{n}", f"10.0.{n}.1")
    assert len(limiter) == 200
    clock.now += 61
    fail(limiter, "ann")
    assert len(limiter) == 1


def test_concurrent_attempts_check_no_more_passwords_than_allowed():
    limiter = LoginLimiter(attempts=5, window=60)
    checked = []
    start = threading.Barrier(20)

    def wrong() -> bool:
        checked.append(1)
        time.sleep(0.01)  # a slow check, so that the threads overlap
        return False

    def attempt() -> None:
        start.wait()
        try:
            limiter.attempt("ann", "10.0.0.1", wrong)
        except LoginLocked:
            pass

    threads = [threading.Thread(target=attempt) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(checked) == 5


def test_login_checks_passwords_and_logs_refusals_without_them(caplog):
    clock = Clock()
    login = Login([("ann", "s3cret"), ("bob", "pw")], LoginLimiter(attempts=2, window=60, clock=clock))
    assert login("ann", "s3cret") is True
    assert login("ann", "S3cret") is False
    assert login("nobody", "s3cret") is False
    assert login("ann", "") is False
    assert login("bob", "\ud800") is False  # a lone surrogate: a wrong password, not an error
    token = client_address.set("10.0.0.9")
    try:
        with (
            caplog.at_level(logging.INFO, logger="advisor.web.login"),
            pytest.raises(HTTPException) as refused,
        ):
            login("ann", "s3cret")
    finally:
        client_address.reset(token)
    assert refused.value.status_code == 400  # what Gradio's login page shows as "Incorrect credentials"
    assert refused.value.headers == {"Retry-After": "60"}
    assert "try again in 60 s" in refused.value.detail
    logged = caplog.text
    assert "'ann'" in logged and "10.0.0.9" in logged
    assert "s3cret" not in logged and "S3cret" not in logged


# --- the real page over HTTP --------------------------------------------------------------------

WINDOW = 6.0  # long enough for the attempts on a busy 2-core machine; waited out once


@pytest.fixture
def page(make_settings, tmp_path):
    """The real page, with a login for ann and bob (3 failures per WINDOW seconds), served on loopback."""
    from advisor.advisor import build_advisor

    settings = make_settings(ui_auth="ann:s3cret,bob:pw2", ui_login_attempts=3, ui_login_window=WINDOW)
    advisor = build_advisor(settings, load=False)  # no index: the login is in front of it all
    port = free_port()
    demo = build_ui(advisor, settings, FeedbackStore(f"sqlite:///{tmp_path / 'f.sqlite3'}"))
    serve(demo, settings, port=port, block=False)
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
        yield http
    demo.close()


def log_in(http: httpx.Client, user: str, password: str, *, as_form: bool = True) -> httpx.Response:
    """POST to Gradio's login route as a form (curl) or as multipart (what the login page sends)."""
    fields = {"username": user, "password": password}
    if as_form:
        return http.post("/login", data=fields)
    return http.post("/login", files={k: (None, v) for k, v in fields.items()})


@pytest.mark.slow
def test_the_pages_login_is_refused_after_failures_until_the_window_passes(page, caplog):
    assert log_in(page, "ann", "s3cret").status_code == 200
    page.cookies.clear()
    with caplog.at_level(logging.INFO, logger="advisor.web.login"):
        for n in range(3):
            assert log_in(page, "ann", f"guess{n}", as_form=n % 2 == 0).status_code == 400
        refused = log_in(page, "ann", "s3cret")
        slash = page.post("/login/", data={"username": "ann", "password": "s3cret"})
        assert slash.status_code == 400  # the route's other spelling
    locked_at = time.monotonic()
    assert refused.status_code == 400, refused.text  # the login page shows its usual refusal
    assert "try again in" in refused.json()["detail"]
    assert 1 <= int(refused.headers["Retry-After"]) <= WINDOW + 1
    assert "guess" not in caplog.text and "s3cret" not in caplog.text
    assert "'ann'" in caplog.text and "127.0.0.1" in caplog.text

    assert page.get("/gradio_api/login_check").status_code == 401  # no refusal let anyone in

    time.sleep(max(0.0, WINDOW + 0.2 - (time.monotonic() - locked_at)))
    accepted = log_in(page, "ann", "s3cret", as_form=False)
    assert accepted.status_code == 200, accepted.text
    assert page.get("/gradio_api/login_check").status_code == 200  # its cookie lets the page in


@pytest.mark.slow
def test_the_pages_login_is_refused_to_an_address_trying_many_names(page):
    for user in ("carol", "dave", "erin"):
        assert log_in(page, user, "password").status_code == 400
    refused = log_in(page, "bob", "pw2")  # a name with no failures, from the same address
    assert refused.status_code == 400 and "try again in" in refused.json()["detail"]

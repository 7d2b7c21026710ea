"""The devhost serves the app's HTTP functions as the Functions host would."""

from __future__ import annotations

import httpx

from devhost.testing import DevhostProcess


def test_route_params_query_and_headers_reach_the_function(devhost: DevhostProcess) -> None:
    """A template route passes route params, query, headers and method into the HttpRequest."""
    r = devhost.get("/api/hello/World", params={"q": "1"}, headers={"x-test": "t"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    assert r.headers["x-sample"] == "yes"
    assert r.json() == {"name": "World", "q": "1", "header": "t", "method": "GET"}


def test_mimetype_and_charset_become_the_content_type(devhost: DevhostProcess) -> None:
    """An int-constrained route answers with the mimetype and charset the function chose."""
    r = devhost.get("/api/items/42")
    assert r.text == "item 42"
    assert r.headers["content-type"] == "text/plain; charset=utf-8"


def test_constraint_mismatch_and_unknown_route_are_a_bare_404(devhost: DevhostProcess) -> None:
    """Routes that do not match answer 404 with no body, as the host's routing does."""
    for path in ("/api/items/abc", "/api/hello/123", "/api/nothing-here"):
        r = devhost.get(path)
        assert r.status_code == 404, path
        assert r.content == b"", path


def test_catch_all_route_takes_the_rest_of_the_path(devhost: DevhostProcess) -> None:
    """``{*path}`` captures several segments."""
    assert devhost.get("/api/files/a/b/c.txt").text == "a/b/c.txt"


def test_wrong_method_is_a_bare_404_as_the_host_answers(devhost: DevhostProcess) -> None:
    """A known route with a method it does not take: the host's routing finds no endpoint and
    answers 404 with no body (not 405: azure-functions-host#10098)."""
    r = devhost.post("/api/items/1")
    assert r.status_code == 404
    assert r.content == b""


def test_function_level_routes_need_the_key(devhost: DevhostProcess) -> None:
    """Function-level routes want x-functions-key or ?code=; anonymous ones do not."""
    assert devhost.get("/api/secret").status_code == 401
    assert devhost.get("/api/secret", headers={"x-functions-key": "wrong"}).status_code == 401
    assert devhost.get("/api/secret", key=True).text == "the secret"
    assert devhost.get("/api/secret", params={"code": devhost.function_key}).status_code == 200


def test_a_failing_function_is_500_without_the_details(devhost: DevhostProcess) -> None:
    """An exception becomes a bare 500, as the host's ExceptionMiddleware answers; the worker's
    message stays in the host's log."""
    r = devhost.get("/api/boom")
    assert r.status_code == 500
    assert r.content == b""
    assert "secret internal detail" not in r.text
    assert "secret internal detail" in devhost.output()


def test_check_status_response_urls_work(devhost: DevhostProcess) -> None:
    """create_check_status_response gives 202 + Location, and its URLs answer."""
    r = devhost.post("/api/start/waiter", key=True)
    assert r.status_code == 202
    urls = r.json()
    assert r.headers["location"] == urls["statusQueryGetUri"]
    devhost.wait_idle()
    status = httpx.get(urls["statusQueryGetUri"])
    assert status.status_code == 202
    assert status.json()["runtimeStatus"] == "Running"
    sent = httpx.post(urls["sendEventPostUri"].replace("{eventName}", "Go"), json={"ok": True})
    assert sent.status_code == 202
    devhost.wait_idle()
    done = httpx.get(urls["statusQueryGetUri"])
    assert done.status_code == 200
    assert done.json()["output"] == {"ok": True}
    assert httpx.delete(urls["purgeHistoryDeleteUri"]).json() == {"instancesDeleted": 1}
    assert httpx.get(urls["statusQueryGetUri"]).status_code == 404

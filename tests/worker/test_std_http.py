"""``http_request`` and ``echo`` of trioworks.worker.std against a real local HTTP server."""

from __future__ import annotations

import pytest
from std_helpers import output, run_std
from std_http_app import http_app

from trioworks.worker import ActivityError, InvalidParameters
from trioworks.worker.std import echo, http_request


async def test_echo_outputs_the_parameters() -> None:
    result = await run_std(echo, {"email": "a@b.c", "valid": True, "n": [1, 2]})
    assert result.to_output_dict() == {"echo": {"email": "a@b.c", "valid": True, "n": [1, 2]}}


async def test_get_json_with_query() -> None:
    async with http_app() as url:
        result = await run_std(
            http_request, {"method": "GET", "url": f"{url}/json", "query": {"q": "x", "n": 3}}
        )
    response = output(result, "response")
    assert response["status"] == 200
    assert response["success"] is True
    assert response["body"]["args"] == {"q": "x", "n": "3"}


async def test_json_suffix_content_type_is_parsed() -> None:
    async with http_app() as url:
        result = await run_std(http_request, {"method": "GET", "url": f"{url}/geo"})
    assert output(result, "response")["body"]["properties"]["periods"][0]["temperature"] == 72


async def test_text_body_is_a_string_and_untyped_json_is_parsed() -> None:
    async with http_app() as url:
        text = await run_std(http_request, {"method": "GET", "url": f"{url}/text"})
        untyped = await run_std(http_request, {"method": "GET", "url": f"{url}/untyped"})
    assert output(text, "response")["body"] == "Hello, world!"
    assert output(untyped, "response")["body"] == {"n": 1}


async def test_post_sends_json_body_headers_and_user_agent() -> None:
    async with http_app() as url:
        result = await run_std(
            http_request,
            {
                "method": "POST",
                "url": f"{url}/echo",
                "headers": {"X-Test": "yes"},
                "body": {"To": [{"Email": "e"}]},
            },
        )
    body = output(result, "response")["body"]
    assert body["method"] == "POST"
    assert body["json"] == {"To": [{"Email": "e"}]}
    assert body["headers"]["x-test"] == "yes"
    assert body["headers"]["content-type"] == "application/json"
    assert body["headers"]["user-agent"].startswith("trioworks-std")


async def test_non_2xx_is_a_result_not_an_error() -> None:
    async with http_app() as url:
        result = await run_std(http_request, {"method": "GET", "url": f"{url}/status/404"})
    assert output(result, "response") == {"status": 404, "success": False, "body": {"error": "nope"}}


async def test_include_body_false_and_head_have_no_body() -> None:
    async with http_app() as url:
        no_body = await run_std(http_request, {"method": "GET", "url": f"{url}/json", "include_body": False})
        head = await run_std(http_request, {"method": "HEAD", "url": f"{url}/echo"})
    assert output(no_body, "response") == {"status": 200, "success": True}
    assert "body" not in output(head, "response")


async def test_response_size_cap() -> None:
    async with http_app() as url:
        ok = await run_std(
            http_request, {"method": "GET", "url": f"{url}/big?n=1000", "max_response_bytes": 1000}
        )
        with pytest.raises(ActivityError) as caught:
            await run_std(
                http_request, {"method": "GET", "url": f"{url}/big?n=1001", "max_response_bytes": 1000}
            )
    assert len(output(ok, "response")["body"]) == 1000
    assert caught.value.code == "RESPONSE_TOO_LARGE"
    assert caught.value.retryable is False


async def test_timeout_is_a_retryable_error() -> None:
    async with http_app() as url:
        with pytest.raises(ActivityError) as caught:
            await run_std(http_request, {"method": "GET", "url": f"{url}/slow", "timeout_seconds": 0.2})
    assert "timed out" in caught.value.message
    assert caught.value.retryable is True


async def test_connection_refused_is_retryable() -> None:
    async with http_app() as url:
        pass  # the server is gone: its port refuses connections
    with pytest.raises(ActivityError) as caught:
        await run_std(http_request, {"method": "GET", "url": f"{url}/json"})
    assert caught.value.retryable is True


async def test_download_to_file_fills_a_declared_file_output() -> None:
    async with http_app() as url:
        result = await run_std(
            http_request,
            {"method": "GET", "url": f"{url}/text", "download_to_file": "page.txt"},
            outputs=[{"name": "page", "type": "file"}],
        )
    assert output(result, "response") == {"status": 200, "success": True}
    assert [o.name for o in result.outputs] == ["response", "page"]


async def test_bad_parameters_name_the_field() -> None:
    with pytest.raises(InvalidParameters, match="url"):
        await run_std(http_request, {"method": "GET"})
    with pytest.raises(ActivityError, match="headers"):
        await run_std(http_request, {"method": "GET", "url": "http://x", "headers": ["a"]})
    with pytest.raises(ActivityError, match="method"):
        await run_std(http_request, {"method": "FETCH", "url": "http://x"})

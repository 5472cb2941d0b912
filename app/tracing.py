"""Request ids end to end and request latency: every request gets an id (the caller's
`X-Request-ID` or a new one), echoed in the response, written in every log line, and carried as a
task header into the engine and mailer tasks the request enqueues, whose log lines carry it too."""

import time

from celery.signals import before_task_publish, task_postrun, task_prerun
from flask import Flask, g, request

from app.metrics import observe_request
from core.logs import REQUEST_ID, REQUEST_ID_HEADER, request_id_from

TASK_HEADER = "request_id"


def init_app(app: Flask) -> None:
    @app.before_request
    def _take_request_id() -> None:
        g.request_id = request_id_from(request.headers.get(REQUEST_ID_HEADER))
        g.request_token = REQUEST_ID.set(g.request_id)
        g.request_started = time.perf_counter()

    @app.after_request
    def _echo_request_id(response):
        if "request_id" in g:
            response.headers[REQUEST_ID_HEADER] = g.request_id
            observe_request(request, response.status_code, time.perf_counter() - g.request_started)
        return response

    @app.teardown_request
    def _forget_request_id(_error) -> None:
        token = g.pop("request_token", None)
        if token is not None:
            REQUEST_ID.reset(token)


@before_task_publish.connect
def _carry_request_id(headers=None, **_) -> None:
    request_id = REQUEST_ID.get()
    if request_id is not None and headers is not None:
        headers[TASK_HEADER] = request_id


@task_prerun.connect
def _adopt_request_id(task=None, **_) -> None:
    REQUEST_ID.set(getattr(task.request, TASK_HEADER, None) if task is not None else None)


@task_postrun.connect
def _drop_request_id(**_) -> None:
    REQUEST_ID.set(None)

"""CSV downloads, streamed row by row (a 100,000-row history never sits in memory)."""

import csv
import io
import itertools
from collections.abc import Iterable, Iterator

from flask import Response, request, stream_with_context


def json_or_csv(description: str, json_schema: dict, **extra) -> dict:
    """The OpenAPI doc of a 200 that is JSON (`json_schema`) or, on request, CSV (use with `blp.doc`,
    which replaces the 200 that `blp.response` documents)."""
    content = {"application/json": {"schema": json_schema}, "text/csv": {"schema": {"type": "string"}}}
    return {"responses": {"200": {"description": description, "content": content, **extra}}}


def wants_csv(format_: str) -> bool:
    """`format=csv`, or an Accept header that prefers text/csv to JSON."""
    return format_ == "csv" or request.accept_mimetypes.best_match(["application/json", "text/csv"]) == "text/csv"


def _lines(header: list[str], rows: Iterable[list]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for row in itertools.chain([header], rows):
        writer.writerow(row)
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()


def csv_response(filename: str, header: list[str], rows: Iterable[list]) -> Response:
    response = Response(stream_with_context(_lines(header, rows)), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response

"""The Blueprint every domain uses: flask-smorest's, parsing JSON bodies with the bounded parser."""

import flask_smorest
from webargs.core import missing
from webargs.flaskparser import FlaskParser, is_json_request

from app.hardening import parse_json_body


class BoundedParser(FlaskParser):
    """webargs' parser, but a body nested too deep or with absurd numbers is a 400, never a 500."""

    def _raw_load_json(self, req):
        if not is_json_request(req):
            return missing
        data = req.get_data(cache=True)
        if not data:
            return missing
        try:
            return parse_json_body(data)
        except ValueError as exc:  # also JSONDecodeError and UnicodeDecodeError
            return self._handle_invalid_json_error(exc, req)


class Blueprint(flask_smorest.Blueprint):
    ARGUMENTS_PARSER = BoundedParser()

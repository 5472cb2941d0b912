from flask.views import MethodView
from marshmallow import Schema, fields

from app.blueprint import Blueprint
from core.assets import SEED_ASSETS

blp = Blueprint("assets", __name__, description="The assets you can trade")


class AssetSchema(Schema):
    symbol = fields.String(required=True)
    name = fields.String(required=True)
    decimals = fields.Integer(required=True)
    imageUrl = fields.String(attribute="image_url", required=True)


class AssetsSchema(Schema):
    assets = fields.List(fields.Nested(AssetSchema), required=True)


@blp.route("/supportedAssets")
class SupportedAssets(MethodView):
    @blp.response(200, AssetsSchema)
    def get(self):
        """Tradable assets and their price decimals."""
        return {"assets": list(SEED_ASSETS.values())}

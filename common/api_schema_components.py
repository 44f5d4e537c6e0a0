"""Schema components the settings add to the OpenAPI schema (plain data: settings import it)."""

# JSON Rowbell can store (integrations/json_input.py): no NUL character in any string or key. Nesting
# deeper than JSON_MAX_DEPTH (64) levels, NaN, Infinity and numbers beyond a float are refused too.
TEXT = "^[^\\u0000]*$"
JSON_COMPONENTS = {
    "JsonValue": {
        "description": "Any JSON value with no NUL character (\\u0000) in a string or key.",
        "anyOf": [
            {"type": "string", "pattern": TEXT},
            {"type": ["number", "boolean", "null"]},
            {"type": "array", "items": {"$ref": "#/components/schemas/JsonValue"}},
            {"$ref": "#/components/schemas/JsonObject"},
        ],
    },
    "JsonObject": {
        "type": "object",
        "description": "A JSON object with no NUL character (\\u0000) in a string or key, nested at most "
        "JSON_MAX_DEPTH (64) levels in all.",
        "propertyNames": {"pattern": TEXT},
        "additionalProperties": {"$ref": "#/components/schemas/JsonValue"},
    },
}
JSON_OBJECT = {"$ref": "#/components/schemas/JsonObject"}

# integrations/inbound.py MAX_IDEMPOTENCY_KEY; surrounding spaces are ignored.
IDEMPOTENCY_KEY = {"type": "string", "maxLength": 200, "pattern": TEXT}

"""The baseline: a bare Flask endpoint under the same gunicorn settings, parsing the same body."""

import json

from flask import Flask, request

app = Flask("bare")


@app.post("/v1/events")
def events():
    batch = json.loads(request.get_data())
    return {"accepted": len(batch["events"]), "duplicates": 0}, 202

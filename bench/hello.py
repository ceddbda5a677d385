"""The baseline for bench/validate.py: a bare Flask hello-world, served the same way."""

from flask import Flask

app = Flask(__name__)


@app.get("/")
def hello():
    return "Hello, world!"

"""A small Flask app covering what real sites use."""
import hashlib
import os

from flask import Flask, Response, jsonify, redirect, request, send_file, session, stream_with_context, url_for

app = Flask(__name__)
app.secret_key = "test-only-secret"
HERE = os.path.dirname(os.path.abspath(__file__))


@app.route("/")
def index():
    return "flask index"


@app.route("/json")
def json_view():
    return jsonify(ok=True, script_root=request.script_root, path=request.path, args=request.args.to_dict())


@app.route("/form", methods=["POST"])
def form():
    return "hello %s (%s)" % (request.form["name"], request.form.get("lang", "?"))


@app.route("/upload", methods=["POST"])
def upload():
    f = request.files["file"]
    data = f.read()
    return jsonify(filename=f.filename, size=len(data), sha256=hashlib.sha256(data).hexdigest(),
                   note=request.form.get("note"))


@app.route("/session/set/<value>")
def set_session(value):
    session["value"] = value
    response = Response("set")
    response.set_cookie("plain", "cookie-value")
    return response


@app.route("/session/get")
def get_session():
    return "%s/%s" % (session.get("value", "none"), request.cookies.get("plain", "none"))


@app.route("/redirect")
def go_home():
    return redirect(url_for("index"))


@app.route("/stream")
def stream():
    def parts():
        for i in range(5):
            yield "part %d\n" % i
    return Response(stream_with_context(parts()), mimetype="text/plain")


@app.route("/file")
def file():
    return send_file(os.path.join(HERE, "payload.bin"), mimetype="application/octet-stream")


application = app

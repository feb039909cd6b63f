#!/usr/bin/env python3
"""Python's xmlrpc.client against agent-monitor: every method, required members only,
with the credentials each role really uses (HTTP Basic in the URL; a job's bearer token).

Usage: interop.py URL STATE_DIR. Exits non-zero (assertion) on any mismatch.
"""
import glob
import hashlib
import json
import os
import sys
import time
import xmlrpc.client

url, state = sys.argv[1], sys.argv[2]


def secret(role):
    with open(os.path.join(state, "secrets", role + ".secret")) as f:
        return f.read().strip()


def as_role(role):
    return xmlrpc.client.ServerProxy(url.replace("http://", "http://%s:%s@" % (role, secret(role))))


s = as_role("launcher")
am = s.agentMonitor
admin = as_role("admin").agentMonitor
pair = {"project": "py1", "viewer": "CodeDX"}

r = am.launchViewer(dict(pair))
assert r["launched"] is True and r["state"] == "launching" and r["generation"] > 0, r
gen = r["generation"]
again = am.launchViewer(dict(pair, user="alice"))
assert again["launched"] is False and again["generation"] == gen, again

a = am.isViewerAvailable("CodeDX", "py1")
assert a["ready"] == 0 and a["address"] == "" and a["apikey"] == "" and a["urluuid"] == "", a

# The job's calls, with the token agent-monitor wrote into its job file.
for _ in range(100):
    files = glob.glob(os.path.join(state, "jobs", "g%d.json" % gen))
    if files:
        break
    time.sleep(0.05)
with open(files[0]) as f:
    token = json.load(f)["job_token"]
job = xmlrpc.client.ServerProxy(url, headers=[("Authorization", "Bearer " + token)]).agentMonitor
assert job.setViewerState(dict(pair, generation=gen, state="booting")) == 1
assert job.heartbeat(dict(pair, generation=gen)) == {"continue": True}
assert job.setViewerState(dict(pair, generation=gen, state="ready", ipaddress="127.0.0.1:5555")) == 1
a = am.isViewerAvailable("CodeDX", "py1")
assert a["ready"] == 1 and a["address"] == "127.0.0.1:5555", a
assert len(a["apikey"]) == 64 and a["urluuid"].startswith("proxy-"), a

db = b"viewer database \x00\x01 bytes"
assert job.storeviewer(dict(pair, generation=gen, viewerdb=xmlrpc.client.Binary(db),
                           checksum=hashlib.sha256(db).hexdigest())) == 1

st = am.viewerStatus(dict(pair))
assert st["generation"] == gen and st["state"] == "ready", st
assert [h["to"] for h in st["history"]] == ["launching", "booting", "ready"], st["history"]
lst = admin.listViewers()
assert [(v["project"], v["viewer"]) for v in lst] == [("py1", "CodeDX")], lst

assert admin.abortViewer(dict(pair)) == 1
assert job.heartbeat(dict(pair, generation=gen)) == {"continue": False}
assert job.setViewerState(dict(pair, generation=gen, state="stopped")) == 1
assert am.viewerStatus(dict(pair))["state"] == "stopped"

methods = s.system.listMethods()
for m in ["agentMonitor.launchViewer", "agentMonitor.isViewerAvailable", "agentMonitor.setViewerState",
          "agentMonitor.heartbeat", "agentMonitor.abortViewer", "agentMonitor.storeviewer",
          "agentMonitor.viewerStatus", "agentMonitor.listViewers", "server.version"]:
    assert m in methods, (m, methods)
assert s.server.version().startswith("agent-monitor ")

try:
    xmlrpc.client.ServerProxy(url).agentMonitor.launchViewer(dict(pair))
    raise AssertionError("no fault without credentials")
except xmlrpc.client.Fault as f:
    assert f.faultCode == 8, f

for bad, code in [({"project": "../x", "viewer": "CodeDX"}, 2), ({"project": "p"}, 1)]:
    try:
        am.launchViewer(bad)
        raise AssertionError("no fault for %r" % bad)
    except xmlrpc.client.Fault as f:
        assert f.faultCode == code, (bad, f)

print("interop ok")

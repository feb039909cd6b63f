#!/usr/bin/env python3
"""Python's xmlrpc.client against agent-monitor: every method, required members only.

Usage: interop.py URL. Exits non-zero (assertion) on any mismatch.
"""
import hashlib
import sys
import xmlrpc.client

url = sys.argv[1]
s = xmlrpc.client.ServerProxy(url)
am = s.agentMonitor
pair = {"project": "py1", "viewer": "CodeDX"}

r = am.launchViewer(dict(pair))
assert r["launched"] is True and r["state"] == "launching" and r["generation"] > 0, r
gen = r["generation"]
again = am.launchViewer(dict(pair, user="alice"))
assert again["launched"] is False and again["generation"] == gen, again

a = am.isViewerAvailable("CodeDX", "py1")
assert a["ready"] == 0 and a["address"] == "" and a["apikey"] == "" and a["urluuid"] == "", a

assert am.setViewerState(dict(pair, generation=gen, state="booting")) == 1
assert am.heartbeat(dict(pair, generation=gen)) == {"continue": True}
assert am.setViewerState(dict(pair, generation=gen, state="ready", ipaddress="127.0.0.1:5555")) == 1
a = am.isViewerAvailable("CodeDX", "py1")
assert a["ready"] == 1 and a["address"] == "127.0.0.1:5555", a
assert len(a["apikey"]) == 64 and a["urluuid"].startswith("proxy-"), a

db = b"viewer database \x00\x01 bytes"
assert am.storeviewer(dict(pair, generation=gen, viewerdb=xmlrpc.client.Binary(db),
                           checksum=hashlib.sha256(db).hexdigest())) == 1

st = am.viewerStatus(dict(pair))
assert st["generation"] == gen and st["state"] == "ready", st
assert [h["to"] for h in st["history"]] == ["launching", "booting", "ready"], st["history"]
lst = am.listViewers()
assert [(v["project"], v["viewer"]) for v in lst] == [("py1", "CodeDX")], lst

assert am.abortViewer(dict(pair)) == 1
assert am.heartbeat(dict(pair, generation=gen)) == {"continue": False}
assert am.setViewerState(dict(pair, generation=gen, state="stopped")) == 1
assert am.viewerStatus(dict(pair))["state"] == "stopped"

methods = s.system.listMethods()
for m in ["agentMonitor.launchViewer", "agentMonitor.isViewerAvailable", "agentMonitor.setViewerState",
          "agentMonitor.heartbeat", "agentMonitor.abortViewer", "agentMonitor.storeviewer",
          "agentMonitor.viewerStatus", "agentMonitor.listViewers", "server.version"]:
    assert m in methods, (m, methods)
assert s.server.version().startswith("agent-monitor ")

for bad, code in [({"project": "../x", "viewer": "CodeDX"}, 2), ({"project": "p"}, 1)]:
    try:
        am.launchViewer(bad)
        raise AssertionError("no fault for %r" % bad)
    except xmlrpc.client.Fault as f:
        assert f.faultCode == code, (bad, f)

print("interop ok")

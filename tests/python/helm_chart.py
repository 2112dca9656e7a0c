#!/usr/bin/env python3
"""Renders or lints a Helm chart with real Helm (helm-python-sdk binds Helm's
Go SDK), for the Rust tests.

Reads one JSON request on stdin and prints one JSON answer on stdout:

    {"op": "render", "chart": DIR, "requests": [
        {"name": "tollgate", "namespace": "tollgate", "upgrade": false,
         "values": [{...}, ...], "set": ["a.b=1", ...]}, ...]}
    -> [{"files": {TEMPLATE: TEXT}, "values": {...}} | {"error": MESSAGE}, ...]

    {"op": "lint", "chart": DIR, "values": [{...}], "kube_version": "1.30.0"}
    -> {"messages": [{"severity": N, "path": P, "error": TEXT}],
        "errors": [TEXT]} | {"error": MESSAGE}
    (severity: 1 info, 2 warning, 3 error, as in Helm's lint support package)

`values` are applied in order like repeated `-f FILE`, then `set` like
repeated `--set`; the answer's `values` are what the templates saw (the
chart's defaults coalesced with the overrides, as Helm computes them).
"""

import json
import sys

import helm_python


def merge(base, over):
    """Helm's merge of several -f/--set sources: maps merge key by key,
    anything else replaces (nulls are kept, coalescing removes keys later)."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for key, value in over.items():
            out[key] = merge(out[key], value) if key in out else value
        return out
    return over


def overrides(request):
    values = {}
    for source in request.get("values", []):
        values = merge(values, source)
    for expression in request.get("set", []):
        values = merge(values, helm_python.parse_set_string(expression))
    return values


def render(chart_dir, requests):
    chart = helm_python.Chart.load(chart_dir)
    answers = []
    try:
        for request in requests:
            try:
                values = overrides(request)
                upgrade = bool(request.get("upgrade", False))
                files = chart.render(
                    values=values,
                    name=request["name"],
                    namespace=request["namespace"],
                    is_install=not upgrade,
                    is_upgrade=upgrade,
                )
                answers.append({"files": files, "values": chart.merge_values(values)})
            except helm_python.HelmError as e:
                answers.append({"error": str(e)})
    finally:
        chart.close()
    return answers


def lint(chart_dir, request):
    try:
        values = overrides(request)
        result = helm_python.lint(
            chart_dir,
            values,
            strict=True,
            kube_version=request.get("kube_version"),
        )
    except helm_python.HelmError as e:
        return {"error": str(e)}
    return {
        "messages": result.get("messages") or [],
        "errors": [str(e) for e in result.get("errors") or []],
    }


def main():
    request = json.load(sys.stdin)
    if request["op"] == "render":
        answer = render(request["chart"], request["requests"])
    elif request["op"] == "lint":
        answer = lint(request["chart"], request)
    else:
        raise SystemExit(f"unknown op {request['op']!r}")
    json.dump(answer, sys.stdout)


if __name__ == "__main__":
    main()
